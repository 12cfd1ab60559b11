package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// recordingTransport notes where every request the proxy sends goes.
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	urls []*url.URL
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	u := *req.URL
	r.urls = append(r.urls, &u)
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

func (r *recordingTransport) sent() []*url.URL {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*url.URL(nil), r.urls...)
}

// elsewhere is a server the key must never reach.
type elsewhere struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newElsewhere(t *testing.T) *elsewhere {
	e := &elsewhere{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Clone(r.Context()))
		e.mu.Unlock()
		_, _ = io.WriteString(w, `{"stolen":true}`)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *elsewhere) requests() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.seen...)
}

// TestNoOpenProxy: whatever a client sends, orproxy sends the key to the
// configured upstream and nowhere else, and never follows a redirect with it.
func TestNoOpenProxy(t *testing.T) {
	evil := newElsewhere(t)
	evilURL, _ := url.Parse(evil.srv.URL)
	rec := &recordingTransport{base: testTransport(t)}
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Transport = rec })
	// The upstream answers some paths with redirects to the other server.
	fakeHandler := h.fake.Handler()
	h.upstream.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/redirect/302":
			http.Redirect(w, r, evil.srv.URL+"/api/v1/chat/completions", http.StatusFound)
		case "/api/v1/redirect/307":
			http.Redirect(w, r, evil.srv.URL+"/api/v1/chat/completions", http.StatusTemporaryRedirect)
		case "/api/v1/redirect/relative":
			http.Redirect(w, r, "//"+evilURL.Host+"/x", http.StatusPermanentRedirect)
		default:
			fakeHandler.ServeHTTP(w, r)
		}
	})
	upstreamHost := strings.TrimPrefix(h.upstream.URL, "http://")
	addr := strings.TrimPrefix(h.proxy.URL, "http://")

	t.Run("request forms that name another host", func(t *testing.T) {
		for _, tc := range []struct {
			raw     string
			refused bool
		}{
			{"POST /api/v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\n", true},
			// The other server's loopback address passes the guard, but the
			// request still goes to the configured upstream.
			{"POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + evilURL.Host + "\r\n", false},
			{"POST http://" + evilURL.Host + "/api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\n", true},
			{"POST http://" + addr + "@" + evilURL.Host + "/api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\n", true},
			{"POST //" + evilURL.Host + "/api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\n", true},
			{"CONNECT " + evilURL.Host + " HTTP/1.1\r\nHost: " + evilURL.Host + "\r\n", true},
		} {
			full := tc.raw + "Content-Length: " + itoa(len(chatBody)) + "\r\nConnection: close\r\n\r\n" + chatBody
			status, body := rawRequest(t, addr, full)
			if tc.refused {
				assert.True(t, status >= 400 && status < 500, "%q: %d %s", tc.raw, status, body)
			} else {
				assert.Equal(t, http.StatusOK, status, "%q: %s", tc.raw, body)
			}
		}
	})

	t.Run("paths and headers that look like another host", func(t *testing.T) {
		for _, tc := range []struct {
			path, wantPath string
			header         map[string]string
		}{
			{"/api/v1/@" + evilURL.Host, "/api/v1/@" + evilURL.Host, nil},
			{"/api/v1/%40" + evilURL.Host + "/models", "/api/v1/@" + evilURL.Host + "/models", nil},
			{"/v1/" + evilURL.Host + "/api/v1/chat/completions", "/api/v1/" + evilURL.Host + "/api/v1/chat/completions", nil},
			{"/api/v1/models?url=" + url.QueryEscape(evil.srv.URL), "/api/v1/models", nil},
			{"/api/v1/models", "/api/v1/models", map[string]string{"X-Forwarded-Host": evilURL.Host, "Forwarded": "host=" + evilURL.Host, "X-Original-URL": evil.srv.URL, "X-Rewrite-URL": evil.srv.URL}},
		} {
			before := len(h.fake.Requests())
			h.do(t, http.MethodGet, tc.path, "", tc.header)
			reqs := h.fake.Requests()
			require.Len(t, reqs, before+1, tc.path)
			assert.Equal(t, tc.wantPath, reqs[len(reqs)-1].Path, tc.path)
			for _, name := range []string{"X-Forwarded-Host", "Forwarded"} {
				assert.Empty(t, reqs[len(reqs)-1].Header.Values(name), "%s is not passed on", name)
			}
		}
	})

	t.Run("redirects are passed to the client, not followed", func(t *testing.T) {
		noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, tc := range []struct {
			path   string
			status int
		}{
			{"/api/v1/redirect/302", http.StatusFound},
			{"/api/v1/redirect/307", http.StatusTemporaryRedirect},
			{"/api/v1/redirect/relative", http.StatusPermanentRedirect},
		} {
			resp, err := noFollow.Post(h.proxy.URL+tc.path, "application/json", strings.NewReader(chatBody))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode, tc.path)
			assert.Contains(t, resp.Header.Get("Location"), evilURL.Host, "the redirect reaches the client as it was")
		}
		// A client that follows them goes there itself, with what it had: never our key.
		follow := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/redirect/307", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer dummy")
		resp, err := follow.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		for _, r := range evil.requests() {
			assert.NotContains(t, r.Header.Get("Authorization"), storedKey)
		}
	})

	for _, u := range rec.sent() {
		assert.Equal(t, upstreamHost, u.Host, "orproxy sent a request to %s", u)
		assert.Equal(t, "http", u.Scheme)
	}
	assert.NotEmpty(t, rec.sent())
	// Only the client that chose to follow a redirect reached the other server.
	assert.LessOrEqual(t, len(evil.requests()), 1)
}
