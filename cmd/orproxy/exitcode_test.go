package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/config"
)

// quietConfig is a config whose daemon address and upstream nobody listens
// on, so no case reaches a daemon the developer runs or the network.
func quietConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("listen: 127.0.0.1:1\nupstream: http://127.0.0.1:1/api/v1\n"), 0o600))
	return p
}

// TestExitCodes runs many command lines and checks the exit code and that
// every failure and usage error is one line on stderr, which never repeats
// an argument that could be a pasted secret.
func TestExitCodes(t *testing.T) {
	recordServiceActions(t, nil)
	cfg := quietConfig(t)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		args   []string
		code   int
		stderr string // a part of the one line on stderr
	}{
		// Usage: unknown commands, flags and bad flag values.
		{[]string{"bogus"}, exitUsage, "unknown command. Run 'orproxy --help'"},
		{[]string{"logn"}, exitUsage, "unknown command; did you mean `login`?"},
		{[]string{"serve", "--no-such-flag"}, exitUsage, "unknown flag: --no-such-flag"},
		{[]string{"--no-such-flag"}, exitUsage, "unknown flag"},
		{[]string{"version", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"login", "--timeout", "abc"}, exitUsage, `invalid argument "abc" for "--timeout"`},
		{[]string{"login", "--timeout", "0s"}, exitUsage, "give a positive duration"},
		{[]string{"login", "--method", "nope"}, exitUsage, `login.method (from --method): "nope" is not a login method (allowed: broker, openrouter, key)`},
		{[]string{"login", "--method", "key", "--headless"}, exitUsage, "--headless is for --method openrouter"},
		{[]string{"serve", "--listen", "nope"}, exitUsage, `listen (from --listen): "nope" is not host:port`},
		{[]string{"serve", "--upstream", "ftp://x"}, exitUsage, "upstream (from --upstream)"},
		{[]string{"serve", "--broker-url", "http://broker.example"}, exitUsage, "broker.url (from --broker-url)"},
		{[]string{"serve", "--log-level", "loud"}, exitUsage, `"loud" is not a log level`},
		{[]string{"serve", "--log-format", "xml"}, exitUsage, `"xml" is not a log format`},
		{[]string{"config", "show", "--log-level", "loud"}, exitUsage, `"loud" is not a log level`},
		{[]string{"status", "--json=maybe"}, exitUsage, `invalid argument "maybe" for "--json"`},
		{[]string{"help", "nope"}, exitUsage, "no help topic by that name"},
		{[]string{"help", "statsu"}, exitUsage, "did you mean `status`?"},
		{[]string{"completion"}, exitUsage, "completion needs a shell: bash, fish, powershell or zsh"},
		{[]string{"completion", "tcsh"}, exitUsage, "unknown completion command"},
		{[]string{"config"}, exitUsage, "config needs a command: init, path or show"},
		{[]string{"config", "shwo"}, exitUsage, "unknown config command; did you mean `show`?"},
		{[]string{"config", "init", "--broker", "ftp://broker.example"}, exitUsage, `--broker "ftp://broker.example" is not an absolute http(s) URL`},
		{[]string{"service"}, exitUsage, "service needs an action"},
		{[]string{"service", "stp"}, exitUsage, "did you mean `stop`?"},
		// Failures.
		{[]string{"status"}, exitFailure, "not logged in: no credential is stored; run `orproxy login --method openrouter`"},
		{[]string{"rotate"}, exitFailure, "orproxy login"},
		{[]string{"--config", missing, "serve"}, exitFailure, "missing.yaml does not exist"},
		// Successes, including removing what is not there.
		{[]string{"version"}, exitOK, ""},
		{[]string{"--version"}, exitOK, ""},
		{[]string{"--help"}, exitOK, ""},
		{[]string{}, exitOK, ""},
		{[]string{"help", "login"}, exitOK, ""},
		{[]string{"completion", "bash"}, exitOK, ""},
		{[]string{"logout"}, exitOK, ""},
		{[]string{"config", "show"}, exitOK, ""},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ")
		t.Run(name, func(t *testing.T) {
			args := tt.args
			if !strings.Contains(name, "--config") {
				args = append([]string{"--config", cfg}, tt.args...)
			}
			code, _, errOut := run(t, args...)
			assert.Equal(t, tt.code, code, "stderr: %s", errOut)
			if tt.code == exitOK {
				assert.Empty(t, errOut)
				return
			}
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			assert.True(t, strings.HasPrefix(errOut, "orproxy: ") && strings.HasSuffix(errOut, "\n"), "%q", errOut)
			assert.Contains(t, errOut, tt.stderr)
			if tt.code == exitUsage {
				assert.Regexp(t, `Run 'orproxy( [a-z]+)* --help' for usage\.\n$`, errOut)
			}
		})
	}
}

func TestUnknownCommandNeverEchoesTheArgument(t *testing.T) {
	for _, arg := range []string{
		"sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567e9d1",
		"rt-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
		"hunter2-password",
		"stauts", // even with a suggestion
	} {
		for _, args := range [][]string{{arg}, {"config", arg}, {"completion", arg}, {"help", arg}, {"service", arg}} {
			code, out, errOut := run(t, args...)
			assert.Equal(t, exitUsage, code, "%v", args)
			assert.NotContains(t, out+errOut, arg, "%v", args)
		}
	}
}

func TestVersionFlagMatchesVersionCommand(t *testing.T) {
	code, viaCommand, _ := run(t, "version")
	require.Equal(t, exitOK, code)
	code, viaFlag, _ := run(t, "--version")
	require.Equal(t, exitOK, code)
	assert.Equal(t, viaCommand, viaFlag)
	assert.Regexp(t, `^orproxy \S+\n$`, viaFlag)
}

// exitCode is the one mapping of errors to exit codes.
func TestExitCodeMapping(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("anything"), exitFailure},
		{usageError{errors.New("bad")}, exitUsage},
		{fmt.Errorf("wrapped: %w", usageError{errors.New("bad")}), exitUsage},
		{&config.Error{Problems: []string{"x"}, InCommandLine: true}, exitUsage},
		{&config.Error{Problems: []string{"x"}}, exitFailure},
		{errNotRunning, exitNotRunning},
	} {
		assert.Equal(t, tt.want, exitCode(tt.err), "%v", tt.err)
	}
}

func TestCobrasOwnUnknownCommandIsAUsageErrorNotEchoed(t *testing.T) {
	err := errors.New(`unknown command "sk-or-v1-secret0123456789" for "orproxy"`)
	assert.Equal(t, exitUsage, exitCode(err))
}
