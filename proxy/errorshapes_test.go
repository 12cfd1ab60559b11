package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// OpenRouter's own answers reach the client whole and at once: error
// statuses with their headers and bodies, keep-alive comments and error
// events in a stream, and a broken answer as a broken one.

// teeUpstream serves the fake and records what it sent for the last
// request: the headers it set and the body bytes it wrote.
type teeUpstream struct {
	fake http.Handler

	mu     sync.Mutex
	status int
	header http.Header
	body   bytes.Buffer
}

func (u *teeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.status, u.header = 0, nil
	u.body.Reset()
	u.mu.Unlock()
	u.fake.ServeHTTP(&teeWriter{ResponseWriter: w, u: u}, r)
}

// sent returns what the fake sent for the last request.
func (u *teeUpstream) sent() (int, http.Header, []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status, u.header.Clone(), bytes.Clone(u.body.Bytes())
}

// teeWriter records into its teeUpstream; it passes flushes and, through
// Unwrap, the fake's hijack of the connection on.
type teeWriter struct {
	http.ResponseWriter
	u *teeUpstream
}

func (w *teeWriter) WriteHeader(code int) {
	w.u.mu.Lock()
	if w.u.status == 0 {
		w.u.status, w.u.header = code, w.Header().Clone()
	}
	w.u.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	w.u.mu.Lock()
	if w.u.status == 0 {
		w.u.status, w.u.header = http.StatusOK, w.Header().Clone()
	}
	w.u.body.Write(b)
	w.u.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

func (w *teeWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newTeeHarness is newHarness whose fake's answers are recorded.
func newTeeHarness(t *testing.T, fakeOpts openrouter.Options) (*harness, *teeUpstream) {
	t.Helper()
	if fakeOpts.Keys == nil {
		fakeOpts.Keys = []string{storedKey}
	}
	fake := openrouter.New(fakeOpts)
	tee := &teeUpstream{fake: fake.Handler()}
	up := httptest.NewServer(tee)
	t.Cleanup(up.Close)
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Upstream, _ = url.Parse(up.URL + "/api/v1") })
	h.fake, h.upstream = fake, up
	return h, tee
}

// requestCounters reads the request counters of /status.
func (h *harness) requestCounters(t *testing.T) map[string]any {
	t.Helper()
	resp, body := h.do(t, http.MethodGet, "/status", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var st struct {
		Requests map[string]any `json:"requests"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	return st.Requests
}

// assertPassedThrough checks that the client got what the fake sent: the
// status, every header the fake set, and the body byte for byte.
func assertPassedThrough(t *testing.T, tee *teeUpstream, resp *http.Response, body string) {
	t.Helper()
	status, header, sent := tee.sent()
	assert.Equal(t, status, resp.StatusCode)
	require.NotEmpty(t, header)
	for name, values := range header {
		assert.Equal(t, values, resp.Header.Values(name), "header %s", name)
	}
	assert.Equal(t, string(sent), body, "the body, byte for byte")
}

func TestUpstream429PassesThroughWholeAndRotatesNothing(t *testing.T) {
	h, tee := newTeeHarness(t, openrouter.Options{})
	h.fake.SetFault(openrouter.Fault{Status: http.StatusTooManyRequests, RetryAfter: 9})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"Content-Type": "application/json"})

	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assertPassedThrough(t, tee, resp, body)
	assert.Equal(t, "9", resp.Header.Get("Retry-After"))
	for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		assert.NotEmpty(t, resp.Header.Get(name), name)
	}
	assert.Contains(t, body, `"code":429`)
	assert.NotContains(t, body, "orproxy", "OpenRouter's words, not ours")

	assert.Zero(t, h.keys.replaced.Load(), "a 429 never rotates the key")
	assert.Equal(t, 1, h.fake.Count("/api/v1/chat/completions"), "and is not retried")
	assert.EqualValues(t, 1, h.requestCounters(t)["rate_limited"])
}

func TestRateLimitedCountsOnlyUpstream429s(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	post := func() int {
		resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		return resp.StatusCode
	}
	// A burst of three, then OpenRouter serves again.
	h.fake.SetFault(openrouter.Fault{Status: http.StatusTooManyRequests, StatusTimes: 3})
	var got []int
	for range 4 {
		got = append(got, post())
	}
	assert.Equal(t, []int{429, 429, 429, 200}, got)

	// Other refusals are not rate limits: a 402, a 503, orproxy's own 502 and a guard refusal.
	h.fake.SetFault(openrouter.Fault{Status: http.StatusPaymentRequired})
	assert.Equal(t, http.StatusPaymentRequired, post())
	h.fake.SetFault(openrouter.Fault{Status: http.StatusServiceUnavailable})
	assert.Equal(t, http.StatusServiceUnavailable, post())
	h.fake.SetFault(openrouter.Fault{})
	resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	c := h.requestCounters(t)
	assert.EqualValues(t, 3, c["rate_limited"])
	assert.Zero(t, h.keys.replaced.Load())
	assert.Equal(t, 6, h.fake.Count("/api/v1/chat/completions"), "each 429 went upstream once")
}

func TestUpstream502And503PassThroughWithTheirBodies(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter int
	}{
		{http.StatusBadGateway, 0},
		{http.StatusServiceUnavailable, 0},
		{http.StatusServiceUnavailable, 20},
	} {
		h, tee := newTeeHarness(t, openrouter.Options{})
		h.fake.SetFault(openrouter.Fault{Status: tc.status, RetryAfter: tc.retryAfter})
		resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		require.Equal(t, tc.status, resp.StatusCode)
		assertPassedThrough(t, tee, resp, body)
		assert.NotContains(t, body, "orproxy", "not replaced by orproxy's own 502")
		if tc.retryAfter > 0 {
			assert.Equal(t, "20", resp.Header.Get("Retry-After"))
		}
		assert.Zero(t, h.keys.replaced.Load())
		assert.Equal(t, 1, h.fake.Count("/api/v1/chat/completions"))
		assert.EqualValues(t, 0, h.requestCounters(t)["upstream_errors"], "OpenRouter answered; it was reached")
	}
}

// TestCommentsAndMidStreamErrorArriveOneByOne holds each piece of the
// fake's stream until the client has the one before: a proxy that buffered
// anything, a comment or the error event, would leave the client waiting
// for a piece the fake never sends.
func TestCommentsAndMidStreamErrorArriveOneByOne(t *testing.T) {
	h := newHarness(t, openrouter.Options{Reply: "one two three four"})
	h.fake.SetFault(openrouter.Fault{Stepped: true, KeepAlives: 2, KeepAlivesBetween: 1, ErrorMidStream: 2, ErrorMidStreamCode: 429})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := postStream(ctx, client, h.proxy.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	var kinds strings.Builder
	for {
		piece, err := h.fake.Step(ctx)
		require.NoError(t, err, "after %q", kinds.String())
		got := make([]byte, len(piece))
		_, err = io.ReadFull(resp.Body, got)
		require.NoError(t, err, "the client never got %q", piece)
		require.Equal(t, piece, string(got))
		switch {
		case piece == ": OPENROUTER PROCESSING\n\n":
			kinds.WriteByte(':')
		case strings.Contains(piece, `"finish_reason":"error"`):
			kinds.WriteByte('E')
			assert.Contains(t, piece, `"error":{"code":429`)
		default:
			kinds.WriteByte('e')
		}
		if strings.HasSuffix(kinds.String(), "E") {
			break
		}
	}
	assert.Equal(t, "::e:e:E", kinds.String(), "two comments, a chunk, a comment, a chunk, a comment, the error event")
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream ends as the fake ended it")
	assert.Empty(t, rest)
}

func TestUpstreamCutMidBodyNeverEndsCleanly(t *testing.T) {
	const cut = 60
	t.Run("stream", func(t *testing.T) {
		h, tee := newTeeHarness(t, openrouter.Options{Reply: "one two three four five six"})
		h.fake.SetFault(openrouter.Fault{CutAfterBytes: cut})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := postStream(ctx, client, h.proxy.URL)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		data, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "no terminating chunk: the client knows the stream broke")
		_, _, sent := tee.sent()
		require.Len(t, sent, cut)
		assert.Equal(t, string(sent), string(data), "what the fake sent before the cut arrived")
	})
	t.Run("JSON with Content-Length", func(t *testing.T) {
		h, tee := newTeeHarness(t, openrouter.Options{})
		h.fake.SetFault(openrouter.Fault{CutAfterBytes: cut})
		resp, err := client.Post(h.proxy.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
		_, header, sent := tee.sent()
		require.Len(t, sent, cut)
		require.NotEmpty(t, header.Get("Content-Length"), "the fake promised a length")
		// The headers and the bytes that came reach the client: an empty
		// reply would look like a connection error, which clients retry.
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, header.Get("Content-Length"), resp.Header.Get("Content-Length"))
		data, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a short body")
		assert.Less(t, int64(len(data)), resp.ContentLength)
		assert.True(t, strings.HasPrefix(string(sent), string(data)), "%q", data)
	})
}

// refusingH2 is an HTTP/2 upstream that leaves the first stream after
// refuse() unprocessed, as OpenRouter's edge may when it sheds load: with
// RST_STREAM REFUSED_STREAM, or with a GOAWAY whose last stream ID is below
// it. Any other stream gets a 200 whose body is the request body it received.
type refusingH2 struct {
	goAway bool

	mu      sync.Mutex
	refuse  bool
	streams []h2Stream
	conns   []net.Conn
	wg      sync.WaitGroup
}

type h2Stream struct {
	header  map[string]string
	body    []byte
	refused bool
	conn    int
}

func (u *refusingH2) refuseNext() {
	u.mu.Lock()
	u.refuse = true
	u.streams = nil
	u.mu.Unlock()
}

func (u *refusingH2) seen() []h2Stream {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]h2Stream(nil), u.streams...)
}

func (u *refusingH2) serveConn(c net.Conn) {
	u.mu.Lock()
	u.conns = append(u.conns, c)
	connNo := len(u.conns)
	u.wg.Add(1)
	u.mu.Unlock()
	defer u.wg.Done()
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return
	}
	open := map[uint32]*h2Stream{}
	answer := func(id uint32, st *h2Stream) error {
		u.mu.Lock()
		u.streams = append(u.streams, *st)
		u.mu.Unlock()
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/json"})
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		return fr.WriteData(id, true, st.body)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && fr.WriteSettingsAck() != nil {
				return
			}
		case *http2.PingFrame:
			if !f.IsAck() && fr.WritePing(true, f.Data) != nil {
				return
			}
		case *http2.MetaHeadersFrame:
			st := &h2Stream{header: map[string]string{}, conn: connNo}
			for _, hf := range f.Fields {
				st.header[hf.Name] = hf.Value
			}
			u.mu.Lock()
			refuse := u.refuse
			u.refuse = false
			u.mu.Unlock()
			if refuse {
				st.refused = true
				u.mu.Lock()
				u.streams = append(u.streams, *st)
				u.mu.Unlock()
				if u.goAway {
					// Client stream IDs are odd: the one before this is ID-2.
					last := uint32(0)
					if f.StreamID > 2 {
						last = f.StreamID - 2
					}
					err = fr.WriteGoAway(last, http2.ErrCodeNo, nil)
				} else {
					err = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
				}
				if err != nil {
					return
				}
				continue // its DATA frames, if any, are dropped below
			}
			open[f.StreamID] = st
			if f.StreamEnded() && answer(f.StreamID, st) != nil {
				return
			}
		case *http2.DataFrame:
			st := open[f.StreamID]
			if st == nil {
				continue
			}
			st.body = append(st.body, f.Data()...)
			if n := uint32(len(f.Data())); n > 0 {
				// Give the window back, so bodies of any size get through.
				if fr.WriteWindowUpdate(0, n) != nil || fr.WriteWindowUpdate(f.StreamID, n) != nil {
					return
				}
			}
			if f.StreamEnded() {
				delete(open, f.StreamID)
				if answer(f.StreamID, st) != nil {
					return
				}
			}
		}
	}
}

// TestHTTP2ReplaysARefusedRequestWithItsBody shows that a request OpenRouter
// refused before processing it is sent again by Go's HTTP/2 transport, whole,
// because the proxy gives each attempt a GetBody; a request without one
// fails instead, which is what the proxy's client would see.
func TestHTTP2ReplaysARefusedRequestWithItsBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		goAway bool
	}{
		{"REFUSED_STREAM", false},
		{"GOAWAY before the stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &refusingH2{goAway: tc.goAway}
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.EnableHTTP2 = true
			srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
				"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { up.serveConn(c) },
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			t.Cleanup(func() {
				up.mu.Lock()
				for _, c := range up.conns {
					_ = c.Close()
				}
				up.mu.Unlock()
				up.wg.Wait()
			})
			tr := testTransport(t)
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			h := newHarness(t, openrouter.Options{}, func(o *Options) {
				o.Upstream, _ = url.Parse(srv.URL + "/api/v1")
				o.Transport = tr
			})

			up.refuseNext()
			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"Content-Type": "application/json"})
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, chatBody, body, "the upstream got the whole body on the second attempt")
			streams := up.seen()
			require.Len(t, streams, 2, "one refused attempt, one replay")
			assert.True(t, streams[0].refused)
			assert.False(t, streams[1].refused)
			for _, st := range streams {
				assert.Equal(t, "POST", st.header[":method"])
				assert.Equal(t, "/api/v1/chat/completions", st.header[":path"])
				assert.Equal(t, "Bearer "+storedKey, st.header["authorization"])
			}
			if tc.goAway {
				assert.Equal(t, 2, streams[1].conn, "replayed on a new connection")
			} else {
				assert.Equal(t, streams[0].conn, streams[1].conn, "replayed on the same connection")
			}
			assert.Zero(t, h.keys.replaced.Load(), "a refused stream is no reason to rotate")

			// The same refusal to a request without GetBody is not replayed:
			// the replay above is the proxy's doing.
			up.refuseNext()
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/chat/completions", io.NopCloser(strings.NewReader(chatBody)))
			require.NoError(t, err)
			require.Nil(t, req.GetBody)
			direct := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			dresp, err := direct.Do(req)
			if err == nil {
				dresp.Body.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "GetBody")
			assert.Len(t, up.seen(), 1, "only the refused attempt")
		})
	}
}
