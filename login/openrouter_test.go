package login

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/testkit"
)

func TestLoginCallbackPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f := newFakes(t, broker.Options{})
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
	f := newFakes(t, broker.Options{})
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

// Through the login flows too: a pasted key is not sent on, and with the
// check failing it is refused, or with --force stored with a warning, as
// for a network error.
func TestLoginKeyNotSentThroughARedirect(t *testing.T) {
	upstream, _, got := testkit.RedirectingUpstream(t, http.StatusTemporaryRedirect)
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
