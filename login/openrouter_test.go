package login

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fakebroker"
)

func TestLoginCallbackPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f := newFakes(t, fakebroker.Options{})
	opts := brokerOpts(t, f)
	opts.CallbackPort = port
	_, err = Run(context.Background(), newTestStore(t), opts)
	assert.ErrorContains(t, err, "listen for the login callback on 127.0.0.1:"+strconv.Itoa(port)+" (login.callback_port)")
}

func TestLoginFixedCallbackPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	f := newFakes(t, fakebroker.Options{})
	opts := brokerOpts(t, f)
	opts.CallbackPort = port
	run := startLogin(t, newTestStore(t), opts)
	start := run.stdout.waitFor(t, urlLine)
	assert.Equal(t, strconv.Itoa(port), returnTo(t, start).Port())
	resp, err := newBrowser().client.Get(start)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = run.wait(t)
	require.NoError(t, err)
}

func TestLoginNeedsAUsableUpstream(t *testing.T) {
	for _, m := range []string{MethodKey, MethodOpenRouter} {
		_, err := Run(context.Background(), newTestStore(t), Options{Method: m, Upstream: "openrouter.ai/api/v1"})
		assert.ErrorContains(t, err, "is not an absolute http(s) URL", m)
	}
}

// redirectingUpstream is an upstream that answers every request with a
// redirect of the given status to a second server on another port, which
// records whatever reaches it.
func redirectingUpstream(t *testing.T, status int) (upstream string, elsewhere *httptest.Server, got func() []string) {
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

// Through the login flows too: a pasted key is not sent on, and with the
// check failing it is refused, or with --force stored with a warning, as
// for a network error.
func TestLoginKeyNotSentThroughARedirect(t *testing.T) {
	upstream, _, got := redirectingUpstream(t, http.StatusTemporaryRedirect)
	_, err := Run(testCtx(t), newTestStore(t), Options{Method: MethodKey, Upstream: upstream,
		Stdin: strings.NewReader(testKey + "\n")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "orproxy does not follow it")
	assert.Contains(t, err.Error(), "nothing was stored")
	stderr := newSyncBuffer()
	_, err = Run(testCtx(t), newTestStore(t), Options{Method: MethodKey, Upstream: upstream, Force: true,
		Stdin: strings.NewReader(testKey + "\n"), Stderr: stderr})
	require.NoError(t, err)
	assert.Contains(t, stderr.String(), "orproxy does not follow it")
	assert.Empty(t, got())
}
