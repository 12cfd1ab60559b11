package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/tlsenv"
)

// NewUpstreamTransport returns the transport to OpenRouter: the shared one
// of tlsenv (proxy settings, extra CA file, bounded dial and TLS), with
// connections reused across many concurrent requests (Go's default keeps 2
// idle per host) and nothing that bounds a whole stream.
func NewUpstreamTransport() (*http.Transport, error) {
	t, err := tlsenv.Transport()
	if err != nil {
		return nil, err
	}
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	t.ExpectContinueTimeout = time.Second
	// Pass the client's Accept-Encoding on (narrowed to gzip by rewrite)
	// instead of letting the transport add gzip and decode it on our CPU.
	t.DisableCompression = true
	// An HTTP/1 connection keeps both buffers for as long as a stream is
	// open. 2 KiB still takes the request headers and a small body in one
	// write; larger bodies go out directly, and SSE events are small.
	t.ReadBufferSize = 2 << 10
	t.WriteBufferSize = 2 << 10
	return t, nil
}

// errHeaderTimeout is the cause when upstream sent no response headers in time.
var errHeaderTimeout = errors.New("upstream sent no response headers in time")

// maxErrorBody bounds how much of an upstream error answer is read to decide
// about a retry; OpenRouter's error bodies are a few hundred bytes.
const maxErrorBody = 64 << 10

// keyTransport sends a request as its plan says, with the plan's key, and,
// before anything has gone back to the client, sends it once more after a
// 401 with a replacement key, and once without the web search tool when the
// tool caused the failure. It never retries more than that. Whether there
// is a key at all was decided before forwarding. A money error (402, a
// key-limit 403) goes back explained, and is sent again only with
// rotateOnLimit, once, with a key the broker rotated.
type keyTransport struct {
	base          http.RoundTripper
	keys          KeyProvider
	patcher       BodyPatcher
	account       Account
	rotateOnLimit bool
	headerTimeout time.Duration
	log           *zap.Logger
}

func (t *keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	x := exchangeOf(ctx)
	p, out := &x.plan, &x.outcome
	key, body := p.key, p.body
	askedForKey := false
	if t.account != nil {
		t.account.Seen()
	}
	for first := true; ; first = false {
		out.settled = false // an attempt in flight: OpenRouter may bill it
		resp, err := t.send(req, body, key, first)
		if err != nil {
			return nil, err
		}
		// An error answer means OpenRouter ran no model: nothing billed,
		// whatever orproxy does next.
		out.settled = resp.StatusCode >= http.StatusBadRequest
		if resp.StatusCode != http.StatusUnauthorized {
			t.keys.Accepted(key)
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !askedForKey:
			askedForKey = true
			errBody := readErrorBody(resp)
			if errBody.message() == "Missing Authentication header" {
				// We always send a key, so this is our bug, not a bad key: rotating would not help.
				t.log.Error("upstream says the Authorization header is missing; this is an orproxy bug, not a bad key",
					zap.String("path", req.URL.Path))
				return passOn(resp, errBody), nil
			}
			resp.Body.Close()
			next, rerr := t.keys.Replace(ctx, key)
			if rerr != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return unauthorized(resp, errBody, rerr), nil
			}
			out.retried = true
			key = next
			continue
		case resp.StatusCode == http.StatusUnauthorized:
			// The replacement was rejected too. Only the key provider can
			// tell a failed rotation from a revoked key, and it must hear
			// of it, or every request would rotate again.
			errBody := readErrorBody(resp)
			why := t.keys.Rejected(key)
			if why == nil {
				return passOn(resp, errBody), nil
			}
			resp.Body.Close()
			return unauthorized(resp, errBody, why), nil
		case p.patched && !out.resent && t.patcher != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest):
			errBody := readErrorBody(resp)
			if !t.patcher.ToolRejected(p.model, resp.StatusCode, errBody.plain) {
				return passOn(resp, errBody), nil
			}
			resp.Body.Close()
			t.log.Warn("upstream refused the web search tool; sending the request again without it",
				zap.String("model", p.model), zap.Int("status", resp.StatusCode))
			out.resent = true
			body = p.original
			continue
		case resp.StatusCode == http.StatusPaymentRequired || resp.StatusCode == http.StatusForbidden:
			errBody := readErrorBody(resp)
			lim := limitOf(resp.StatusCode, errBody.plain)
			if lim == noLimit {
				return passOn(resp, errBody), nil // a 403 about something else
			}
			if t.account != nil {
				t.account.Poke()
			}
			note := ""
			// One replacement per request, whatever asked for it: a key
			// that met a 401 is not rotated again for its limit, and one
			// rotated for its limit that meets a 401 is reported Rejected.
			if lim == keyLimit && t.rotateOnLimit && !askedForKey {
				next, err := t.rotateForLimit(ctx, key)
				if err == nil {
					t.log.Info("the key's credit limit is reached; sending the request again with a rotated key (credentials.rotate_on_limit)")
					resp.Body.Close()
					out.rotated, askedForKey = true, true
					key = next
					continue
				}
				if ctx.Err() != nil {
					resp.Body.Close()
					return nil, ctx.Err()
				}
				note = err.Error()
			} else if lim == keyLimit && out.rotated {
				note = "the key credentials.rotate_on_limit rotated to has reached its limit too"
			}
			return explainLimit(resp, errBody, lim, note), nil
		}
		return resp, nil
	}
}

// rotateForLimit asks for another key for one whose credit limit is
// reached, when a broker can replace it: the one rotation a 401 would get.
// Other keys are never rotated for money: the error says why not.
func (t *keyTransport) rotateForLimit(ctx context.Context, key secret.Secret) (secret.Secret, error) {
	if st := t.keys.Status(); st.Source != "broker" || !st.CanRotate {
		return secret.Secret{}, errors.New("credentials.rotate_on_limit rotates only a key a broker issued and can replace, and this one is not")
	}
	next, err := t.keys.Replace(ctx, key)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("credentials.rotate_on_limit could not get another key: %w", err)
	}
	return next, nil
}

// send makes one attempt with body and key, the one place the key is set
// (rewrite stripped the client's own). The first attempt sends req itself,
// ReverseProxy's own copy of the client's request, so it needs no copy; a
// later one sends a copy, as the base transport may still hold req.
func (t *keyTransport) send(req *http.Request, body []byte, key secret.Secret, first bool) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	var out *http.Request
	if first {
		out = req.WithContext(ctx)
	} else {
		out = req.Clone(ctx)
	}
	out.Header.Set("Authorization", "Bearer "+key.Reveal())
	out.ContentLength = int64(len(body))
	if len(body) == 0 && req.ContentLength == 0 {
		out.Body = http.NoBody
	} else {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	timer := time.AfterFunc(t.headerTimeout, func() { cancel(errHeaderTimeout) })
	resp, err := t.base.RoundTrip(out)
	if !timer.Stop() {
		// The timer fired: even if headers arrived a moment later, the context
		// is cancelled and the body could not be read.
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, fmt.Errorf("%w (after %s)", errHeaderTimeout, t.headerTimeout)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose releases the attempt's context once the body is done with.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel(nil)
	return err
}

// errorStart is the start of an upstream error answer: raw as it came, to
// pass on, and plain, readable as JSON (nil if it could not be decoded).
// A client that accepts gzip gets it from upstream, so the answer may be
// gzipped; it is decoded once, here.
type errorStart struct {
	raw, plain []byte
	// whole says raw is all of the body: an answer cut short is passed on
	// as it came, never rewritten.
	whole bool
}

// readErrorBody reads the start of an error answer, enough to tell what it
// means; the rest stays in resp.Body for passOn.
func readErrorBody(resp *http.Response) errorStart {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := errorStart{raw: raw, plain: raw, whole: len(raw) < maxErrorBody}
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		e.plain = nil
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			e.plain, _ = io.ReadAll(io.LimitReader(zr, maxErrorBody))
		}
	}
	return e
}

// message is OpenRouter's error.message, or "".
func (e errorStart) message() string {
	return gjson.GetBytes(e.plain, "error.message").String()
}

// passOn returns resp as it came, its start put back in front of the rest.
func passOn(resp *http.Response, start errorStart) *http.Response {
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(start.raw), resp.Body), resp.Body}
	return resp
}

// respondWith returns resp with body in place of its own.
func respondWith(resp *http.Response, body []byte) *http.Response {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp
}

// unauthorized turns OpenRouter's 401 into one that also says why orproxy had
// no other key to try and what the user can do.
func unauthorized(resp *http.Response, upstreamBody errorStart, why error) *http.Response {
	msg := upstreamBody.message()
	if msg == "" {
		msg = "OpenRouter rejected the key"
	}
	body := errorBody(http.StatusUnauthorized, msg+" (orproxy: "+why.Error()+")")
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Encoding")
	return respondWith(resp, body)
}
