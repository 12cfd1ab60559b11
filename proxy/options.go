// Package proxy is orproxy's HTTP handler: the local guard, key injection,
// forwarding with streaming, the 401 retry, reading each answer's cost for
// the ledger and budgets, explaining OpenRouter's money errors, /healthz and
// /status.
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
	"github.com/orproxy/orproxy/ledger"
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
	// Accepted is called when OpenRouter answered a request sent with key
	// with anything but a 401: the key works. It is called on every such
	// answer, so it must be cheap.
	Accepted(key secret.Secret)
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

// Spending is the money side of the daemon (the usage ledger and the
// budgets): the proxy hands it one row per request that reached OpenRouter
// and asks it whether a new request to a model may go.
type Spending interface {
	// Record takes the row of a request that reached OpenRouter, once its
	// answer has ended. It runs on the request's goroutine, so it must not
	// block.
	Record(row ledger.Row)
	// Admit is asked before a POST to a model endpoint is read or sent:
	// "" lets it go; anything else is the message of the 402 that refuses
	// it. It runs for every such request, so it must be cheap.
	Admit() string
}

// Account watches the key's credits (GET /key): the proxy tells it when
// requests go upstream and when OpenRouter refused one for money.
type Account interface {
	// Seen says a request is going upstream. It must be cheap.
	Seen()
	// Poke says OpenRouter answered 402 or a key-limit 403: the key's
	// limit and usage are worth reading again soon.
	Poke()
}

// Attribution names the app to OpenRouter (its app rankings and the
// user's activity page) when the client does not name itself.
type Attribution struct {
	// Referer is sent as HTTP-Referer and Title as X-Title, only when the
	// client sent neither header (nor X-OpenRouter-Title); empty values are
	// not sent.
	Referer, Title string
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
	// Spending records what each request cost and admits new ones; nil
	// reads no answer's cost and refuses nothing.
	Spending Spending
	// Account, if set, hears of upstream traffic and of money errors.
	Account Account
	// RotateOnLimit lets a key-limit 402 or 403 on a key a broker can
	// replace rotate it, once, like a 401 (credentials.rotate_on_limit).
	RotateOnLimit bool
	// Attribution, if set, is added to requests that carry none.
	Attribution *Attribution
	// StatusSections, if set, fills the sections of /status the handler
	// does not know (credits, spend, budget, ledger).
	StatusSections func(doc *statusdoc.Document)
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
