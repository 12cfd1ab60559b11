package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/bodypatch"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/usage"
)

// Handler serves orproxy's HTTP surface. Build it once with NewHandler; the
// per-request path does no configuration or file work.
type Handler struct {
	opts     Options
	upstream *url.URL
	rp       *httputil.ReverseProxy
	log      *zap.Logger
	stats    counters
	started  time.Time
	// referer and title are the attribution headers' values, built once;
	// nil when not sent.
	referer, title []string
}

// NewHandler validates opts and builds the handler.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Upstream == nil || opts.Upstream.Host == "" {
		return nil, errors.New("proxy: an upstream URL is required")
	}
	if opts.Keys == nil {
		return nil, errors.New("proxy: a key provider is required")
	}
	if opts.MaxRequestBody <= 0 {
		opts.MaxRequestBody = defaultMaxRequestBody
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = defaultBodyReadTimeout
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = defaultHeaderTimeout
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Transport == nil {
		t, err := NewUpstreamTransport()
		if err != nil {
			return nil, err
		}
		opts.Transport = t
	}
	up := *opts.Upstream
	up.Path = strings.TrimSuffix(up.Path, "/")
	up.RawPath = ""
	h := &Handler{opts: opts, upstream: &up, log: opts.Logger, started: time.Now()}
	h.referer, h.title = attributionValues(opts.Attribution)
	h.rp = &httputil.ReverseProxy{
		Rewrite: h.rewrite,
		Transport: &keyTransport{
			base:          opts.Transport,
			keys:          opts.Keys,
			patcher:       opts.Patcher,
			account:       opts.Account,
			rotateOnLimit: opts.RotateOnLimit,
			headerTimeout: opts.HeaderTimeout,
			log:           opts.Logger,
		},
		ErrorHandler: h.proxyError,
		BufferPool:   copyBuffers,
		// Copy errors also end up in the request line; at debug they do not
		// give a broken stream two lines.
		ErrorLog: mustStdLog(opts.Logger),
	}
	if opts.Spending != nil {
		h.rp.ModifyResponse = h.tap
	}
	return h, nil
}

// A request goes one way through the handler. ServeHTTP runs the guard and
// routing (serve), then prepare reads the body, patches it and decides the
// key, all before anything goes upstream: a request without a key is
// answered there. What prepare decided is the request's plan, which
// ReverseProxy's rewrite (routing and headers) and keyTransport (sending,
// and the one retry) only read. What became of the request is its outcome,
// for the log line and the counters.

// plan is what prepare decided about a request to forward. It is built
// once, before forwarding, and nothing changes it afterwards.
type plan struct {
	path    string // upstream-relative, decoded: what follows /api/v1 or /v1
	rawPath string // the same, as the client escaped it
	// original is the body as the client sent it; body is what the first
	// attempt sends: original, or original with the web search tool.
	original, body []byte
	patched        bool
	model          string
	stream         bool
	// key is what the first attempt sends; a retry after a 401 sends the
	// replacement instead.
	key secret.Secret
}

// outcome is what became of a request. The handler and the transport fill
// it in; they run one after the other on the request's goroutine.
type outcome struct {
	retried    bool // sent again with a replacement key after a 401
	rotated    bool // sent again with a rotated key after a key limit (rotate_on_limit)
	resent     bool // sent again without the web search tool
	clientGone bool // the client went away before its answer was done
	// settled says every attempt sent so far got an error answer, so
	// OpenRouter bills nothing for the request even if the client never
	// sees an answer (it left while orproxy waited for another key).
	settled bool
	problem string // what went wrong, for the log line
}

// exchange is one request through the handler: its plan, its outcome, and
// whether it went to the reverse proxy. Rewrite and the transport find it
// in the forwarded request's context.
type exchange struct {
	plan      plan
	outcome   outcome
	forwarded bool
	start     time.Time
	// kind is the API of the request's path; model says it is a POST to a
	// model endpoint, which budgets admit and OpenRouter bills.
	kind  usage.Kind
	model bool
	// answer is what the ledger row needs to know of the upstream answer
	// the client got (see spend.go).
	answer answer
}

type exchangeKey struct{}

// exchangeOf returns the exchange of a request prepare forwarded; nothing
// else reaches rewrite, the transport or the error handler.
func exchangeOf(ctx context.Context) *exchange {
	return ctx.Value(exchangeKey{}).(*exchange)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.stats.inFlight.Add(1)
	rec := &recorder{ResponseWriter: w}
	x := &exchange{start: time.Now()}
	defer h.done(r, rec, x, x.start)
	// Everything before forwarding happens in serve, which has returned by
	// the time the response is copied: an open stream holds only this frame
	// and ReverseProxy's, so its goroutine keeps a small stack.
	if out := h.serve(rec, r, x); out != nil {
		x.forwarded = true
		h.rp.ServeHTTP(rec, out)
	}
}

// done ends a request: it sends what is left of the answer, counts and logs
// it, and deals with a panic.
func (h *Handler) done(r *http.Request, rec *recorder, x *exchange, start time.Time) {
	h.stats.inFlight.Add(-1)
	if v := recover(); v != nil {
		if v != http.ErrAbortHandler {
			h.recovered(r, rec, x, start, v)
			return
		}
		// ReverseProxy aborts the connection when a stream breaks after
		// the headers went out; record that, then let the server abort.
		if r.Context().Err() != nil {
			x.outcome.clientGone = true
		} else {
			if x.outcome.problem == "" {
				x.outcome.problem = "the upstream stream broke off"
			}
			// An answer with a Content-Length may still sit in the
			// server's buffer. Send what came, so the client sees a short
			// body rather than an empty reply, which SDKs take for a
			// connection error and retry: a completion billed twice.
			_ = rec.FlushError()
		}
		h.finish(r, rec, x, start)
		panic(v)
	}
	if x.forwarded {
		// Send the answer before writing the log line, which would
		// otherwise delay it by a write to the log. Framing does not
		// change: ReverseProxy has copied upstream's Content-Length, or
		// flushed a body of unknown length as it went.
		_ = rec.FlushError()
	}
	// Probes stay out of the request log and the counters.
	if r.URL.Path == "/healthz" && rec.status == http.StatusOK {
		return
	}
	h.finish(r, rec, x, start)
}

// recovered handles a panic in the handler, which is a bug in orproxy: it
// is logged at error level with its stack, since net/http would log it only
// through ErrorLog, which is at debug. A client that has seen nothing yet
// gets a 500 that says so; one that already has headers cannot be told, so
// its connection is aborted rather than left with a response that looks whole.
func (h *Handler) recovered(r *http.Request, rec *recorder, x *exchange, start time.Time, v any) {
	h.log.Error("orproxy bug: panic while serving a request; please report it with this log entry",
		zap.String("method", r.Method),
		zap.String("path", printable(r.URL.Path)),
		zap.String("panic", fmt.Sprint(v)),
		zap.Stack("stack"))
	x.outcome.problem = "orproxy bug: panic: " + printable(fmt.Sprint(v))
	if rec.status != 0 {
		h.finish(r, rec, x, start)
		panic(http.ErrAbortHandler)
	}
	// Headers copied from upstream before the panic must not go out with
	// orproxy's own answer (a Content-Encoding would garble it).
	clear(rec.Header())
	// The request body may be half read; the connection cannot carry
	// another request.
	rec.Header().Set("Connection", "close")
	writeError(rec, http.StatusInternalServerError, "orproxy failed on this request because of a bug in orproxy (a panic, logged with its stack); please report it with the daemon's log, and try again")
	h.finish(r, rec, x, start)
}

// serve answers the request itself, or returns the request to forward.
func (h *Handler) serve(rec *recorder, r *http.Request, x *exchange) *http.Request {
	if ref := h.guard(r); ref != nil {
		h.stats.refused.Add(1)
		x.outcome.problem = ref.message
		writeError(rec, ref.status, ref.message)
		return nil
	}
	switch p := r.URL.Path; p {
	case "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(rec, http.StatusMethodNotAllowed, "use GET /healthz")
			return nil
		}
		rec.Header().Set("Content-Type", "application/json")
		rec.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(rec, `{"status":"ok"}`)
		if ce := h.log.Check(zap.DebugLevel, "health check"); ce != nil {
			ce.Write()
		}
	case "/status":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(rec, http.StatusMethodNotAllowed, "use GET /status")
			return nil
		}
		h.serveStatus(rec)
	default:
		path, rawPath, ok := h.route(r)
		if !ok {
			writeError(rec, http.StatusNotFound, "no such path "+quote(p)+": orproxy serves /api/v1/…, /v1/…, /healthz and /status")
			return nil
		}
		if !h.admit(rec, r, x, path) {
			return nil
		}
		return h.prepare(rec, r, x, path, rawPath)
	}
	return nil
}

// route maps /api/v1/X and /v1/X to the upstream-relative path /X.
func (h *Handler) route(r *http.Request) (rest, raw string, ok bool) {
	p, escaped := r.URL.Path, r.URL.EscapedPath()
	for _, prefix := range []string{"/api/v1", "/v1"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return p[len(prefix):], strings.TrimPrefix(escaped, prefix), true
		}
	}
	return "", "", false
}

// prepare makes the plan for a request to forward: it reads the body whole,
// patches it, and decides the key. It returns the request to hand to the
// reverse proxy, or nil when it has answered (a body that cannot be read, no
// key to send).
func (h *Handler) prepare(w *recorder, r *http.Request, x *exchange, path, rawPath string) *http.Request {
	body, ok := h.readWhole(w, r, &x.outcome)
	if !ok {
		return nil
	}
	p := plan{path: path, rawPath: rawPath, original: body, body: body}
	h.patch(r, &p)
	// The key is decided here, once: an automatic login may keep the
	// request waiting, and a request without a key is answered before any
	// of it goes upstream.
	key, err := h.opts.Keys.Key(r.Context())
	p.key = key
	x.plan = p
	if err != nil {
		if r.Context().Err() != nil {
			x.outcome.clientGone = true // it went away while waiting for a login
			return nil
		}
		x.outcome.problem = err.Error()
		writeError(w, http.StatusUnauthorized, err.Error())
		return nil
	}
	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
	out.Body = http.NoBody
	out.ContentLength = int64(len(p.body))
	// The body is whole in memory: it goes upstream with its length, not
	// in the chunks the client may have used.
	out.TransferEncoding = nil
	return out
}

// patch lets the patcher change the body and learns the model and stream
// flag, reading the body once for them: the patcher's scan when it scanned
// it, else a look at the two members (embeddings, messages, … still name
// their model in the log line).
func (h *Handler) patch(r *http.Request, p *plan) {
	if h.opts.Patcher != nil {
		out, info := h.opts.Patcher.PatchRequest(r, p.path, p.original)
		if info.Patched {
			p.body, p.patched = out, true
		}
		if info.Scanned {
			p.model, p.stream = info.Model, info.Stream
			return
		}
	}
	if len(p.original) > 0 && bodypatch.IsJSON(r.Header.Get("Content-Type")) {
		p.model = gjson.GetBytes(p.original, "model").String()
		p.stream = gjson.GetBytes(p.original, "stream").Bool()
	}
}

// readWhole reads the request body before anything goes upstream: it is
// needed to replay the request after a 401, and it avoids golang/go#40747,
// where a proxied upstream that answers before reading the body loses
// requests. When the body cannot be had it answers (413, 408, 400, or
// nobody when the client went away) and returns false.
func (h *Handler) readWhole(w *recorder, r *http.Request, out *outcome) ([]byte, bool) {
	limit := h.opts.MaxRequestBody
	if r.ContentLength > limit {
		h.tooLarge(w, out, limit)
		return nil, false
	}
	body, err := h.readBody(w, r, limit)
	if err == nil {
		return body, true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.tooLarge(w, out, limit)
	case errors.Is(err, errBodyTimeout):
		// Checked before the client-gone case: net/http cancels the
		// request's context when a read times out.
		out.problem = fmt.Sprintf("the client sent no request body bytes for %s", h.opts.BodyReadTimeout)
		// What is left of the body is still on the wire; the connection
		// cannot carry another request.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf("the client sent no request body bytes for %s (limits.body_read_timeout); check that the client sends the body it announces, or raise limits.body_read_timeout in the orproxy config", h.opts.BodyReadTimeout))
	case errors.Is(err, io.ErrUnexpectedEOF) || r.Context().Err() != nil:
		out.clientGone = true
		out.problem = "reading the request body: " + err.Error()
	default:
		// The client is there but sent a body that cannot be read (bad
		// chunked framing): it must hear so, not get an empty 200.
		out.problem = "reading the request body: " + err.Error()
		writeError(w, http.StatusBadRequest, "the request body could not be read ("+err.Error()+"); check the client's Content-Length or chunked encoding and send it again")
	}
	return nil, false
}

func (h *Handler) tooLarge(w http.ResponseWriter, out *outcome, limit int64) {
	out.problem = "request body too large"
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than limits.max_request_body (%d bytes); raise it in the orproxy config if you need to send more", limit))
}

// errBodyTimeout means the client sent no body bytes for BodyReadTimeout.
var errBodyTimeout = errors.New("no request body bytes arrived within the body read timeout")

const (
	// bodyReserve is the most buffer reserved for a request body before its
	// bytes arrive. Content-Length is only a promise: reserving all of it
	// let clients that announce 32 MiB and send a byte hold 32 MiB each.
	bodyReserve = 64 << 10
	// chunkedReserve is the first buffer for a body of unknown length.
	chunkedReserve = 4 << 10
)

// readBody reads the request body whole, up to limit. The buffer grows with
// the bytes that arrive, doubling, so it is never much more than twice what
// the client sent; a body of announced length up to bodyReserve is read into
// one buffer without a copy. Each read that brings bytes extends the
// connection's read deadline by BodyReadTimeout, so the timeout bounds a
// stall, not the upload. It is cleared once the body is in, so it cannot cut
// what follows (net/http clears it too when it starts its background read
// at the body's end; this does not rely on that). After an error it stays:
// net/http reads on to discard the rest of the body, and must not wait on a
// stalled client for that.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rc := http.NewResponseController(w)
	timeout := h.opts.BodyReadTimeout
	// A writer without a connection (a handler under test) has no deadlines.
	deadlines := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body := http.MaxBytesReader(nil, r.Body, limit)
	buf := make([]byte, 0, firstBodyBuffer(r.ContentLength))
	for {
		if len(buf) == cap(buf) {
			buf = growBody(buf, r.ContentLength, limit)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			if deadlines {
				_ = rc.SetReadDeadline(time.Time{})
			}
			return buf, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return buf, errBodyTimeout
		case err != nil:
			return buf, err
		case n > 0 && deadlines:
			_ = rc.SetReadDeadline(time.Now().Add(timeout))
		}
	}
}

// firstBodyBuffer is the capacity reserved before any body byte arrived:
// the announced length up to bodyReserve, plus room to read the end of the
// body without growing.
func firstBodyBuffer(declared int64) int {
	if declared < 0 {
		return chunkedReserve
	}
	return int(min(declared, bodyReserve)) + bytes.MinRead
}

// growBody doubles buf's capacity, as bytes.Buffer does, but never beyond
// the announced length or the limit (plus room to see the end), so a large
// body ends in a buffer of its own size.
func growBody(buf []byte, declared, limit int64) []byte {
	c := int64(2 * cap(buf))
	if declared > 0 {
		c = min(c, declared+bytes.MinRead)
	}
	c = min(c, limit+bytes.MinRead)
	c = max(c, int64(len(buf))+bytes.MinRead)
	grown := make([]byte, len(buf), c)
	copy(grown, buf)
	return grown
}

// strippedHeaders never go upstream: the client's own credentials (the key is
// ours to set), cookies meant for localhost, and the Expect of a body that is
// whole already. Control headers (bodypatch.ControlHeaderPrefix) go too.
var strippedHeaders = []string{"Authorization", "X-Api-Key", "Cookie", "Expect"}

// rewrite routes the request to the upstream and cleans its headers. The
// key is not its business: keyTransport sets it on each attempt.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	p := &exchangeOf(pr.In.Context()).plan
	u := *h.upstream
	u.Path = h.upstream.Path + p.path
	if p.rawPath != p.path {
		u.RawPath = h.upstream.EscapedPath() + p.rawPath
	}
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = ""
	for name := range pr.Out.Header {
		// Some servers read "X_Api_Key" as "X-Api-Key", so underscore
		// spellings of the stripped headers go too. Control headers were
		// read before forwarding (the patcher reads the web search opt-out).
		canon := http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if strings.HasPrefix(canon, bodypatch.ControlHeaderPrefix) || contains(strippedHeaders, canon) {
			pr.Out.Header.Del(name)
		}
	}
	h.attribute(pr)
	if ae := pr.Out.Header.Values("Accept-Encoding"); len(ae) > 0 {
		// orproxy reads some answers before the client does (a 401 that
		// says why, a 4xx that blames the web search tool) and can decode
		// only gzip: br or zstd would hide them. Both sides still compress.
		if acceptsGzip(ae) {
			pr.Out.Header.Set("Accept-Encoding", "gzip")
		} else {
			pr.Out.Header.Del("Accept-Encoding")
		}
	}
}

// acceptsGzip reports whether Accept-Encoding values admit gzip: named or
// by "*", and not with q=0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && coding != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				continue
			}
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// proxyError answers when no upstream response can be passed on.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeOf(r.Context())
	out := &x.outcome
	if r.Context().Err() != nil {
		out.clientGone = true // nobody to answer; not an upstream failure
		h.recordUnanswered(x, r, 499)
		return
	}
	out.problem = err.Error()
	h.stats.upstreamErrors.Add(1)
	if errors.Is(err, errHeaderTimeout) {
		h.recordUnanswered(x, r, http.StatusGatewayTimeout)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("OpenRouter sent no response headers within %s; try again, or use streaming for long completions", h.opts.HeaderTimeout))
		return
	}
	writeError(w, http.StatusBadGateway, fmt.Sprintf("orproxy could not reach OpenRouter at %s: %v; check the network, HTTPS_PROXY and the upstream setting", h.upstream.Redacted(), unwrapURLError(err)))
}

// unwrapURLError drops the "Post "URL":" prefix, which repeats what the message says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// finish counts a request and writes its log line.
func (h *Handler) finish(r *http.Request, w *recorder, x *exchange, start time.Time) {
	p, out := &x.plan, &x.outcome
	status := w.status
	if out.clientGone {
		status = 499 // the client went away first; as in nginx and Caddy
		h.stats.clientGone.Add(1)
	} else if status == 0 {
		status = http.StatusOK
	}
	h.stats.count(status, out.retried, x.forwarded)
	level := zap.InfoLevel
	if out.clientGone {
		level = zap.DebugLevel
	}
	ce := h.log.Check(level, "request")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("path", printable(r.URL.Path)),
		zap.Int("status", status),
		zap.Duration("duration", time.Since(start)),
		zap.Int64("bytes", w.bytes),
		zap.String("model", printable(p.model)),
		zap.Bool("stream", p.stream),
		zap.Bool("retried", out.retried),
	}
	if out.rotated {
		fields = append(fields, zap.Bool("rotated_on_limit", true))
	}
	if p.patched {
		fields = append(fields, zap.Bool("web_search", !out.resent))
	}
	if out.problem != "" {
		fields = append(fields, zap.String("problem", out.problem))
	}
	ce.Write(fields...)
}

func (h *Handler) serveStatus(w http.ResponseWriter) {
	doc := statusdoc.Document{
		Version:       h.opts.Version,
		Upstream:      h.upstream.Redacted(),
		Listen:        h.opts.Listen,
		UptimeSeconds: int64(time.Since(h.started).Seconds()),
		Credential:    h.opts.Keys.Status(),
		Requests:      h.stats.snapshot(),
	}
	if h.opts.Patcher != nil {
		doc.WebSearch = h.opts.Patcher.Status()
	}
	if h.opts.StatusSections != nil {
		h.opts.StatusSections(&doc)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "status: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// copyBuffers are the response copy buffers. A stream holds its buffer for
// as long as it is open, and OpenRouter's SSE events are a few hundred bytes
// each, flushed one by one: 2 KiB holds several of them, where ReverseProxy's
// default is 32 KiB. A large answer only takes a few more reads.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}

const copyBufferSize = 2 << 10

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

func mustStdLog(l *zap.Logger) *log.Logger {
	std, err := zap.NewStdLogAt(l, zap.DebugLevel)
	if err != nil {
		return zap.NewStdLog(l)
	}
	return std
}
