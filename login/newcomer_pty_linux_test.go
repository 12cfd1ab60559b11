package login

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testkit"
)

// On a terminal, the address the browser ended on, pasted while the login
// waits, completes it without --paste.
func TestLoginPasteOnATerminalWithoutTheFlag(t *testing.T) {
	master, slave := testkit.OpenPTY(t)
	f := newFakes(t, broker.Options{})
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), newTestStore(t), Options{Method: MethodBroker, Broker: f.client(t), Upstream: f.orURL,
			Stdin: slave, StdinIsTerminal: true, Stdout: stdout, Stderr: stderr, Timeout: 20 * time.Second})
		done <- err
	}()
	resp, err := noFollow.Get(stdout.waitFor(t, urlLine))
	require.NoError(t, err)
	resp.Body.Close()
	stderr.waitFor(t, regexp.MustCompile(`paste the address it ends on`))
	_, err = master.WriteString(resp.Header.Get("Location") + "\n")
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Login did not return")
	}
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
}

// The question before a pasted key replaces a broker login is answered on
// the terminal, and the key after it is still read without echo.
func TestLoginKeyConfirmOnATerminal(t *testing.T) {
	master, slave := testkit.OpenPTY(t)
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	status, _ := newBrowser().get(t, run.stdout.waitFor(t, urlLine))
	require.Equal(t, http.StatusOK, status)
	_, err := run.wait(t)
	require.NoError(t, err)
	key := openrouter.NewKey()
	f.or.AddKey(key, "typed", nil)

	stderr := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), store, Options{Method: MethodKey, Upstream: f.orURL,
			Stdin: slave, StdinIsTerminal: true, Stderr: stderr, Timeout: 20 * time.Second})
		done <- err
	}()
	stderr.waitFor(t, regexp.MustCompile(`\[y/N\]`))
	_, err = master.WriteString("y\n")
	require.NoError(t, err)
	stderr.waitFor(t, regexp.MustCompile(`it is not shown`))
	_, err = master.WriteString(key + "\n")
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Login did not return")
	}
	c, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, c.Source)
	assert.Equal(t, key, c.APIKey.Reveal())
}
