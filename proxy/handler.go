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
	h.rp = &httputil.ReverseProxy{
		Rewrite: h.rewrite,
		Transport: &keyTransport{
			base:          opts.Transport,
			keys:          opts.Keys,
			patcher:       opts.Patcher,
			headerTimeout: opts.HeaderTimeout,
			log:           opts.Logger,
		},
		ErrorHandler: h.proxyError,
		BufferPool:   copyBuffers,
		// Copy errors also end up in the request line; at debug they do not
		// give a broken stream two lines.
		ErrorLog: mustStdLog(opts.Logger),
	}
	return h, nil
}

// requestState travels with a forwarded request through the reverse proxy
// and the transport, and ends up in its log line.
type requestState struct {
	upstreamPath    string // decoded, after the /api/v1 or /v1 prefix
	upstreamRawPath string // as the client escaped it
	original        []byte
	patchedBody     []byte
	patched         bool
	model           string
	stream          bool

	// key is what the first attempt sends, set in rewrite; keyErr says
	// why there is none.
	key    secret.Secret
	keyErr error

	retried           bool
	resentWithoutTool bool
	clientGone        bool
	problem           string
	probe             bool // a health check: not logged
	forwarded         bool // handed to the reverse proxy
}

func (s *requestState) sendBody() []byte {
	if s.patched {
		return s.patchedBody
	}
	return s.original
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		return st
	}
	return &requestState{}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.stats.inFlight.Add(1)
	rec := &recorder{ResponseWriter: w}
	st := &requestState{}
	defer func() {
		h.stats.inFlight.Add(-1)
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				h.recovered(r, rec, st, start, v)
				return
			}
			// ReverseProxy aborts the connection when a stream breaks after
			// the headers went out; record that, then let the server abort.
			if r.Context().Err() != nil {
				st.clientGone = true
			} else {
				if st.problem == "" {
					st.problem = "the upstream stream broke off"
				}
				// An answer with a Content-Length may still sit in the
				// server's buffer. Send what came, so the client sees a short
				// body rather than an empty reply, which SDKs take for a
				// connection error and retry: a completion billed twice.
				_ = rec.FlushError()
			}
			h.finish(r, rec, st, start)
			panic(v)
		}
		if st.forwarded {
			// Send the answer before writing the log line, which would
			// otherwise delay it by a write to the log. Framing does not
			// change: ReverseProxy has copied upstream's Content-Length, or
			// flushed a body of unknown length as it went.
			_ = rec.FlushError()
		}
		if !st.probe {
			h.finish(r, rec, st, start)
		}
	}()
	// Everything before forwarding happens in serve, which has returned by
	// the time the response is copied: an open stream holds only this frame
	// and ReverseProxy's, so its goroutine keeps a small stack.
	if out := h.serve(rec, r, st); out != nil {
		st.forwarded = true
		h.rp.ServeHTTP(rec, out)
	}
}

// recovered handles a panic in the handler, which is a bug in orproxy: it
// is logged at error level with its stack, since net/http would log it only
// through ErrorLog, which is at debug. A client that has seen nothing yet
// gets a 500 that says so; one that already has headers cannot be told, so
// its connection is aborted rather than left with a response that looks whole.
func (h *Handler) recovered(r *http.Request, rec *recorder, st *requestState, start time.Time, v any) {
	h.log.Error("orproxy bug: panic while serving a request; please report it with this log entry",
		zap.String("method", r.Method),
		zap.String("path", printable(r.URL.Path)),
		zap.String("panic", fmt.Sprint(v)),
		zap.Stack("stack"))
	st.problem = "orproxy bug: panic: " + printable(fmt.Sprint(v))
	st.probe = false
	if rec.status != 0 {
		h.finish(r, rec, st, start)
		panic(http.ErrAbortHandler)
	}
	// Headers copied from upstream before the panic must not go out with
	// orproxy's own answer (a Content-Encoding would garble it).
	clear(rec.Header())
	// The request body may be half read; the connection cannot carry
	// another request.
	rec.Header().Set("Connection", "close")
	writeError(rec, http.StatusInternalServerError, "orproxy failed on this request because of a bug in orproxy (a panic, logged with its stack); please report it with the daemon's log, and try again")
	h.finish(r, rec, st, start)
}

// serve answers the request itself, or returns the request to forward.
func (h *Handler) serve(rec *recorder, r *http.Request, st *requestState) *http.Request {
	if ref := h.guard(r); ref != nil {
		h.stats.refused.Add(1)
		st.problem = ref.message
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
		// Probes stay out of the request log.
		st.probe = true
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
		rest, raw, ok := h.route(r)
		if !ok {
			writeError(rec, http.StatusNotFound, "no such path "+quote(p)+": orproxy serves /api/v1/…, /v1/…, /healthz and /status")
			return nil
		}
		st.upstreamPath, st.upstreamRawPath = rest, raw
		return h.prepare(rec, r, st)
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

// prepare reads and patches the body and returns the request to forward, or
// nil when it has answered.
func (h *Handler) prepare(w *recorder, r *http.Request, st *requestState) *http.Request {
	limit := h.opts.MaxRequestBody
	if r.ContentLength > limit {
		h.tooLarge(w, st, limit)
		return nil
	}
	// The whole body is read before anything goes upstream: it is needed to
	// replay the request after a 401, and it avoids golang/go#40747, where a
	// proxied upstream that answers before reading the body loses requests.
	body, err := h.readBody(w, r, limit)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.tooLarge(w, st, limit)
			return nil
		}
		if errors.Is(err, errBodyTimeout) {
			// Checked before the client-gone case: net/http cancels the
			// request's context when a read times out.
			st.problem = fmt.Sprintf("the client sent no request body bytes for %s", h.opts.BodyReadTimeout)
			// What is left of the body is still on the wire; the connection
			// cannot carry another request.
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("the client sent no request body bytes for %s (limits.body_read_timeout); check that the client sends the body it announces, or raise limits.body_read_timeout in the orproxy config", h.opts.BodyReadTimeout))
			return nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || r.Context().Err() != nil {
			st.clientGone = true
			st.problem = "reading the request body: " + err.Error()
			return nil
		}
		// The client is there but sent a body that cannot be read (bad
		// chunked framing): it must hear so, not get an empty 200.
		st.problem = "reading the request body: " + err.Error()
		writeError(w, http.StatusBadRequest, "the request body could not be read ("+err.Error()+"); check the client's Content-Length or chunked encoding and send it again")
		return nil
	}
	st.original = body
	scanned := false
	if h.opts.Patcher != nil {
		out, info := h.opts.Patcher.PatchRequest(r, st.upstreamPath, body)
		st.patched, st.model, st.stream, scanned = info.Patched, info.Model, info.Stream, info.Scanned
		if info.Patched {
			st.patchedBody = out
		}
	}
	if !scanned && len(body) > 0 && bodypatch.IsJSON(r.Header.Get("Content-Type")) {
		// Bodies the patcher does not read (embeddings, messages, …) still
		// name their model in the log line.
		res := gjson.GetManyBytes(body, "model", "stream")
		st.model, st.stream = res[0].String(), res[1].Bool()
	}
	out := r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	out.Body = http.NoBody
	out.ContentLength = int64(len(st.sendBody()))
	// The body is whole in memory: it goes upstream with its length, not
	// in the chunks the client may have used.
	out.TransferEncoding = nil
	return out
}

func (h *Handler) tooLarge(w http.ResponseWriter, st *requestState, limit int64) {
	st.problem = "request body too large"
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
// ours to set), cookies meant for localhost, and orproxy's control headers.
var strippedHeaders = []string{"Authorization", "X-Api-Key", "Cookie", "Expect"}

func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	u := *h.upstream
	u.Path = h.upstream.Path + st.upstreamPath
	if st.upstreamRawPath != st.upstreamPath {
		u.RawPath = h.upstream.EscapedPath() + st.upstreamRawPath
	}
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = ""
	for name := range pr.Out.Header {
		// Some servers read "X_Api_Key" as "X-Api-Key", so underscore
		// spellings of the stripped headers go too.
		canon := http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if strings.HasPrefix(canon, bodypatch.ControlHeaderPrefix) || contains(strippedHeaders, canon) {
			pr.Out.Header.Del(name)
		}
	}
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
	// The key goes onto ReverseProxy's own copy of the request, so the first
	// attempt needs no copy of its own; keyTransport sets a replacement.
	st.key, st.keyErr = h.opts.Keys.Key(pr.In.Context())
	if st.keyErr == nil {
		pr.Out.Header.Set("Authorization", "Bearer "+st.key.Reveal())
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
	st := stateFrom(r.Context())
	if r.Context().Err() != nil {
		st.clientGone = true // nobody to answer; not an upstream failure
		return
	}
	st.problem = err.Error()
	var noKey *noKeyError
	switch {
	case errors.As(err, &noKey):
		writeError(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, errHeaderTimeout):
		h.stats.upstreamErrors.Add(1)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("OpenRouter sent no response headers within %s; try again, or use streaming for long completions", h.opts.HeaderTimeout))
	default:
		h.stats.upstreamErrors.Add(1)
		writeError(w, http.StatusBadGateway, fmt.Sprintf("orproxy could not reach OpenRouter at %s: %v; check the network, HTTPS_PROXY and the upstream setting", h.upstream.Redacted(), unwrapURLError(err)))
	}
}

// unwrapURLError drops the "Post "URL":" prefix, which repeats what the message says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (h *Handler) finish(r *http.Request, w *recorder, st *requestState, start time.Time) {
	status := w.status
	if st.clientGone {
		status = 499 // the client went away first; as in nginx and Caddy
		h.stats.clientGone.Add(1)
	} else if status == 0 {
		status = http.StatusOK
	}
	h.stats.count(status, st)
	level := zap.InfoLevel
	if st.clientGone {
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
		zap.String("model", printable(st.model)),
		zap.Bool("stream", st.stream),
		zap.Bool("retried", st.retried),
	}
	if st.patched {
		fields = append(fields, zap.Bool("web_search", !st.resentWithoutTool))
	}
	if st.problem != "" {
		fields = append(fields, zap.String("problem", st.problem))
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
