package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name, config string
		args         []string
		out          string
	}{
		{"claude", "listen: 127.0.0.1:8765\n", []string{"env", "claude"},
			"export ANTHROPIC_BASE_URL=http://127.0.0.1:8765/api\nexport ANTHROPIC_AUTH_TOKEN=orproxy\nexport ANTHROPIC_API_KEY=\"\"\n"},
		{"openai", "listen: 127.0.0.1:8765\n", []string{"env", "openai"},
			"export OPENAI_BASE_URL=http://127.0.0.1:8765/api/v1\nexport OPENAI_API_KEY=orproxy\n"},
		{"the access token", "listen: 127.0.0.1:9000\naccess_token: tok-123\n", []string{"env", "openai"},
			"export OPENAI_BASE_URL=http://127.0.0.1:9000/api/v1\nexport OPENAI_API_KEY=tok-123\n"},
		{"a token the shell would split", "listen: 127.0.0.1:9000\naccess_token: \"it's $HOME; `x` \\\"y\\\"\"\n", []string{"env", "claude"},
			"export ANTHROPIC_BASE_URL=http://127.0.0.1:9000/api\nexport ANTHROPIC_AUTH_TOKEN='it'\\''s $HOME; `x` \"y\"'\nexport ANTHROPIC_API_KEY=\"\"\n"},
		{"every address dials loopback", "listen: 0.0.0.0:9000\naccess_token: t\n", []string{"env", "claude"},
			"export ANTHROPIC_BASE_URL=http://127.0.0.1:9000/api\nexport ANTHROPIC_AUTH_TOKEN=t\nexport ANTHROPIC_API_KEY=\"\"\n"},
		{"IPv6 loopback", "listen: \"[::1]:9000\"\n", []string{"env", "claude"},
			"export ANTHROPIC_BASE_URL='http://[::1]:9000/api'\nexport ANTHROPIC_AUTH_TOKEN=orproxy\nexport ANTHROPIC_API_KEY=\"\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"--config", writeConfig(t, tt.config)}, tt.args...)...)
			require.Equal(t, exitOK, code, errOut)
			assert.Equal(t, tt.out, out)
			assert.Empty(t, errOut)
		})
	}
}

// The lines mean in a shell what they say: eval gives back every value.
func TestEnvLinesEvalInAShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	token := "it's $HOME; `echo x` \"y\" \\ *"
	cfg := writeConfig(t, "listen: 127.0.0.1:8765\naccess_token: '"+strings.ReplaceAll(token, "'", "''")+"'\n")
	code, out, errOut := run(t, "--config", cfg, "env", "claude")
	require.Equal(t, exitOK, code, errOut)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-c", `eval "$LINES" && printf '%s|%s|%s|%s' "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN" "$ANTHROPIC_API_KEY" "${ANTHROPIC_API_KEY+set}"`)
	cmd.Env = []string{"LINES=" + out, "ANTHROPIC_API_KEY=sk-ant-mine"}
	got, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8765/api|"+token+"||set", string(got))
}

func TestEnvRefusals(t *testing.T) {
	const key = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567e9d1"
	tests := []struct {
		name, config string
		args         []string
		code         int
		stderr       string
	}{
		{"no client", "", []string{"env"}, exitUsage, "env needs a client: claude or openai"},
		{"unknown client", "", []string{"env", "cursor"}, exitUsage, "unknown client; allowed: claude or openai"},
		{"a pasted key", "", []string{"env", key}, exitUsage, "unknown client; allowed: claude or openai"},
		{"two clients", "", []string{"env", "claude", "openai"}, exitUsage, "env takes one client (got 2 arguments)"},
		{"an access token that is an OpenRouter key", "access_token: " + key + "\n", []string{"env", "claude"}, exitFailure,
			"access_token looks like an OpenRouter API key and would be printed whole"},
		{"no fixed port", "listen: 127.0.0.1:0\n", []string{"env", "openai"}, exitFailure, "has port 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"--config", writeConfig(t, tt.config)}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.stderr)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
			assert.NotContains(t, errOut, "cursor", "the argument is not echoed")
			assert.NotContains(t, errOut, key[20:], "no key is echoed")
		})
	}
}

func TestEnvHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"env", "--help"}, {"claude", "--help"}} {
		code, out, _ := run(t, args...)
		require.Equal(t, exitOK, code)
		assert.Contains(t, out, "Examples:\n  ", "%v", args)
		assert.Contains(t, out, "orproxy "+args[0]+" ", "%v", args)
	}
}
