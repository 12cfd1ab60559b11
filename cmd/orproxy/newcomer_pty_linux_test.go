package main

import (
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/testenv"
	"github.com/orproxy/orproxy/internal/testkit"
)

// On a terminal, the address pasted while the login waits completes it;
// no --paste needed.
func TestLoginPastedOnATerminal(t *testing.T) {
	master, slave := testkit.OpenPTY(t)
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	run := startCommand(t, slave, "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	final := finalAddress(t, run.line(t, loginURLLine))
	_, err := io.WriteString(master, final+"\n")
	require.NoError(t, err)
	require.Equal(t, exitOK, run.wait(t), run.err.String())
	assert.Regexp(t, regexp.MustCompile(`paste the address it ends on`), run.err.String())
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
}

// serve with JSON logs on a terminal also prints the ready line as text,
// for the person watching; with stderr not a terminal, only the JSON line.
func TestServeReadyLineOnATerminal(t *testing.T) {
	bin := binary(t)
	for _, terminal := range []bool{true, false} {
		home := t.TempDir()
		cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "ORPROXY_BROKER_URL=", "ORPROXY_CONFIG=", "ORPROXY_LISTEN=")
		var out terminalOutput
		readDone := make(chan struct{})
		if terminal {
			master, slave := testkit.OpenPTY(t)
			cmd.Stderr = slave
			go func() { defer close(readDone); out.read(master) }()
			t.Cleanup(func() { master.Close(); <-readDone })
		} else {
			r, w, err := os.Pipe()
			require.NoError(t, err)
			cmd.Stderr = w
			go func() { defer close(readDone); out.read(r) }()
			t.Cleanup(func() { r.Close(); <-readDone })
			t.Cleanup(func() { w.Close() })
		}
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		require.Eventually(t, func() bool { return strings.Contains(out.String(), `"msg":"orproxy ready: http://127.0.0.1:`) }, 20*time.Second, 10*time.Millisecond,
			"stderr: %q", out.String())
		plain := regexp.MustCompile(`(?m)^orproxy ready: http://127\.0\.0\.1:\d+/api/v1, no credential: run ` + "`orproxy login --method openrouter`" + `.*, web search on\r?$`)
		if terminal {
			require.Eventually(t, func() bool { return plain.MatchString(out.String()) }, 5*time.Second, 10*time.Millisecond, "stderr: %q", out.String())
		} else {
			assert.NotRegexp(t, plain, out.String())
		}
	}
}
