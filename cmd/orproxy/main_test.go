package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// run executes the command line in-process with a private HOME and none of
// orproxy's environment variables, so nothing of the user's own config or
// credential is read, let alone changed.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runWithStdin(t, "", args...)
}

func runWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runHome(t, t.TempDir(), stdin, args...)
}

// runHome is runWithStdin with a given home directory, for commands that
// build on what an earlier one left there.
func runHome(t *testing.T, home, stdin string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	for _, v := range []string{"ORPROXY_CONFIG", "ORPROXY_LISTEN", "ORPROXY_UPSTREAM", "ORPROXY_BROKER_URL", "ORPROXY_CREDENTIALS_FILE", "ORPROXY_ACCESS_TOKEN", "ORPROXY_NO_BROWSER"} {
		t.Setenv(v, "")
	}
	var out, errOut bytes.Buffer
	code := execute(args, streams{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	assert.Equal(t, exitOK, code)
	assert.True(t, strings.HasPrefix(out, "orproxy "), out)
}

func TestHelp(t *testing.T) {
	code, out, _ := run(t, "--help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "serve")
	assert.Contains(t, out, "--config")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"serve", "--no-such-flag"},
		{"version", "extra"},
		{"login", "--timeout", "0s"},
		{"login", "--timeout=-1m"},
	} {
		code, _, errOut := run(t, args...)
		assert.Equal(t, exitUsage, code, "%v", args)
		assert.Regexp(t, `Run 'orproxy( [a-z]+)* --help' for usage`, errOut, "%v", args)
	}
}

// A key pasted where it does not belong is never echoed back whole.
func TestMisplacedKeyIsNotEchoed(t *testing.T) {
	const key = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567e9d1"
	for _, args := range [][]string{
		{"login", "--method", "key", key},
		{"status", key},
		{key},
		{"service", key},
		{"login", "--method", key},
		{"login", "--" + key},
	} {
		code, out, errOut := run(t, args...)
		assert.NotEqual(t, exitOK, code, "%v", args)
		assert.NotContains(t, out+errOut, key[12:], "%v", args)
	}
	_, _, errOut := run(t, "status", key)
	assert.Contains(t, errOut, "takes no arguments (got 1)")
	// Not only keys: a refresh token or anything else typed as a command.
	code, _, errOut := run(t, "rt-9f8e7d6c5b4a39281706f5e4d3c2b1a0")
	assert.Equal(t, exitUsage, code)
	assert.Equal(t, "orproxy: unknown command. Run 'orproxy --help' for usage.\n", errOut)
}

func TestBadConfigIsAFailureNamingTheKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("web_search:\n  engine: bing\n"), 0o600))
	code, _, errOut := run(t, "--config", cfg, "serve")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, `web_search.engine: "bing" is not a search engine`)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
}

func TestServeOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	code, _, errOut := run(t, "serve", "--listen", ln.Addr().String(), "--log-level", "error")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "already in use")
	assert.Contains(t, errOut, "orproxy status")
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	// From a flag, the refused address is a usage error; from the file, a failure.
	code, _, errOut := run(t, "serve", "--listen", "0.0.0.0:0")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "not a loopback address")
	assert.Contains(t, errOut, "access_token")

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("listen: 0.0.0.0:0\n"), 0o600))
	code, _, errOut = run(t, "--config", cfg, "serve")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "not a loopback address")
}

// TestServeStopsCleanlyOnSIGTERM runs the built binary, as a service manager would.
func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	bin := binary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := bufio.NewScanner(stderr)
	var base string
	for base == "" && lines.Scan() {
		var entry struct{ Msg, Listen string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "orproxy serving" {
			base = strings.TrimSuffix(entry.Listen, "/api/v1")
		}
	}
	require.NotEmpty(t, base, "no start-up line")
	go func() {
		for lines.Scan() {
		}
	}()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "exit status 0 after SIGTERM")
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
}
