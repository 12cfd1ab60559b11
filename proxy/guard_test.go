package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fakeopenrouter"
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
	h := newHarness(t, fakeopenrouter.Options{})
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	post := func(target, host string, extra ...string) string {
		return "POST " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: " +
			itoa(len(chatBody)) + "\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n" + chatBody
	}
	tests := []struct {
		name       string
		raw        string
		wantStatus int
		wantText   string
	}{
		{"foreign Host", post("/api/v1/chat/completions", "evil.example"), 403, "Host \\\"evil.example\\\" is refused"},
		{"DNS rebinding Host with our port", post("/api/v1/chat/completions", "rebind.evil.example:"+port(addr)), 403, "DNS-rebinding"},
		{"foreign Origin", post("/api/v1/chat/completions", addr, "Origin: https://evil.example\r\n"), 403, "requests from web pages are refused"},
		{"null Origin", post("/api/v1/chat/completions", addr, "Origin: null\r\n"), 403, "requests from web pages are refused"},
		{"cross-site fetch", post("/api/v1/chat/completions", addr, "Sec-Fetch-Site: cross-site\r\n"), 403, "cross-site browser requests are refused"},
		{"CONNECT", "CONNECT openrouter.ai:443 HTTP/1.1\r\nHost: openrouter.ai:443\r\n\r\n", 405, "CONNECT is refused"},
		{"absolute-form target", post("http://openrouter.ai/api/v1/chat/completions", addr), 400, "not a forward proxy"},
		{"absolute-form target with our own host", post("http://"+addr+"/api/v1/chat/completions", addr), 400, "not a forward proxy"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n", 400, "not a forward proxy"},
		{"dot-dot escape", post("/api/v1/../../x", addr), 400, "dot segments"},
		{"encoded dot-dot", post("/api/v1/%2e%2e/%2e%2e/x", addr), 400, "dot segments"},
		{"single dot", post("/api/v1/./chat/completions", addr), 400, "dot segments"},
		{"double slash", post("/api/v1//chat/completions", addr), 400, "empty path segments"},
		{"encoded slash", post("/api/v1/chat%2Fcompletions", addr), 400, "encoded slashes"},
		{"encoded backslash", post("/api/v1/chat%5Ccompletions", addr), 400, "encoded slashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawRequest(t, addr, tt.raw)
			assert.Equal(t, tt.wantStatus, status, body)
			assert.Contains(t, body, tt.wantText)
			assert.Contains(t, body, `"error":{"code":`)
		})
	}
	assert.Empty(t, h.fake.Requests(), "no refused request reached upstream")

	// The allowed forms still pass.
	for _, host := range []string{addr, "localhost:" + port(addr), "[::1]:" + port(addr), "LOCALHOST"} {
		status, body := rawRequest(t, addr, post("/api/v1/chat/completions", host, "Origin: http://localhost:3000\r\n"))
		assert.Equal(t, 200, status, "%s: %s", host, body)
	}
}

func TestAccessToken(t *testing.T) {
	h := newHarness(t, fakeopenrouter.Options{}, func(o *Options) { o.AccessToken = secret.New("local-access-token-123") })
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
	h := newHarness(t, fakeopenrouter.Options{}, func(o *Options) {
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
