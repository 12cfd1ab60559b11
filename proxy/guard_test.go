package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// rawRequest sends bytes as they are, so tests can send what an HTTP client
// library would refuse or normalise, and returns the status line's code.
func rawRequest(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Write([]byte(raw))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	body.Write(buf[:n])
	return resp.StatusCode, body.String()
}

func TestGuardRefusesHostileRequests(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.MaxRequestBody = 64 << 10 })
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	post := func(target, host string, extra ...string) string {
		return "POST " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: " +
			itoa(len(chatBody)) + "\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n" + chatBody
	}
	chunked := func(headers, body string) string {
		return "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\n" + headers + "Connection: close\r\n\r\n" +
			strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
	}
	bigBody := `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 70<<10) + `"}]}`
	tests := []struct {
		name       string
		raw        string
		wantStatus int
		wantText   string
		notJSON    bool // refused by net/http before the handler, in its own plain words
	}{
		{name: "foreign Host", raw: post("/api/v1/chat/completions", "evil.example"), wantStatus: 403, wantText: "Host \\\"evil.example\\\" is refused"},
		{name: "DNS rebinding Host with our port", raw: post("/api/v1/chat/completions", "rebind.evil.example:"+port(addr)), wantStatus: 403, wantText: "DNS-rebinding"},
		{name: "loopback-looking name", raw: post("/api/v1/chat/completions", "127.0.0.1.evil.example:"+port(addr)), wantStatus: 403, wantText: "DNS-rebinding"},
		{name: "Host with user info", raw: post("/api/v1/chat/completions", "127.0.0.1@evil.example"), wantStatus: 400, notJSON: true},
		{name: "foreign Origin", raw: post("/api/v1/chat/completions", addr, "Origin: https://evil.example\r\n"), wantStatus: 403, wantText: "requests from web pages are refused"},
		{name: "rebinding Origin", raw: post("/api/v1/chat/completions", addr, "Origin: http://rebind.evil.example:"+port(addr)+"\r\n"), wantStatus: 403, wantText: "requests from web pages are refused"},
		{name: "null Origin", raw: post("/api/v1/chat/completions", addr, "Origin: null\r\n"), wantStatus: 403, wantText: "requests from web pages are refused"},
		{name: "cross-site fetch", raw: post("/api/v1/chat/completions", addr, "Sec-Fetch-Site: cross-site\r\n"), wantStatus: 403, wantText: "cross-site browser requests are refused"},
		{name: "same-site fetch", raw: post("/api/v1/chat/completions", addr, "Sec-Fetch-Site: same-site\r\n"), wantStatus: 403, wantText: "cross-site browser requests are refused"},
		{name: "CONNECT", raw: "CONNECT openrouter.ai:443 HTTP/1.1\r\nHost: openrouter.ai:443\r\n\r\n", wantStatus: 405, wantText: "CONNECT is refused"},
		{name: "CONNECT to ourselves", raw: "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", wantStatus: 405, wantText: "CONNECT is refused"},
		{name: "absolute-form target", raw: post("http://openrouter.ai/api/v1/chat/completions", addr), wantStatus: 400, wantText: "not a forward proxy"},
		{name: "absolute-form target with our own host", raw: post("http://"+addr+"/api/v1/chat/completions", addr), wantStatus: 400, wantText: "not a forward proxy"},
		{name: "absolute-form https target", raw: post("https://evil.example/api/v1/chat/completions", addr), wantStatus: 400, wantText: "not a forward proxy"},
		{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n", wantStatus: 400, wantText: "not a forward proxy"},
		{name: "dot-dot escape", raw: post("/api/v1/../../x", addr), wantStatus: 400, wantText: "dot segments"},
		{name: "dot-dot out of the API", raw: post("/api/v1/../../../auth/keys", addr), wantStatus: 400, wantText: "dot segments"},
		{name: "encoded dot-dot", raw: post("/api/v1/%2e%2e/%2e%2e/x", addr), wantStatus: 400, wantText: "dot segments"},
		{name: "upper-case encoded dot-dot", raw: post("/api/v1/%2E%2E/x", addr), wantStatus: 400, wantText: "dot segments"},
		{name: "single dot", raw: post("/api/v1/./chat/completions", addr), wantStatus: 400, wantText: "dot segments"},
		{name: "double slash", raw: post("/api/v1//chat/completions", addr), wantStatus: 400, wantText: "empty path segments"},
		{name: "leading double slash", raw: post("//evil.example/api/v1/chat/completions", addr), wantStatus: 400, wantText: "empty path segments"},
		{name: "encoded slash", raw: post("/api/v1/chat%2Fcompletions", addr), wantStatus: 400, wantText: "encoded slashes"},
		{name: "encoded dot-dot-slash", raw: post("/api/v1/..%2f..%2fx", addr), wantStatus: 400, wantText: "encoded slashes"},
		{name: "encoded backslash", raw: post("/api/v1/chat%5Ccompletions", addr), wantStatus: 400, wantText: "encoded slashes"},
		{name: "raw backslash", raw: post("/api/v1/chat\\completions", addr), wantStatus: 400, wantText: "encoded slashes and backslashes"},
		{name: "encoded NUL", raw: post("/api/v1/chat%00/completions", addr), wantStatus: 400, wantText: "NUL byte"},
		// Request smuggling: net/http refuses these framings before the handler runs.
		{name: "two different Content-Lengths", raw: "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 4\r\nContent-Length: " + itoa(len(chatBody)) + "\r\n\r\n" + chatBody, wantStatus: 400, notJSON: true},
		{name: "negative Content-Length", raw: "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: -1\r\n\r\n" + chatBody, wantStatus: 400, notJSON: true},
		{name: "Transfer-Encoding identity, chunked", raw: chunked("Transfer-Encoding: identity, chunked\r\n", chatBody), wantStatus: 501, notJSON: true},
		{name: "Transfer-Encoding twice", raw: chunked("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chatBody), wantStatus: 501, notJSON: true},
		{name: "Transfer-Encoding with a space before the colon", raw: chunked("Transfer-Encoding : chunked\r\n", chatBody), wantStatus: 400, notJSON: true},
		{name: "two Host headers", raw: "GET /api/v1/models HTTP/1.1\r\nHost: " + addr + "\r\nHost: evil.example\r\n\r\n", wantStatus: 400, notJSON: true},
		{name: "no Host header", raw: "GET /api/v1/models HTTP/1.1\r\n\r\n", wantStatus: 400, notJSON: true},
		{name: "oversized headers", raw: "GET /api/v1/models HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n", wantStatus: 431, notJSON: true},
		// Bodies above limits.max_request_body, announced or not.
		{name: "announced body above the limit", raw: "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n{", wantStatus: 413, wantText: "limits.max_request_body"},
		{name: "chunked body above the limit", raw: chunked("Transfer-Encoding: chunked\r\n", bigBody), wantStatus: 413, wantText: "limits.max_request_body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.fake.Requests())
			status, body := rawRequest(t, addr, tt.raw)
			assert.Equal(t, tt.wantStatus, status, body)
			assert.Contains(t, body, tt.wantText)
			if !tt.notJSON {
				assert.Contains(t, body, `"error":{"code":`)
			}
			assert.Len(t, h.fake.Requests(), before, "the refused request reached upstream")
			// The proxy keeps serving.
			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		})
	}

	// The allowed forms still pass.
	for _, host := range []string{addr, "localhost:" + port(addr), "[::1]:" + port(addr), "LOCALHOST"} {
		status, body := rawRequest(t, addr, post("/api/v1/chat/completions", host, "Origin: http://localhost:3000\r\n"))
		assert.Equal(t, 200, status, "%s: %s", host, body)
	}
}

// TestContentLengthWithTransferEncoding: net/http drops the Content-Length
// of a request that also says chunked and reads the body by the chunks alone
// (RFC 9112 section 6.1 allows this), before orproxy's handler runs. What
// matters is that orproxy and upstream cannot disagree about where the
// request ends: the body is read whole and sent upstream with orproxy's own
// Content-Length, and whatever follows it on the connection is a request of
// its own that meets the guard.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	smuggled := "POST /api/v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\nContent-Length: " + itoa(len(chatBody)) + "\r\n\r\n" + chatBody
	chunkedBody := strconv.FormatInt(int64(len(chatBody)), 16) + "\r\n" + chatBody + "\r\n0\r\n\r\n"
	raw := "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + itoa(len(chunkedBody)+len(smuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody + smuggled

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Write([]byte(raw))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	var statuses []int
	for range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break // the server may close after the first answer; that is fine too
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	require.NotEmpty(t, statuses)
	assert.Equal(t, 200, statuses[0])
	if len(statuses) > 1 {
		assert.Equal(t, 403, statuses[1], "the request after the chunks met the guard")
	}
	reqs := h.fake.Requests()
	require.Len(t, reqs, 1, "the smuggled request never reached upstream")
	assert.Equal(t, chatBody, string(reqs[0].Body), "the body ends where the chunks end")
	assert.Equal(t, itoa(len(chatBody)), reqs[0].Header.Get("Content-Length"))
	assert.Empty(t, reqs[0].Header.Values("Transfer-Encoding"))
}

// TestSlowHeadersAreCut: a client that dribbles its headers is disconnected
// once the read-header timeout passes, reaches nothing, and costs the proxy
// nothing afterwards.
func TestSlowHeadersAreCut(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	const timeout = 300 * time.Millisecond
	srv := httptest.NewUnstartedServer(h.handler)
	srv.Config = NewServer(h.handler, ServerOptions{ReadHeaderTimeout: timeout})
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = conn.Write([]byte("POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\n"))
	require.NoError(t, err)
	go func() {
		// One header byte every 50 ms, never finishing; stops when the
		// server closes the connection (or after 5 s at most).
		for i := 0; i < 100; i++ {
			time.Sleep(50 * time.Millisecond) // pacing the dribble, not synchronisation
			if _, err := conn.Write([]byte("X")); err != nil {
				return
			}
		}
	}()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", elapsed)
	}
	assert.GreaterOrEqual(t, elapsed, timeout-50*time.Millisecond)
	assert.Less(t, elapsed, timeout+2*time.Second, "closed soon after the timeout")
	assert.NotContains(t, string(got), "200 OK")
	assert.Empty(t, h.fake.Requests())

	resp, err := client.Post(srv.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the proxy keeps serving")
}

func TestAccessToken(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.AccessToken = secret.New("local-access-token-123") })
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"missing", nil, 401},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"wrong x-api-key", map[string]string{"X-Api-Key": "nope"}, 401},
		{"bearer", map[string]string{"Authorization": "Bearer local-access-token-123"}, 200},
		{"lower-case scheme", map[string]string{"Authorization": "bearer local-access-token-123"}, 200},
		{"x-api-key", map[string]string{"X-Api-Key": "local-access-token-123"}, 200},
		{"x-api-key with a placeholder bearer", map[string]string{"Authorization": "Bearer dummy", "X-Api-Key": "local-access-token-123"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.fake.Count("/api/v1/chat/completions")
			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, tt.header)
			assert.Equal(t, tt.want, resp.StatusCode, body)
			reached := h.fake.Count("/api/v1/chat/completions") - before
			if tt.want == 200 {
				assert.Equal(t, 1, reached)
				reqs := h.fake.Requests()
				assert.Equal(t, "Bearer "+storedKey, reqs[len(reqs)-1].Header.Get("Authorization"), "the access token never goes upstream")
			} else {
				assert.Contains(t, body, "requires its access token")
				assert.Zero(t, reached)
			}
		})
	}
}

func TestAllowAnyHostOnlyWhenAsked(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.AllowAnyHost = true
		o.AccessToken = secret.New("tok-tok-tok-tok")
	})
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	status, body := rawRequest(t, addr, "GET /api/v1/models HTTP/1.1\r\nHost: 192.168.1.20:8765\r\nAuthorization: Bearer tok-tok-tok-tok\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 200, status, body)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestAcceptsGzip(t *testing.T) {
	for values, want := range map[string]bool{
		"gzip, deflate, br, zstd": true,
		"GZIP":                    true,
		"br;q=1.0, gzip;q=0.5":    true,
		"*":                       true,
		"br":                      false,
		"gzip;q=0, br":            false,
		"gzip; q=0.0":             false,
		"identity":                false,
	} {
		assert.Equal(t, want, acceptsGzip([]string{values}), values)
	}
	assert.True(t, acceptsGzip([]string{"br", "gzip"}), "several header lines")
}

func TestLoopbackHostHeader(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":              true,
		"LocalHost:8765":         true,
		"localhost:":             true, // an empty port is allowed by RFC 3986
		"127.0.0.1":              true,
		"127.0.0.1:8765":         true,
		"127.9.9.9:80":           true,
		"[::1]":                  true,
		"[::1]:8765":             true,
		"[::ffff:127.0.0.1]:1":   true,
		"":                       false,
		"[[::1]]":                false,
		"[[::1]]:8765":           false,
		"[::1]]":                 false,
		"[::1":                   false,
		"[::1]x":                 false,
		"[::1]:abc":              false,
		"[127.0.0.1]":            false, // brackets hold IPv6 only
		"[localhost]":            false,
		"::1":                    false, // IPv6 must be bracketed
		"localhost:abc":          false,
		"localhost:-1":           false,
		"localhost:+80":          false,
		"localhost:65536":        false,
		"localhost:080000":       false,
		"localhost:80:80":        false,
		"127.0.0.1]:80":          false,
		"[127.0.0.1:80":          false,
		"localhost.":             false,
		"evil.example":           false,
		"127.0.0.1.evil.example": false,
		"0.0.0.0":                false,
		"[::]":                   false,
	} {
		assert.Equal(t, want, loopbackHostHeader(host), "%q", host)
	}
}

// TestGuardChecksEveryValue: a browser header is checked in all its values
// and spellings, so a harmless first value does not let a foreign one pass.
func TestGuardChecksEveryValue(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	post := func(host string, extra ...string) string {
		return "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: " +
			itoa(len(chatBody)) + "\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n" + chatBody
	}
	tests := []struct {
		name       string
		raw        string
		wantStatus int
		wantText   string
	}{
		{"foreign Origin after a loopback one", post(addr, "Origin: http://localhost:3000\r\n", "Origin: https://evil.example\r\n"), 403, "Origin \\\"https://evil.example\\\""},
		{"foreign Origin after an empty one", post(addr, "Origin: \r\n", "Origin: https://evil.example\r\n"), 403, "requests from web pages are refused"},
		{"Origin with a bad port", post(addr, "Origin: http://localhost:abc\r\n"), 403, "requests from web pages are refused"},
		{"Origin with doubled brackets", post(addr, "Origin: http://[[::1]]\r\n"), 403, "requests from web pages are refused"},
		{"Sec-Fetch-Site in capitals", post(addr, "Sec-Fetch-Site: Cross-Site\r\n"), 403, "cross-site browser requests are refused"},
		{"Sec-Fetch-Site SAME-SITE", post(addr, "Sec-Fetch-Site: SAME-SITE\r\n"), 403, "cross-site browser requests are refused"},
		{"Sec-Fetch-Site cross-site as a second value", post(addr, "Sec-Fetch-Site: none\r\n", "Sec-Fetch-Site: cross-site\r\n"), 403, "cross-site browser requests are refused"},
		{"Host with doubled brackets", post("[[::1]]"), 403, "DNS-rebinding"},
		{"Host with a bad port", post("localhost:abc"), 403, "DNS-rebinding"},
		{"Host with a port out of range", post("localhost:70000"), 403, "DNS-rebinding"},
		{"Host with a stray bracket", post("127.0.0.1]:" + port(addr)), 403, "DNS-rebinding"},
		{"two loopback Origins", post(addr, "Origin: http://localhost:3000\r\n", "Origin: http://127.0.0.1:3000\r\n"), 200, ""},
		{"same-origin fetch", post(addr, "Sec-Fetch-Site: same-origin\r\n", "Sec-Fetch-Site: None\r\n"), 200, ""},
		{"bracketed IPv6 loopback", post("[::1]:" + port(addr)), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.fake.Requests())
			status, body := rawRequest(t, addr, tt.raw)
			assert.Equal(t, tt.wantStatus, status, body)
			if tt.wantStatus != 200 {
				assert.Contains(t, body, tt.wantText)
				assert.Contains(t, body, `"error":{"code":`)
				assert.Len(t, h.fake.Requests(), before, "the refused request reached upstream")
			}
		})
	}
}

// TestHealthzWithoutAccessToken: service managers probe /healthz without the
// token; everything else still needs it, and /healthz still meets the rest
// of the guard.
func TestHealthzWithoutAccessToken(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.AccessToken = secret.New("local-access-token-123") })
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	tests := []struct {
		name, method, path string
		header             map[string]string
		want               int
	}{
		{"healthz without the token", http.MethodGet, "/healthz", nil, 200},
		{"healthz HEAD without the token", http.MethodHead, "/healthz", nil, 200},
		{"healthz with the token", http.MethodGet, "/healthz", map[string]string{"Authorization": "Bearer local-access-token-123"}, 200},
		{"healthz from a web page", http.MethodGet, "/healthz", map[string]string{"Origin": "https://evil.example"}, 403},
		{"healthz cross-site", http.MethodGet, "/healthz", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"status without the token", http.MethodGet, "/status", nil, 401},
		{"status with the token", http.MethodGet, "/status", map[string]string{"X-Api-Key": "local-access-token-123"}, 200},
		{"API without the token", http.MethodGet, "/api/v1/models", nil, 401},
		{"API below healthz without the token", http.MethodGet, "/healthz/x", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(t, tt.method, tt.path, "", tt.header)
			assert.Equal(t, tt.want, resp.StatusCode, body)
		})
	}
	// The Host check still applies to /healthz.
	status, body := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 403, status, body)
	assert.Contains(t, body, "DNS-rebinding")
	assert.Empty(t, h.fake.Requests())
}
