package login

import (
	"bufio"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testkit"
)

func TestLoginKeyFromTerminalIsNotEchoed(t *testing.T) {
	master, slave := testkit.OpenPTY(t)
	require.True(t, term.IsTerminal(int(slave.Fd())))
	f := newFakes(t, broker.Options{})
	key := openrouter.NewKey()
	f.or.AddKey(key, "typed key", nil)

	stderr := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), newTestStore(t), Options{Method: MethodKey, Upstream: f.orURL,
			Stdin: slave, StdinIsTerminal: true, Stderr: stderr, Timeout: 20 * time.Second})
		done <- err
	}()
	// The prompt comes after echo is off.
	stderr.waitFor(t, regexp.MustCompile(`it is not shown`))
	_, err := master.WriteString(key + "\n")
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Login did not return")
	}

	// Echo is back on: a marker typed now comes back, after whatever the
	// terminal echoed before it.
	_, err = master.WriteString("MARKER\n")
	require.NoError(t, err)
	var echoed strings.Builder
	r := bufio.NewReader(master)
	for !strings.Contains(echoed.String(), "MARKER") {
		require.NoError(t, master.SetReadDeadline(time.Now().Add(10*time.Second)))
		b, err := r.ReadByte()
		require.NoError(t, err, "terminal echo was not restored")
		echoed.WriteByte(b)
	}
	assert.NotContains(t, echoed.String(), key[9:], "the key was echoed")
}

func TestLoginKeyCanceledRestoresEcho(t *testing.T) {
	_, slave := testkit.OpenPTY(t)
	fd := int(slave.Fd())
	echoOn := func() bool {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		require.NoError(t, err)
		return tio.Lflag&unix.ECHO != 0
	}
	require.True(t, echoOn())

	ctx, cancel := context.WithCancel(context.Background())
	stderr := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, newTestStore(t), Options{Method: MethodKey, Upstream: "http://127.0.0.1:1/api/v1",
			Stdin: slave, StdinIsTerminal: true, Stderr: stderr})
		done <- err
	}()
	stderr.waitFor(t, regexp.MustCompile(`it is not shown`))
	assert.False(t, echoOn(), "echo is off while the key is typed")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.True(t, echoOn(), "echo is back after an interrupted login")
	// The read still pending on the terminal ends when the test closes it.
}
