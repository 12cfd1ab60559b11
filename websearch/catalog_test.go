package websearch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const modelList = `{"data":[
	{"id":"openai/gpt-4o","name":"GPT-4o","supported_parameters":["max_tokens","temperature","tools","tool_choice"]},
	{"id":"old/completion-only","supported_parameters":["max_tokens","temperature"]},
	{"id":"odd/empty-list","supported_parameters":[]},
	{"id":"odd/no-list"},
	{"id":"","supported_parameters":[]},
	{"id":7,"supported_parameters":[]},
	{"id":"weird/escaped\u002dname","supported_parameters":["t\u006fols"]}
]}`

func TestParseCatalog(t *testing.T) {
	c, err := parseCatalog([]byte(modelList))
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{
		"openai/gpt-4o":       true,
		"old/completion-only": false,
		"odd/empty-list":      false,
		"odd/no-list":         true,
		"weird/escaped-name":  true,
	}, c.tools)
	assert.Equal(t, 2, c.withoutTools)

	for _, bad := range []string{
		``, `{"data":[`, `{"data":[]}x`, `<html>502 Bad Gateway</html>`, `{"data":{}}`, `{"models":[]}`, `[]`,
	} {
		_, err := parseCatalog([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
	c, err = parseCatalog([]byte(`{"data":[]}`))
	require.NoError(t, err)
	assert.Empty(t, c.tools)
}

// modelServer answers GET /models with the given answers in turn (the last
// one repeats) and reports each request's arrival on the returned channel.
func modelServer(t *testing.T, answers ...func(http.ResponseWriter, *http.Request)) (*httptest.Server, <-chan time.Time) {
	t.Helper()
	arrivals := make(chan time.Time, 1000)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals <- time.Now()
		i := int(n.Add(1)) - 1
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/models" || r.Header.Get("Authorization") != "" {
			t.Errorf("unexpected request %s %s (Authorization %q)", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		answers[min(i, len(answers)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, arrivals
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// waitFor receives n arrivals, or fails the test after a generous timeout.
func waitFor(t *testing.T, arrivals <-chan time.Time, n int) []time.Time {
	t.Helper()
	got := make([]time.Time, 0, n)
	for len(got) < n {
		select {
		case at := <-arrivals:
			got = append(got, at)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d catalogue requests arrived", len(got), n)
		}
	}
	return got
}

// runInjector starts Run and returns a function that stops it and waits.
func runInjector(t *testing.T, in *Injector) (stop func()) {
	t.Helper()
	return testkit.Background(t, in.Run)
}

func TestRunLoadsAndRefreshesTheCatalog(t *testing.T) {
	srv, arrivals := modelServer(t, answer(200, modelList))
	in, err := New(testSettings(), srv.URL+"/api/v1/", srv.Client(), nil, Options{RefreshEvery: time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	runInjector(t, in)

	// The second request proves the first answer was stored: fetches
	// run one after another.
	waitFor(t, arrivals, 2)
	st := in.Status().Catalog
	assert.Equal(t, 5, st.Models)
	assert.Equal(t, 2, st.WithoutTools)
	assert.False(t, st.LastRefresh.Before(start))
	assert.Empty(t, st.LastError)

	_, d := in.Patch(chatReq, []byte(`{"model":"old/completion-only","messages":[]}`))
	assert.Equal(t, ReasonNoToolSupport, d.Reason)
	_, d = in.Patch(chatReq, []byte(`{"model":"openai/gpt-4o","messages":[]}`))
	assert.True(t, d.Patched)
}

func TestRunBacksOffAndRecovers(t *testing.T) {
	srv, arrivals := modelServer(t,
		answer(500, `{"error":{"message":"internal"}}`),
		answer(200, `{"data":[{"id":"x"`), // malformed
		answer(429, `{"error":{"message":"rate limited"}}`),
		answer(200, `{"object":"list"}`),
		answer(200, modelList),
		answer(502, `bad gateway`),
		answer(200, modelList),
	)
	core, logs := observer.New(zap.WarnLevel)
	in, err := New(testSettings(), srv.URL+"/api/v1", srv.Client(), zap.New(core), Options{
		RefreshEvery: 20 * time.Millisecond,
		RetryMin:     2 * time.Millisecond,
		RetryMax:     8 * time.Millisecond,
	})
	require.NoError(t, err)
	runInjector(t, in)

	at := waitFor(t, arrivals, 5)
	// Four failures back off 2, 4, 8, 8 ms: waits that really happen, so a
	// failing upstream is not hammered.
	for i, want := range []time.Duration{2, 4, 8, 8} {
		assert.GreaterOrEqual(t, at[i+1].Sub(at[i]), want*time.Millisecond, "wait after failure %d", i+1)
	}
	at = append(at, waitFor(t, arrivals, 2)...)
	assert.GreaterOrEqual(t, at[5].Sub(at[4]), 20*time.Millisecond, "after a success the refresh interval applies")

	st := in.Status().Catalog
	assert.Equal(t, 5, st.Models, "the catalogue from the fifth answer")
	assert.Equal(t, "model list: HTTP 502", st.LastError)

	var waits []time.Duration
	for _, e := range logs.FilterMessageSnippet("catalogue fetch failed").All() {
		waits = append(waits, e.ContextMap()["retry_in"].(time.Duration))
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{2 * ms, 4 * ms, 8 * ms, 8 * ms, 2 * ms}, waits, "a success resets the backoff")
}

func TestRunKeepsTheCatalogWhenARefreshFails(t *testing.T) {
	srv, arrivals := modelServer(t, answer(200, modelList), answer(200, `{"data":[{"id":`))
	in, err := New(testSettings(), srv.URL+"/api/v1", srv.Client(), nil, Options{
		RefreshEvery: time.Millisecond, RetryMin: time.Millisecond,
	})
	require.NoError(t, err)
	runInjector(t, in)
	waitFor(t, arrivals, 3)
	st := in.Status().Catalog
	assert.Equal(t, 5, st.Models)
	assert.Equal(t, "model list is not valid JSON", st.LastError)
	_, d := in.Patch(chatReq, []byte(`{"model":"old/completion-only","messages":[]}`))
	assert.Equal(t, ReasonNoToolSupport, d.Reason)
}

func TestRunFetchTimeout(t *testing.T) {
	srv, arrivals := modelServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	in, err := New(testSettings(), srv.URL+"/api/v1", srv.Client(), nil, Options{
		FetchTimeout: 20 * time.Millisecond, RetryMin: time.Millisecond,
	})
	require.NoError(t, err)
	runInjector(t, in)
	waitFor(t, arrivals, 2)
	assert.Contains(t, in.Status().Catalog.LastError, "context deadline exceeded")
	assert.Zero(t, in.Status().Catalog.Models)
	_, d := in.Patch(chatReq, []byte(`{"model":"old/completion-only","messages":[]}`))
	assert.True(t, d.Patched, "without a catalogue every model gets the tool")
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		srv, _ := modelServer(t, answer(200, modelList))
		loaded := make(chan struct{})
		core, _ := observer.New(zap.InfoLevel)
		logger := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
			if e.Message == "model catalogue loaded" {
				close(loaded)
			}
			return nil
		}))
		in, err := New(testSettings(), srv.URL+"/api/v1", srv.Client(), logger, Options{})
		require.NoError(t, err)
		stop := runInjector(t, in)
		select {
		case <-loaded: // Run now waits hours for the next refresh.
		case <-time.After(10 * time.Second):
			t.Fatal("the catalogue did not load")
		}
		stop()
		srv.Close()
		goleak.VerifyNone(t)
	})
	t.Run("during a fetch", func(t *testing.T) {
		srv, arrivals := modelServer(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})
		in, err := New(testSettings(), srv.URL+"/api/v1", srv.Client(), nil, Options{})
		require.NoError(t, err)
		stop := runInjector(t, in)
		waitFor(t, arrivals, 1)
		stop()
		srv.Close()
		goleak.VerifyNone(t)
		assert.Empty(t, in.Status().Catalog.LastError, "a cancelled fetch is not an upstream failure")
	})
}

func TestRunWithNothingToDo(t *testing.T) {
	for name, tc := range map[string]struct {
		settings Settings
		upstream string
	}{
		"no upstream": {testSettings(), ""},
		"disabled":    {Settings{Engine: "auto", MaxResults: 8}, "http://127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			in, err := New(tc.settings, tc.upstream, nil, nil, Options{})
			require.NoError(t, err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				in.Run(context.Background())
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run blocked with nothing to fetch")
			}
		})
	}
}
