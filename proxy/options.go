// Package proxy is orproxy's HTTP handler: the local guard, key injection,
// forwarding with streaming, the 401 retry, /healthz and /status.
package proxy

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/bodypatch"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// KeyProvider is what the proxy needs from the credential machinery.
type KeyProvider interface {
	// Key returns the key for a new request; it is asked once per request,
	// before anything goes upstream, and may keep it waiting for an
	// automatic login until ctx ends. An error means there is none to use
	// (nobody logged in, an unusable credential file); its message reaches
	// the client in a 401, so it should say what to run.
	Key(ctx context.Context) (secret.Secret, error)
	// Replace is called when OpenRouter rejected rejected with a 401. It
	// returns a key to retry with (one another process stored, or a rotated
	// one), or an error saying why there is none; its message reaches the client.
	Replace(ctx context.Context, rejected secret.Secret) (secret.Secret, error)
	// Rejected is called when OpenRouter rejected with a 401 the key that
	// Replace returned, on the retry too: the request is not retried again.
	// It returns why the client gets the 401 (for a freshly rotated key, a
	// failed rotation, and when the broker is asked again); its message
	// reaches the client.
	Rejected(key secret.Secret) error
	// Status describes the credential for /status, with the verdict on it
	// (Usable, or the Problem and what to run); it must hold no secret.
	Status() statusdoc.Credential
}

// BodyPatcher rewrites request bodies on their way upstream (the web search
// tool; *websearch.Injector is one). The types the two share are in
// internal/bodypatch, so neither package imports the other.
type BodyPatcher interface {
	// PatchRequest returns the body to send and what it learned about the
	// request; upstreamPath is r's path below /api/v1 or /v1. It reads
	// orproxy's control headers it cares about from r (they go no further)
	// and must not modify body.
	PatchRequest(r *http.Request, upstreamPath string, body []byte) (out []byte, info bodypatch.Info)
	// ToolRejected reports whether an upstream answer to a patched body was
	// caused by the patch; the proxy then sends the original body once.
	ToolRejected(model string, status int, body []byte) bool
	// Status describes the patcher for /status.
	Status() statusdoc.WebSearch
}

// Options configure a Handler. Zero values take the defaults noted.
type Options struct {
	// Upstream is OpenRouter's API base, e.g. https://openrouter.ai/api/v1.
	Upstream *url.URL
	// Keys supplies and replaces the key. Required.
	Keys KeyProvider
	// Patcher, if set, patches request bodies.
	Patcher BodyPatcher
	// AccessToken, if set, must be presented by clients.
	AccessToken secret.Secret
	// AllowAnyHost turns off the Host check; only for non-loopback listen
	// addresses, which require AccessToken.
	AllowAnyHost bool
	// MaxRequestBody bounds request bodies; default 32 MiB.
	MaxRequestBody int64
	// BodyReadTimeout is how long reading a request body may go without a
	// byte arriving before the client gets a 408 and the connection is
	// closed; default 60s. It bounds time without progress, not the whole
	// body, so a large upload over a slow link still gets through.
	BodyReadTimeout time.Duration
	// HeaderTimeout is how long to wait for upstream response headers before
	// answering 504; default 10 minutes, because a non-streaming completion
	// sends its headers only when the whole answer is ready.
	HeaderTimeout time.Duration
	// Transport reaches the upstream; default NewUpstreamTransport().
	Transport http.RoundTripper
	// Logger; default zap.NewNop().
	Logger *zap.Logger
	// Version and Listen are shown in /status.
	Version string
	Listen  string
}

const (
	defaultMaxRequestBody  = 32 << 20
	defaultBodyReadTimeout = 60 * time.Second
	defaultHeaderTimeout   = 10 * time.Minute
)
