package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

func bareHandler(t *testing.T) *Handler {
	t.Helper()
	u, _ := url.Parse("http://127.0.0.1:9/api/v1")
	h, err := NewHandler(Options{Upstream: u, Keys: &staticKeys{key: secret.New(storedKey)}, Logger: zap.NewNop(), Transport: testTransport(t)})
	require.NoError(t, err)
	return h
}

// The body buffer is sized by the bytes that arrive, not by the length the
// client announces: an announced 32 MiB with one byte sent reserves a small
// buffer, and a body of announced length is read without a copy into a
// buffer of its own size.
func TestBodyBufferGrowsWithTheBytes(t *testing.T) {
	h := bareHandler(t)
	const limit = 32 << 20
	read := func(t *testing.T, body io.Reader, declared int64) []byte {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/chat/completions", body)
		r.ContentLength = declared
		got, err := h.readBody(httptest.NewRecorder(), r, limit)
		require.NoError(t, err)
		return got
	}

	got := read(t, strings.NewReader("{"), 32<<20)
	assert.Equal(t, "{", string(got))
	assert.LessOrEqual(t, cap(got), bodyReserve+bytes.MinRead, "an announced length is not reserved before its bytes arrive")

	for _, size := range []int{1, 1000, bodyReserve - 1, bodyReserve, bodyReserve + 1, 200 << 10, 3 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		got := read(t, bytes.NewReader(body), int64(size))
		require.Equal(t, body, got, "size %d", size)
		// One buffer, never grown, for a body up to bodyReserve; a larger
		// one ends in a buffer no larger than its announced size needs.
		if size <= bodyReserve {
			assert.Equal(t, size+bytes.MinRead, cap(got), "size %d", size)
		} else {
			assert.LessOrEqual(t, cap(got), size+bytes.MinRead, "size %d", size)
		}
	}

	// Unknown length, and bytes in small reads: whatever the pieces, the
	// body is whole and the buffer at most about twice its size.
	for _, size := range []int{0, 1, chunkedReserve, chunkedReserve + 1, 100_000} {
		body := bytes.Repeat([]byte("y"), size)
		got := read(t, iotest.HalfReader(bytes.NewReader(body)), -1)
		require.Equal(t, body, got[:len(got):len(got)], "size %d", size)
		assert.LessOrEqual(t, cap(got), max(2*size, chunkedReserve)+bytes.MinRead, "size %d", size)
	}
}

// TestStalledBodyIs408AndClosed: a client that starts a body and stops
// sending gets a 408 once limits.body_read_timeout passes without a byte,
// and its connection is closed, whatever framing it announced.
func TestStalledBodyIs408AndClosed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.BodyReadTimeout = timeout })
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	head := "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n"
	tests := []struct{ name, raw string }{
		{"announces 32 MiB, sends a byte", head + "Content-Length: 33554432\r\n\r\n{"},
		{"announces 100 bytes, sends a byte", head + "Content-Length: 100\r\n\r\n{"},
		{"chunked, stops inside a chunk", head + "Transfer-Encoding: chunked\r\n\r\n40\r\n{"},
		{"announces a body, sends none", head + "Content-Length: 10\r\n\r\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			start := time.Now()
			_, err = io.WriteString(conn, tt.raw)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, "no answer to a stalled body")
			elapsed := time.Since(start)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
			assert.Contains(t, string(body), `"error":{"code":408`)
			assert.Contains(t, string(body), "no request body bytes for 300ms (limits.body_read_timeout)")
			assert.True(t, resp.Close, "the answer says the connection closes")
			assert.GreaterOrEqual(t, elapsed, timeout-50*time.Millisecond)
			assert.Less(t, elapsed, timeout+2*time.Second)
			_, err = br.ReadByte()
			assert.ErrorIs(t, err, io.EOF, "the connection was closed after the 408")
			assert.Less(t, time.Since(start), timeout+2*time.Second, "closed at once, not after the rest of the body")
			assert.Empty(t, h.fake.Requests(), "nothing went upstream")

			require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == i+1 }, 2*time.Second, 5*time.Millisecond)
			f := h.logs.FilterMessage("request").All()[i].ContextMap()
			assert.EqualValues(t, 408, f["status"])
			assert.Equal(t, "the client sent no request body bytes for 300ms", f["problem"])
		})
	}
}

// TestSlowButSteadyBodyPasses: the timeout bounds a stall, not the upload;
// a body that keeps coming for longer than the timeout gets through whole.
func TestSlowButSteadyBodyPasses(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.BodyReadTimeout = timeout })
	addr := strings.TrimPrefix(h.proxy.URL, "http://")

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, "POST /api/v1/chat/completions HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+itoa(len(chatBody))+"\r\n\r\n")
	require.NoError(t, err)
	start := time.Now()
	pieces := 8
	step := (len(chatBody) + pieces - 1) / pieces
	for i := 0; i < len(chatBody); i += step {
		time.Sleep(timeout / 2) // pacing the upload, not synchronisation
		_, err := io.WriteString(conn, chatBody[i:min(i+step, len(chatBody))])
		require.NoError(t, err)
	}
	require.Greater(t, time.Since(start), 2*timeout, "the upload took longer than the timeout")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	reqs := h.fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, chatBody, string(reqs[0].Body))
}

// TestBodyDeadlineDoesNotCutTheStream: the body read timeout covers the body
// only; a stream that lasts longer than it is not cut.
func TestBodyDeadlineDoesNotCutTheStream(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h := newHarness(t, openrouter.Options{ChunkDelay: 150 * time.Millisecond, Reply: "one two three four five six"},
		func(o *Options) { o.BodyReadTimeout = timeout })
	start := time.Now()
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", streamBody, map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Greater(t, time.Since(start), 3*timeout, "the stream outlasted the timeout")
	assert.Contains(t, body, `"content":"six"`)
	assert.True(t, strings.HasSuffix(body, "data: [DONE]\n\n"), "the stream is whole: %q", body)
}
