// Package testkit holds test helpers that several packages' tests share and
// that must not import the product (auth's own tests use them): servers
// that misbehave on purpose and pseudo-terminals.
package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// RedirectingUpstream is an upstream that answers every request with a
// redirect of the given status to a second server on another port, which
// records whatever reaches it (method, URL, Authorization and body) and
// answers as if it were OpenRouter. A secret that shows up in got followed
// the redirect.
func RedirectingUpstream(t testing.TB, status int) (upstream string, elsewhere *httptest.Server, got func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	elsewhere = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"key":"sk-or-v1-stolen","data":{"label":"stolen"}}`))
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, status)
	}))
	t.Cleanup(redirector.Close)
	return redirector.URL + "/api/v1", elsewhere, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
