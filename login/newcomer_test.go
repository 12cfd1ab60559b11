package login

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// brokerAt is a login through a broker at baseURL with a short broker timeout.
func brokerAt(t *testing.T, baseURL string, timeout time.Duration) Options {
	t.Helper()
	bc, err := auth.NewBrokerClient(baseURL, nil, timeout, nil)
	require.NoError(t, err)
	return Options{Method: MethodBroker, Broker: bc, Upstream: "http://127.0.0.1:1/api/v1", Timeout: time.Minute}
}

// A broker that cannot be reached fails the login within broker.timeout,
// naming broker.url, before any address is printed or opened; a wrong
// broker.url (404) says so.
func TestLoginBrokerMustAnswerFirst(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(stuck.Close)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)

	for _, tc := range []struct {
		name, url string
		want      string
	}{
		{"refused", closedURL, "the broker at broker.url " + closedURL + " does not answer (connect: connection refused); check broker.url (or ORPROXY_BROKER_URL)"},
		{"too slow", stuck.URL, "the broker at broker.url " + stuck.URL + " did not answer within 300ms (broker.timeout)"},
		{"wrong URL", notFound.URL + "/wrong", "broker.url " + notFound.URL + "/wrong answered 404 at /auth/openrouter/start: the URL is probably wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := brokerAt(t, tc.url, 300*time.Millisecond)
			opts.OpenBrowser = true
			opts.OpenURL = func(context.Context, string) error {
				t.Error("a browser was opened for a broker that does not answer")
				return nil
			}
			start := time.Now()
			run := startLogin(t, newTestStore(t), opts)
			_, err := run.wait(t)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Less(t, time.Since(start), 10*time.Second, "the broker timeout, not the login timeout")
			assert.NotContains(t, run.stdout.String(), "http", "no address to open was printed")
		})
	}

	// With start headers orproxy makes the start request itself; a broker
	// that does not answer it is worded the same way.
	bc, err := auth.NewBrokerClient(closedURL, []string{"X-Device: d1"}, 300*time.Millisecond, nil)
	require.NoError(t, err)
	_, err = startLogin(t, newTestStore(t), Options{Method: MethodBroker, Broker: bc, Upstream: "http://127.0.0.1:1/api/v1"}).wait(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the broker at broker.url "+closedURL+" does not answer (connect: connection refused)")

	// Any other answer means the broker is up: the login goes on.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	opts := brokerAt(t, down.URL, time.Second)
	opts.Timeout = 200 * time.Millisecond
	run := startLogin(t, newTestStore(t), opts)
	run.stdout.waitFor(t, urlLine)
	_, err = run.wait(t)
	assert.ErrorContains(t, err, "no answer from the browser")
}

// The timeout message suggests only the flags the login did not have.
func TestLoginTimeoutSuggestsOnlyMissingFlags(t *testing.T) {
	f := newFakes(t, broker.Options{})
	for _, tc := range []struct {
		name          string
		open, paste   bool
		want, notWant []string
	}{
		{"browser, no paste", true, false, []string{"--no-browser --paste"}, nil},
		{"--no-browser given", false, false, []string{"with --paste"}, []string{"--no-browser"}},
		{"--no-browser and --paste given", false, true, []string{"paste here the address"}, []string{"--no-browser", "--paste"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := brokerOpts(t, f)
			opts.OpenBrowser, opts.Paste = tc.open, tc.paste
			opts.OpenURL = func(context.Context, string) error { return nil }
			opts.Timeout = 150 * time.Millisecond
			_, err := startLogin(t, newTestStore(t), opts).wait(t)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "no answer from the browser within 150ms; run `orproxy login` again")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, err.Error(), w)
			}
		})
	}
	// The OpenRouter login names its own command.
	_, err := startLogin(t, newTestStore(t), Options{Method: MethodOpenRouter, Upstream: f.orURL, Timeout: 150 * time.Millisecond}).wait(t)
	assert.ErrorContains(t, err, "run `orproxy login --method openrouter` again")
}

// Input that ends while the browser login waits (a closed pipe, /dev/null)
// stops the reading, not the login: the browser can still answer.
func TestLoginPasteInputEndsButTheBrowserAnswers(t *testing.T) {
	for _, method := range []string{MethodBroker, MethodOpenRouter} {
		t.Run(method, func(t *testing.T) {
			f := newFakes(t, broker.Options{})
			opts := brokerOpts(t, f)
			opts.Method, opts.Paste = method, true
			run := startLogin(t, newTestStore(t), opts)
			start := run.stdout.waitFor(t, urlLine)
			require.NoError(t, run.stdin.Close())
			status, _ := newBrowser().get(t, start)
			assert.Equal(t, http.StatusOK, status)
			_, err := run.wait(t)
			require.NoError(t, err)
		})
	}
}

// A pasted key must look like one; what does not is refused without being
// shown or sent anywhere.
func TestLoginKeyMustLookLikeAKey(t *testing.T) {
	f := newFakes(t, broker.Options{})
	for name, input := range map[string]string{
		"refresh token": "rt-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
		"too short":     "sk-or-v1-abc",
		"too long":      "sk-or-v1-" + strings.Repeat("a", 200),
		"other prefix":  "sk-proj-0123456789abcdef0123456789abcdef",
		"odd character": "sk-or-v1-0123456789abcdef0123456789abcdef+",
	} {
		t.Run(name, func(t *testing.T) {
			store := newTestStore(t)
			run := startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL})
			_, err := io.WriteString(run.stdin, input+"\n")
			require.NoError(t, err)
			_, err = run.wait(t)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "not an OpenRouter API key")
			assert.Contains(t, err.Error(), "nothing was stored")
			_, err = store.Load()
			assert.ErrorIs(t, err, auth.ErrNoCredential)
			run.assertNoSecrets(t, input[4:])
		})
	}
	for _, r := range f.or.Requests() {
		assert.NotEqual(t, "/api/v1/key", r.Path, "a key of the wrong shape was sent to OpenRouter")
	}
	// The shortest and longest keys of the right shape pass the shape test.
	assert.True(t, keyShape.MatchString("sk-or-"+strings.Repeat("a", 14)))
	assert.True(t, keyShape.MatchString("sk-or-"+strings.Repeat("a", 194)))
	assert.True(t, keyShape.MatchString(openrouter.NewKey()))
}

// A broker login rotates by itself; a pasted key replaces it only after a
// yes on a terminal, or with --force.
func TestLoginKeyReplacesABrokerLoginOnlyWhenAsked(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	status, _ := newBrowser().get(t, run.stdout.waitFor(t, urlLine))
	require.Equal(t, http.StatusOK, status)
	brokerCred, err := run.wait(t)
	require.NoError(t, err)
	key := openrouter.NewKey()
	f.or.AddKey(key, "pasted", nil)
	storedSource := func() auth.Source {
		c, err := store.Load()
		require.NoError(t, err)
		return c.Source
	}

	// Not a terminal, no --force: refused before the key is read.
	run = startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL})
	_, err = run.wait(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a broker login, which orproxy rotates automatically")
	assert.Contains(t, err.Error(), "--force")
	assert.Equal(t, auth.SourceBroker, storedSource())
	run.assertNoSecrets(t, brokerCred.APIKey.Reveal())

	// On a terminal, no (or just Enter) keeps it.
	for _, answer := range []string{"n", ""} {
		run = startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL, StdinIsTerminal: true})
		run.stderr.waitFor(t, regexp.MustCompile(`Replace the broker login \(it rotates automatically\)\? \[y/N\]`))
		_, err = io.WriteString(run.stdin, answer+"\n")
		require.NoError(t, err)
		_, err = run.wait(t)
		assert.EqualError(t, err, "the broker login was kept; nothing was stored")
		assert.Equal(t, auth.SourceBroker, storedSource())
	}

	// Yes, then the key.
	run = startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL, StdinIsTerminal: true})
	run.stderr.waitFor(t, regexp.MustCompile(`\[y/N\]`))
	_, err = io.WriteString(run.stdin, "y\n"+key+"\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, storedSource())

	// --force replaces without asking.
	run = startLogin(t, store, brokerOpts(t, f))
	status, _ = newBrowser().get(t, run.stdout.waitFor(t, urlLine))
	require.Equal(t, http.StatusOK, status)
	_, err = run.wait(t)
	require.NoError(t, err)
	require.Equal(t, auth.SourceBroker, storedSource())
	run = startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL, Force: true})
	_, err = io.WriteString(run.stdin, key+"\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, storedSource())
	assert.NotContains(t, run.stderr.String(), "[y/N]")
	run.assertNoSecrets(t, key)
}
