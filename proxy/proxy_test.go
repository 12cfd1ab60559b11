package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/bodypatch"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	storedKey  = "sk-or-v1-stored0000000000000000000000000000000000000000000000000a1b2"
	rotatedKey = "sk-or-v1-rotated000000000000000000000000000000000000000000000000c3d4"
	chatBody   = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
)

// staticKeys is a KeyProvider over fixed values.
type staticKeys struct {
	mu       sync.Mutex
	key      secret.Secret
	err      error
	replace  func(rejected secret.Secret) (secret.Secret, error)
	replaced atomic.Int32
	// replaceWaits makes Replace wait for the request's end.
	replaceWaits bool
	asked        atomic.Int32 // calls to Key
	accepted     []secret.Secret
}

func (k *staticKeys) Key(context.Context) (secret.Secret, error) {
	k.asked.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.key, k.err
}

func (k *staticKeys) Replace(ctx context.Context, rejected secret.Secret) (secret.Secret, error) {
	k.replaced.Add(1)
	if k.replaceWaits {
		// As a login does: nothing comes until the request is given up.
		<-ctx.Done()
		return secret.Secret{}, ctx.Err()
	}
	if k.replace == nil {
		return secret.Secret{}, errors.New("no broker is configured, so no new key could be obtained; run `orproxy login`")
	}
	return k.replace(rejected)
}

func (k *staticKeys) Status() statusdoc.Credential { return statusdoc.Credential{Key: k.key.String()} }

type harness struct {
	fake     *openrouter.Server
	upstream *httptest.Server
	handler  *Handler
	proxy    *httptest.Server
	keys     *staticKeys
	logs     *observer.ObservedLogs
}

type harnessOption func(*Options)

func newHarness(t *testing.T, fakeOpts openrouter.Options, opts ...harnessOption) *harness {
	t.Helper()
	if fakeOpts.Keys == nil {
		fakeOpts.Keys = []string{storedKey}
	}
	fake := openrouter.New(fakeOpts)
	upstream := httptest.NewServer(fake.Handler())
	t.Cleanup(upstream.Close)
	keys := &staticKeys{key: secret.New(storedKey)}
	core, logs := observer.New(zapcore.DebugLevel)
	u, _ := url.Parse(upstream.URL + "/api/v1")
	o := Options{Upstream: u, Keys: keys, Logger: zap.New(core), Version: "test", Transport: testTransport(t)}
	for _, f := range opts {
		f(&o)
	}
	h, err := NewHandler(o)
	require.NoError(t, err)
	// The real server settings matter here (OPTIONS *, header limits).
	srv := httptest.NewUnstartedServer(h)
	srv.Config = NewServer(h, ServerOptions{Logger: o.Logger})
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{fake: fake, upstream: upstream, handler: h, proxy: srv, keys: keys, logs: logs}
}

func testTransport(t *testing.T) *http.Transport {
	tr, err := NewUpstreamTransport()
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

var client = &http.Client{Timeout: 10 * time.Second}

func (h *harness) do(t *testing.T, method, path, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.proxy.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestInjectsStoredKeyAndDropsClientCredentials(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{
		"Authorization":        "Bearer dummy",
		"X-Api-Key":            "dummy",
		"X_Api_Key":            "dummy",
		"Cookie":               "session=local",
		"X-Orproxy-Anything":   "off",
		"X_Orproxy_Web_Search": "on",
		"Content-Type":         "application/json",
		"HTTP-Referer":         "https://my.app",
		"X-OpenRouter-Title":   "My App",
		"Anthropic-Version":    "2023-06-01",
		"X-Custom-Passthru":    "yes",
		"X-Forwarded-For":      "10.0.0.1",
		"Proxy-Authorization":  "Basic Zm9vOmJhcg==",
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, openrouter.DefaultReply)

	reqs := h.fake.Requests()
	require.Len(t, reqs, 1)
	got := reqs[0].Header
	assert.Equal(t, []string{"Bearer " + storedKey}, got.Values("Authorization"))
	for _, name := range []string{"X-Api-Key", "X_api_key", "Cookie", "X-Orproxy-Anything", "X_orproxy_web_search", "X-Forwarded-For", "Proxy-Authorization"} {
		assert.Empty(t, got.Values(name), name)
	}
	assert.Equal(t, "https://my.app", got.Get("HTTP-Referer"))
	assert.Equal(t, "My App", got.Get("X-OpenRouter-Title"))
	assert.Equal(t, "2023-06-01", got.Get("Anthropic-Version"))
	assert.Equal(t, "yes", got.Get("X-Custom-Passthru"))
	assert.Equal(t, chatBody, string(reqs[0].Body), "body forwarded byte for byte")
}

func TestMethodsPathsAndQueriesKept(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	tests := []struct {
		method, path, wantPath, wantQuery string
	}{
		{http.MethodGet, "/api/v1/models?supported_parameters=tools&limit=5", "/api/v1/models", "supported_parameters=tools&limit=5"},
		{http.MethodGet, "/v1/models", "/api/v1/models", ""},
		{http.MethodPost, "/v1/messages/count_tokens?beta=true", "/api/v1/messages/count_tokens", "beta=true"},
		{http.MethodPut, "/api/v1/some/thing?x=1", "/api/v1/some/thing", "x=1"},
		{http.MethodPatch, "/api/v1/keys/abc", "/api/v1/keys/abc", ""},
		{http.MethodDelete, "/api/v1/keys/abc?force=1", "/api/v1/keys/abc", "force=1"},
		{http.MethodGet, "/api/v1/models/openai/gpt-4o:free/endpoints", "/api/v1/models/openai/gpt-4o:free/endpoints", ""},
		{http.MethodGet, "/api/v1/generation?id=gen-1%2B2", "/api/v1/generation", "id=gen-1%2B2"},
	}
	for i, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, _ := h.do(t, tt.method, tt.path, "", nil)
			assert.NotEqual(t, http.StatusBadGateway, resp.StatusCode)
			reqs := h.fake.Requests()
			require.Len(t, reqs, i+1)
			last := reqs[len(reqs)-1]
			assert.Equal(t, tt.method, last.Method)
			assert.Equal(t, tt.wantPath, last.Path)
			assert.Equal(t, tt.wantQuery, last.Query)
			assert.Equal(t, "Bearer "+storedKey, last.Header.Get("Authorization"))
		})
	}
}

func TestSSEArrivesEventByEvent(t *testing.T) {
	const gap = 300 * time.Millisecond
	h := newHarness(t, openrouter.Options{ChunkDelay: gap, Reply: "one two three"})
	req, _ := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	start := time.Now()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	var arrivals []time.Duration
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			arrivals = append(arrivals, time.Since(start))
			events = append(events, line)
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(events), 5, "three words, the finish chunk, usage, [DONE]")
	assert.Equal(t, "data: [DONE]", events[len(events)-1])
	// Each data event left the fake one gap after the previous one; a
	// buffering proxy would deliver them together at the end.
	for i := 1; i < 4; i++ {
		spacing := arrivals[i] - arrivals[i-1]
		assert.Greater(t, spacing, gap/2, "event %d arrived %v after the previous one", i, spacing)
	}
	assert.Less(t, arrivals[0], 2*gap, "the first event must not wait for the rest")
}

func TestSSEHeadersArriveBeforeTheFirstEvent(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: {}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.Upstream, _ = url.Parse(up.URL + "/api/v1")
	})
	req, _ := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true}`))
	resp, err := client.Do(req) // returns once the headers are in
	close(release)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "data: {}\n\ndata: [DONE]\n\n", string(b))
}

func TestUpstreamUnreachableIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.Upstream, _ = url.Parse("http://" + deadAddr + "/api/v1")
	})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct {
		Error struct {
			Code    int
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	assert.Equal(t, 502, e.Error.Code)
	assert.Contains(t, e.Error.Message, "could not reach OpenRouter at http://"+deadAddr+"/api/v1")
	assert.Contains(t, e.Error.Message, "connection refused")
}

func TestHeaderTimeoutIs504(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.HeaderTimeout = 150 * time.Millisecond })
	h.fake.SetFault(openrouter.Fault{HangBeforeHeaders: true})
	start := time.Now()
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	assert.JSONEq(t, `{"error":{"code":504,"message":"OpenRouter sent no response headers within 150ms; try again, or use streaming for long completions"}}`, body)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestSlowHeadersWithinTimeoutStillWork(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.HeaderTimeout = 2 * time.Second })
	h.fake.SetFault(openrouter.Fault{HeaderDelay: 300 * time.Millisecond})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

func TestNoCredentialIs401WithLoginHint(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.keys.key, h.keys.err = secret.Secret{}, errors.New("no credential stored; run `orproxy login`")
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, body, `"code":401`)
	assert.Contains(t, body, "run `orproxy login`")
	assert.Equal(t, 0, h.fake.Count("/api/v1/chat/completions"), "nothing goes upstream without a key")
}

// The key is decided once per forwarded request, before it goes upstream:
// a retry after a 401 takes the replacement, not a second lookup, and what
// orproxy answers itself needs no key.
func TestKeyIsDecidedOncePerForwardedRequest(t *testing.T) {
	h := newHarness(t, openrouter.Options{Keys: []string{storedKey, rotatedKey}})
	h.keys.replace = func(secret.Secret) (secret.Secret, error) { return secret.New(rotatedKey), nil }
	for _, path := range []string{"/healthz", "/status", "/nope"} {
		h.do(t, http.MethodGet, path, "", nil)
	}
	h.do(t, http.MethodGet, "/api/v1/models", "", map[string]string{"Origin": "https://evil.example"})
	assert.Zero(t, h.keys.asked.Load(), "answered locally, no key asked")

	resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h.fake.Revoke(storedKey)
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.EqualValues(t, 2, h.keys.asked.Load())
	assert.EqualValues(t, 1, h.keys.replaced.Load())
	reqs := h.fake.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "Bearer "+rotatedKey, reqs[2].Header.Get("Authorization"), "the retry carries the replacement")
}

func TestUpstream401WithoutReplacementKeepsStatusAndSaysWhy(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.fake.Revoke(storedKey)
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, body, "User not found.")
	assert.Contains(t, body, "no broker is configured")
	assert.Equal(t, 1, h.fake.Count("/api/v1/chat/completions"), "no retry without a new key")
}

func TestUpstream401RetriedOnceWithReplacement(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.keys.replace = func(rejected secret.Secret) (secret.Secret, error) {
		assert.Equal(t, storedKey, rejected.Reveal())
		h.fake.AddKey(rotatedKey, "", nil)
		return secret.New(rotatedKey), nil
	}
	h.fake.Revoke(storedKey)
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	reqs := h.fake.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer "+rotatedKey, reqs[1].Header.Get("Authorization"))
	assert.Equal(t, chatBody, string(reqs[1].Body), "the replay carries the same body")
}

func TestUpstream401AgainAfterReplacementIsFinal(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.keys.replace = func(secret.Secret) (secret.Secret, error) { return secret.New(rotatedKey), nil } // also unknown upstream
	h.fake.Revoke(storedKey)
	resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, 2, h.fake.Count("/api/v1/chat/completions"), "exactly one retry")
	assert.EqualValues(t, 1, h.keys.replaced.Load())
}

func TestMissingAuthenticationHeaderIsNotRotated(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		// A transport that loses the header plays the proxy bug.
		base := testTransport(t)
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Del("Authorization")
			return base.RoundTrip(r)
		})
	})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, body, "Missing Authentication header")
	assert.EqualValues(t, 0, h.keys.replaced.Load())
	assert.NotEmpty(t, h.logs.FilterMessageSnippet("orproxy bug").All())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRateLimitAndPaymentPassThrough(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusPaymentRequired} {
		h := newHarness(t, openrouter.Options{})
		h.fake.SetFault(openrouter.Fault{Status: status})
		resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		assert.Equal(t, status, resp.StatusCode)
		assert.EqualValues(t, 0, h.keys.replaced.Load())
		assert.Equal(t, 1, h.fake.Count("/api/v1/chat/completions"))
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.MaxRequestBody = 1024 })
	big := `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", big, nil)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Contains(t, body, "limits.max_request_body (1024 bytes)")

	// Without a Content-Length the limit is found while reading.
	req, _ := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp2, err := client.Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp2.StatusCode)
	assert.Equal(t, 0, h.fake.Count("/api/v1/chat/completions"))
}

// TestChunkedRequestGoesUpstreamWithItsLength: the body is read whole before
// it goes upstream, so it goes with a Content-Length, whatever framing the
// client used.
func TestChunkedRequestGoesUpstreamWithItsLength(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	req, err := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", io.MultiReader(strings.NewReader(chatBody)))
	require.NoError(t, err)
	req.ContentLength = -1 // sent chunked
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	reqs := h.fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, chatBody, string(reqs[0].Body))
	assert.Equal(t, strconv.Itoa(len(chatBody)), reqs[0].Header.Get("Content-Length"))
}

func TestHealthStatusAndNotFound(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	resp, body := h.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	resp, body = h.do(t, http.MethodGet, "/status", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	var st struct {
		Version    string
		Upstream   string
		Credential map[string]any
		Requests   struct {
			Total    int
			ByStatus map[string]int `json:"by_status"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	assert.Equal(t, "test", st.Version)
	assert.Equal(t, h.upstream.URL+"/api/v1", st.Upstream)
	assert.Equal(t, "sk-or-v1-…a1b2", st.Credential["key"])
	assert.Equal(t, 1, st.Requests.ByStatus["2xx"])
	assert.NotContains(t, body, storedKey)

	resp, body = h.do(t, http.MethodGet, "/nope", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, body, `"code":404`)
	assert.Contains(t, body, "orproxy serves /api/v1/…")
}

// TestUpstreamAnsweringBeforeReadingBody covers golang/go#40747: a proxy that
// streams the request body to an upstream which answers without reading it
// loses a share of requests under load. All must succeed here.
func TestUpstreamAnsweringBeforeReadingBody(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.fake.SetFault(openrouter.Fault{IgnoreBody: true})
	body := `{"messages":[{"role":"user","content":"` + strings.Repeat("y", 256<<10) + `"}]}`
	const requests, workers = 300, 16
	var failed atomic.Int32
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := client.Post(h.proxy.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	assert.Zero(t, failed.Load(), "requests lost")
	client.CloseIdleConnections()
}

func TestSecretsNeverLogged(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.HeaderTimeout = 200 * time.Millisecond })
	// The refresh token never reaches this package (auth's errors name it
	// redacted, tested there and in the e2e sweep); the key does, raw.
	h.keys.replace = func(secret.Secret) (secret.Secret, error) {
		return secret.Secret{}, errors.New("the broker refused the refresh token")
	}
	paths := []func(){
		func() {
			h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer " + storedKey})
		},
		func() { h.do(t, http.MethodGet, "/v1/models", "", nil) },
		func() { h.do(t, http.MethodGet, "/status", "", nil) },
		func() { h.do(t, http.MethodGet, "/healthz", "", nil) },
		func() { h.do(t, http.MethodGet, "/elsewhere", "", nil) },
		func() {
			h.do(t, http.MethodGet, "/api/v1/models", "", map[string]string{"Origin": "https://evil.example"})
		},
		func() {
			h.fake.Revoke(storedKey)
			h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		},
		func() {
			h.fake.SetFault(openrouter.Fault{HangBeforeHeaders: true})
			h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
			h.fake.SetFault(openrouter.Fault{})
		},
		func() {
			h.keys.err = errors.New("no credential stored; run `orproxy login`")
			h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		},
	}
	for _, p := range paths {
		p()
	}
	require.NotZero(t, h.logs.Len())
	for _, e := range h.logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		assert.NotContains(t, line, storedKey)
	}
}

func TestForwardedAnswerKeepsItsFraming(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, len(body), resp.ContentLength, "sent before the log line, still with its length")
	assert.Empty(t, resp.TransferEncoding)

	resp, body = h.do(t, http.MethodGet, "/api/v1/no-such-thing", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.EqualValues(t, len(body), resp.ContentLength)
	// The line is written after the answer went out.
	require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == 2 }, 2*time.Second, time.Millisecond)
}

func TestRequestLogLine(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	h.do(t, http.MethodPost, "/api/v1/chat/completions", `{"model":"openai/gpt-4o-mini","stream":true,"messages":[]}`, nil)
	// The line is written after the answer went out.
	require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == 1 }, 2*time.Second, time.Millisecond)
	entries := h.logs.FilterMessage("request").All()
	require.Len(t, entries, 1)
	f := entries[0].ContextMap()
	assert.Equal(t, "POST", f["method"])
	assert.Equal(t, "/api/v1/chat/completions", f["path"])
	assert.EqualValues(t, 200, f["status"])
	assert.Equal(t, "openai/gpt-4o-mini", f["model"])
	assert.Equal(t, true, f["stream"])
	assert.Equal(t, false, f["retried"])
	assert.Greater(t, f["bytes"], int64(0))
	assert.Contains(t, f, "duration")
}

// scannedPatcher reports a scan that found no model and no stream, so a
// test can tell whether the proxy read the body again.
type scannedPatcher struct{ alwaysPatch }

func (scannedPatcher) PatchRequest(_ *http.Request, _ string, body []byte) ([]byte, bodypatch.Info) {
	return body, bodypatch.Info{Scanned: true}
}

// Model and stream come from one reading of the body: the patcher's scan
// when it scanned it, else the proxy's own, for every JSON body by the one
// rule (form-encoded bodies from curl -d and +json types included).
func TestLogLineReadsTheBodyOnce(t *testing.T) {
	tests := []struct {
		name        string
		patcher     BodyPatcher
		path        string
		contentType string
		model       string
		stream      bool
	}{
		{name: "the patcher's scan is final", patcher: scannedPatcher{}, path: "/chat/completions", contentType: "application/json"},
		{name: "no patcher", path: "/chat/completions", contentType: "application/json", model: "m", stream: true},
		{name: "form-encoded, as curl -d sends", path: "/embeddings", contentType: "application/x-www-form-urlencoded", model: "m", stream: true},
		{name: "+json", path: "/embeddings", contentType: "application/vnd.api+json", model: "m", stream: true},
		{name: "not JSON", path: "/embeddings", contentType: "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, openrouter.Options{}, func(o *Options) {
				if tt.patcher != nil {
					o.Patcher = tt.patcher
				}
			})
			h.do(t, http.MethodPost, "/api/v1"+tt.path, `{"model":"m","stream":true,"input":"x","messages":[]}`, map[string]string{"Content-Type": tt.contentType})
			require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == 1 }, 2*time.Second, time.Millisecond)
			f := h.logs.FilterMessage("request").All()[0].ContextMap()
			assert.Equal(t, tt.model, f["model"])
			assert.Equal(t, tt.stream, f["stream"])
		})
	}
}

// A client decides the path and the model name: the log line shows them
// bounded and without control characters.
func TestRequestLogLineBoundsClientValues(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	model := "evil\u001b[2J\n" + strings.Repeat("m", 10_000)
	h.do(t, http.MethodPost, "/api/v1/chat/completions", `{"model":"`+model+`","messages":[]}`, nil)
	require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == 1 }, 2*time.Second, time.Millisecond)
	logged := h.logs.FilterMessage("request").All()[0].ContextMap()["model"].(string)
	assert.True(t, strings.HasPrefix(logged, "evil?[2J?mmm"), logged[:20])
	assert.LessOrEqual(t, len(logged), 200+len("…"))
}

func TestGracefulShutdownFinishesStream(t *testing.T) {
	h := newHarness(t, openrouter.Options{ChunkDelay: 100 * time.Millisecond, Reply: "a b c d e f"})
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := NewServer(h.handler, ServerOptions{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, ServerOptions{DrainTimeout: 5 * time.Second}) }()

	resp, err := client.Post("http://"+ln.Addr().String()+"/api/v1/chat/completions", "application/json",
		strings.NewReader(`{"stream":true,"messages":[]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	stop() // shutdown begins while the stream is open
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.True(t, bytes.HasSuffix(data, []byte("data: [DONE]\n\n")), "the stream finished")
	require.NoError(t, <-done)
	_, err = client.Get("http://" + ln.Addr().String() + "/healthz")
	assert.Error(t, err, "no longer accepting")
}

func TestShutdownDrainTimeoutCutsLongStream(t *testing.T) {
	h := newHarness(t, openrouter.Options{ChunkDelay: 200 * time.Millisecond, Reply: strings.Repeat("w ", 50)})
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := NewServer(h.handler, ServerOptions{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, ServerOptions{DrainTimeout: 300 * time.Millisecond}) }()
	resp, err := client.Post("http://"+ln.Addr().String()+"/api/v1/chat/completions", "application/json",
		strings.NewReader(`{"stream":true,"messages":[]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	start := time.Now()
	stop()
	require.NoError(t, <-done)
	assert.Less(t, time.Since(start), 3*time.Second)
	_, err = io.ReadAll(resp.Body)
	assert.Error(t, err, "the unfinished stream was cut, not ended cleanly")
}

func TestListenBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already in use")
	assert.Contains(t, err.Error(), "orproxy status")
}
