package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClaude is a `claude` that shows what it was given: its arguments, the
// variables orproxy sets, a line of its standard input, a line on standard
// error, and it exits with $FAKE_CLAUDE_EXIT.
const fakeClaude = `#!/bin/sh
printf 'args:'; for a in "$@"; do printf ' [%s]' "$a"; done; echo
echo "ANTHROPIC_BASE_URL=$ANTHROPIC_BASE_URL"
echo "ANTHROPIC_AUTH_TOKEN=$ANTHROPIC_AUTH_TOKEN"
echo "ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY-unset}"
echo "ANTHROPIC_MODEL=$ANTHROPIC_MODEL"
read -r line; echo "stdin=$line"
echo "claude's own stderr" >&2
exit "${FAKE_CLAUDE_EXIT:-0}"
`

// claudeOnPath puts fakeClaude alone on PATH and runs Claude Code as a
// child, since exec would replace the test binary.
func claudeOnPath(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake claude is a shell script")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "claude"), []byte(fakeClaude), 0o700))
	t.Setenv("PATH", dir)
	old := replaceProcess
	replaceProcess = false
	t.Cleanup(func() { replaceProcess = old })
}

// fakeDaemon is a stand-in for `orproxy serve` that answers /healthz with
// status, and counts the questions.
func fakeDaemon(t *testing.T, status int) (listen string, asked *atomic.Int32) {
	t.Helper()
	asked = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			asked.Add(1)
			w.WriteHeader(status)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), asked
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestClaudeRunsClaudeAgainstTheDaemon(t *testing.T) {
	claudeOnPath(t)
	listen, asked := fakeDaemon(t, http.StatusOK)
	// The user's own Anthropic settings, which must not win.
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-the-users-own-key")
	t.Setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
	t.Setenv("ANTHROPIC_MODEL", "anthropic/claude-sonnet-4.6")

	tests := []struct {
		name, config, token string
	}{
		{"with an access token", "listen: " + listen + "\naccess_token: tok-for-clients-123\n", "tok-for-clients-123"},
		{"without one", "listen: " + listen + "\n", "orproxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeConfig(t, tt.config)
			before := asked.Load()
			code, out, errOut := runWithStdin(t, "typed by the user\n", "--config", cfg, "claude", "--", "-p", "say hi", "--model", "x/y")
			require.Equal(t, exitOK, code, "stdout: %s\nstderr: %s", out, errOut)
			assert.Equal(t, "args: [-p] [say hi] [--model] [x/y]\n"+
				"ANTHROPIC_BASE_URL=http://"+listen+"/api\n"+
				"ANTHROPIC_AUTH_TOKEN="+tt.token+"\n"+
				"ANTHROPIC_API_KEY=\n"+
				"ANTHROPIC_MODEL=anthropic/claude-sonnet-4.6\n"+
				"stdin=typed by the user\n", out)
			assert.Equal(t, "claude's own stderr\n", errOut, "nothing of orproxy's own")
			assert.Equal(t, before+1, asked.Load(), "the daemon was asked first")
		})
	}
}

func TestClaudeArgumentsWithoutDashes(t *testing.T) {
	claudeOnPath(t)
	listen, _ := fakeDaemon(t, http.StatusOK)
	cfg := writeConfig(t, "listen: "+listen+"\n")

	code, out, errOut := run(t, "--config", cfg, "claude", "explain main.go")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "args: [explain main.go]\n")

	// Claude Code's flags before -- are orproxy's to parse: a usage error that says where they go.
	code, out, errOut = run(t, "--config", cfg, "claude", "-p", "hi")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out, "claude did not run")
	assert.Contains(t, errOut, "Claude Code's own flags go after --, as in: orproxy claude -- -p \"hi\"")
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
}

func TestClaudeExitsWithClaudesCode(t *testing.T) {
	claudeOnPath(t)
	listen, _ := fakeDaemon(t, http.StatusOK)
	cfg := writeConfig(t, "listen: "+listen+"\n")
	t.Setenv("FAKE_CLAUDE_EXIT", "7")

	code, out, errOut := run(t, "--config", cfg, "claude")
	assert.Equal(t, 7, code)
	assert.Contains(t, out, "ANTHROPIC_AUTH_TOKEN=orproxy")
	assert.Equal(t, "claude's own stderr\n", errOut, "claude said what went wrong; orproxy adds nothing")
}

func TestClaudeFailures(t *testing.T) {
	claudeOnPath(t)
	notOrproxy, _ := fakeDaemon(t, http.StatusNotFound)
	tests := []struct {
		name, config, stderr string
		noClaude             bool
	}{
		{"no daemon", "listen: 127.0.0.1:1\n",
			"orproxy: no orproxy daemon answers at http://127.0.0.1:1 (connect: connection refused); start it with `orproxy serve` or `orproxy service start`\n", false},
		{"something else on the port", "listen: " + notOrproxy + "\n",
			"orproxy: something answers at http://" + notOrproxy + ", but not like orproxy (GET /healthz: 404 Not Found); check listen in the config\n", false},
		{"claude not installed", "listen: 127.0.0.1:1\n",
			"orproxy: claude (Claude Code) is not on PATH; install it with npm install -g @anthropic-ai/claude-code\n", true},
		{"no fixed port", "listen: 127.0.0.1:0\n", "has port 0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.noClaude {
				t.Setenv("PATH", t.TempDir())
			}
			code, out, errOut := run(t, "--config", writeConfig(t, tt.config), "claude", "--", "-p", "hi")
			assert.Equal(t, exitFailure, code)
			assert.Empty(t, out, "claude did not run")
			assert.Contains(t, errOut, tt.stderr)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
		})
	}
}

func TestWithEnvReplaces(t *testing.T) {
	got := withEnv([]string{"PATH=/bin", "ANTHROPIC_API_KEY=sk-ant-mine", "ANTHROPIC_API_KEY_FILE=f", "ANTHROPIC_BASE_URLX=y", "=C:=C:\\"},
		[]envVar{{"ANTHROPIC_API_KEY", ""}, {"ANTHROPIC_BASE_URL", "http://127.0.0.1:8765/api"}})
	assert.Equal(t, []string{"PATH=/bin", "ANTHROPIC_API_KEY_FILE=f", "ANTHROPIC_BASE_URLX=y", "=C:=C:\\",
		"ANTHROPIC_API_KEY=", "ANTHROPIC_BASE_URL=http://127.0.0.1:8765/api"}, got)
}
