package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/orproxy/orproxy/internal/testenv"
	"github.com/orproxy/orproxy/internal/testkit"
)

// terminalOutput collects what the program writes to the terminal.
type terminalOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *terminalOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// read copies master into o until master is closed.
func (o *terminalOutput) read(master *os.File) {
	b := make([]byte, 1024)
	for {
		n, err := master.Read(b)
		o.mu.Lock()
		o.buf.Write(b[:n])
		o.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Ctrl-C at the hidden key prompt of the real binary, in a terminal it
// controls: the terminal's echo is back on, and the command says the login
// was canceled and exits 1, storing nothing.
func TestLoginKeyInterruptedAtThePromptRestoresEcho(t *testing.T) {
	master, slave := testkit.OpenPTY(t)
	echoOn := func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		require.NoError(t, err)
		return tio.Lflag&unix.ECHO != 0
	}
	require.True(t, echoOn())

	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	cmd := exec.Command(binary(t), "--config", cfg, "login", "--method", "key")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own with the terminal as its controlling terminal,
	// so the terminal's ^C reaches it as SIGINT, as in a shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var out terminalOutput
	readDone := make(chan struct{})
	go func() { defer close(readDone); out.read(master) }()
	t.Cleanup(func() { master.Close(); <-readDone })

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "it is not shown") }, 20*time.Second, 10*time.Millisecond,
		"no key prompt: %q", out.String())
	require.False(t, echoOn(), "echo is off at the prompt")

	_, err := master.Write([]byte{0x03}) // ^C, which the terminal turns into SIGINT
	require.NoError(t, err)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("orproxy login did not end after ^C; terminal: %q", out.String())
	}
	var exit *exec.ExitError
	require.True(t, errors.As(waitErr, &exit), "%v", waitErr)
	assert.Equal(t, exitFailure, exit.ExitCode(), "exits 1, not killed by the signal: %v", exit)
	assert.True(t, echoOn(), "echo is back on after ^C")
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "orproxy: login canceled") }, 5*time.Second, 10*time.Millisecond,
		"terminal: %q", out.String())
	assert.Regexp(t, `\n[^\n]*orproxy: login canceled; nothing was stored`, out.String(), "the message starts a line of its own")
	assert.NoFileExists(t, env.Store.Path())
}
