package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/daemon"
	"github.com/orproxy/orproxy/internal/testenv"
)

// Durations read as words: a broker key that lives 30 days expires "in 30
// days", not "in 719h59m0s".
func TestStatusSaysDurationsInWords(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	cfg := configFor(t, env, "")
	code, out, errOut := runWithStdin(t, "", "--config", cfg, "status")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `expires\s+\S+ \(in 30 days\)`, out)
	assert.Regexp(t, `updated\s+\S+ \((now|\d+ seconds? ago)\)`, out)
	assert.NotRegexp(t, `\d+h\d+m`, out)
}

// running is a command executing in the background with a stdin of the
// test's choosing, its output readable while it runs.
type running struct {
	out, err *testenv.SyncBuffer
	done     chan int
}

func startCommand(t *testing.T, stdin io.Reader, args ...string) *running {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	for _, v := range []string{"ORPROXY_CONFIG", "ORPROXY_LISTEN", "ORPROXY_UPSTREAM", "ORPROXY_BROKER_URL", "ORPROXY_CREDENTIALS_FILE", "ORPROXY_ACCESS_TOKEN", "ORPROXY_NO_BROWSER"} {
		t.Setenv(v, "")
	}
	r := &running{out: &testenv.SyncBuffer{}, err: &testenv.SyncBuffer{}, done: make(chan int, 1)}
	go func() { r.done <- execute(args, streams{in: stdin, out: r.out, err: r.err}) }()
	return r
}

// line waits for the first line of stdout matching re.
func (r *running) line(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var found string
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(r.out.String(), "\n") {
			if re.MatchString(l) {
				found = l
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "stdout: %q\nstderr: %q", r.out.String(), r.err.String())
	return found
}

func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("the command did not end; stderr: %q", r.err.String())
		return -1
	}
}

var loginURLLine = regexp.MustCompile(`^https?://\S+$`)

// finalAddress plays a browser on another machine: it follows the login
// address to the broker, which sends it to the callback it cannot reach;
// that address is what the user copies.
func finalAddress(t *testing.T, loginURL string) string {
	t.Helper()
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(loginURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	return resp.Header.Get("Location")
}

// The address the browser ended on, piped in while the login waits,
// completes it without --paste; and the login says what to do next.
func TestLoginPastedThroughAPipe(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	run := startCommand(t, pr, "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	final := finalAddress(t, run.line(t, loginURLLine))
	_, err = io.WriteString(pw, final+"\n")
	require.NoError(t, err)
	require.Equal(t, exitOK, run.wait(t), run.err.String())
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
	assert.Contains(t, run.out.String(), "Next: orproxy service install, or orproxy serve; then point your tool at http://127.0.0.1:1/api/v1")
}

// A pipe that ends at once (`orproxy login < /dev/null`, a closed pipe)
// does not end the wait: the browser still completes the login.
func TestLoginInputAtItsEndKeepsWaiting(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	t.Cleanup(func() { devNull.Close() })
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close() })
	require.NoError(t, pw.Close())
	for name, in := range map[string]*os.File{"closed pipe": pr, "/dev/null": devNull} {
		t.Run(name, func(t *testing.T) {
			run := startCommand(t, in, "--config", cfg, "login", "--no-browser", "--timeout", "20s")
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(run.line(t, loginURLLine))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, exitOK, run.wait(t), run.err.String())
			if in == devNull {
				assert.NotContains(t, run.err.String(), "paste the address it ends on", "no prompt for input that is not there")
			}
		})
	}
}

// /dev/null is not a terminal: no hidden prompt, no terminal error, but the
// message for a key that is not there.
func TestLoginKeyFromDevNull(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	t.Cleanup(func() { devNull.Close() })
	run := startCommand(t, devNull, "--config", cfg, "login", "--method", "key")
	assert.Equal(t, exitFailure, run.wait(t))
	assert.Contains(t, run.err.String(), "no key on standard input")
	assert.NotContains(t, run.err.String(), "it is not shown")
}

// A pasted key replaces a broker login only with --force when nobody can
// be asked.
func TestLoginKeyOverABrokerLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	cfg := configFor(t, env, "")
	key := env.OpenRouter.IssueKey("mine", nil).Key

	code, out, errOut := runWithStdin(t, key+"\n", "--config", cfg, "login", "--method", "key")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "is a broker login, which orproxy rotates automatically")
	assert.Contains(t, errOut, "--force")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
	assert.NotContains(t, out+errOut, key)

	code, _, errOut = runWithStdin(t, "not-a-key-at-all-0123456789\n", "--config", cfg, "login", "--method", "key", "--force")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "not an OpenRouter API key")
	assert.NotContains(t, errOut, "not-a-key-at-all")

	code, out, errOut = runWithStdin(t, key+"\n", "--config", cfg, "login", "--method", "key", "--force")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, auth.SourceManual, env.Stored(t).Source)
	assert.Contains(t, out, "Next: orproxy service install, or orproxy serve")
}

// With a daemon already answering, the next step is only to point a tool at it.
func TestLoginNextStepWithARunningDaemon(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	listen, stop := runDaemon(t, env, "")
	defer stop()
	cfgFile := configFor(t, env, "listen: "+listen+"\n")
	key := env.OpenRouter.IssueKey("mine", nil).Key
	code, out, errOut := runWithStdin(t, key+"\n", "--config", cfgFile, "login", "--method", "key")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Next: the orproxy running at http://"+listen+" uses the new key on its next request; point your tool at http://"+listen+"/api/v1")
}

// runDaemon runs a daemon with env's configuration and extra in this
// process until stop, on a port it picks, and returns its address: a port
// found free beforehand may be taken by the time the daemon listens.
func runDaemon(t *testing.T, env *testenv.Env, extra string) (listen string, stop func()) {
	t.Helper()
	cfgFile := configFor(t, env, "listen: 127.0.0.1:0\n"+extra)
	loaded, err := config.Load(config.Options{File: cfgFile, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, loaded.Config, daemon.Options{Ready: func(a net.Addr) { ready <- a }})
	}()
	select {
	case a := <-ready:
		listen = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("the daemon did not start: %v", err)
	}
	return listen, func() { cancel(); require.NoError(t, <-done) }
}

// Without a credential the daemon's 401 names the login that works with
// this configuration: the broker's when there is one, else OpenRouter's or
// a pasted key.
func TestNoCredential401NamesTheFittingLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	for _, tc := range []struct {
		name, broker string
		want         string
		notWant      string
	}{
		{"with a broker", "broker: {url: " + env.BrokerURL + "}\n", "run `orproxy login`", "--method"},
		{"without a broker", "broker: {url: \"\"}\n", "run `orproxy login --method openrouter` (your OpenRouter account) or `orproxy login --method key` (a pasted key)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, stop := runDaemon(t, env, tc.broker)
			defer stop()
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Post("http://"+listen+"/api/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[]}`))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			var body struct {
				Error struct{ Message string }
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Contains(t, body.Error.Message, tc.want)
			if tc.notWant != "" {
				assert.NotContains(t, body.Error.Message, tc.notWant)
			}
		})
	}
}

// The daemon says it is ready in one line: where to point a client, the key
// (redacted) or the login to run, and whether web search is on.
func TestReadyLine(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	loaded, err := config.Load(config.Options{File: configFor(t, env, ""), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	cfg := loaded.Config
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8765}

	core, logs := observer.New(zapcore.InfoLevel)
	var plain strings.Builder
	announceReady(zap.New(core), &plain, cfg, addr)
	want := "orproxy ready: http://127.0.0.1:8765/api/v1, no credential: run `orproxy login`, web search on"
	assert.Equal(t, want+"\n", plain.String())
	require.Equal(t, 1, logs.Len())
	assert.Equal(t, want, logs.All()[0].Message)

	cred := env.LoginBroker(t)
	cfg.WebSearch.Enabled = false
	core, logs = observer.New(zapcore.InfoLevel)
	announceReady(zap.New(core), nil, cfg, addr)
	require.Equal(t, 1, logs.Len())
	e := logs.All()[0]
	assert.Equal(t, "orproxy ready: http://127.0.0.1:8765/api/v1, key "+cred.APIKey.String()+", web search off", e.Message)
	assert.Equal(t, cred.APIKey.String(), e.ContextMap()["key"])
	assert.NotContains(t, e.Message, cred.APIKey.Reveal())

	// Without a broker, the login that works without one.
	require.NoError(t, os.Remove(env.Store.Path()))
	cfg.Broker.URL = ""
	core, logs = observer.New(zapcore.InfoLevel)
	announceReady(zap.New(core), nil, cfg, &net.TCPAddr{IP: net.IPv4zero, Port: 9000})
	assert.Contains(t, logs.All()[0].Message, "orproxy ready: http://127.0.0.1:9000/api/v1, no credential: run `orproxy login --method openrouter`")
}

// With listen on port 0 there is no fixed address to give: serve says it.
func TestNextStepWithAFreePort(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	assert.Equal(t, "Next: orproxy serve; then point your tool at the http://…/api/v1 address it says it is ready on", nextStep(context.Background(), cfg))
}

// completion is listed in the help, and its help says how to install it.
func TestCompletionIsDiscoverable(t *testing.T) {
	code, out, _ := run(t, "--help")
	require.Equal(t, exitOK, code)
	assert.Regexp(t, `(?m)^  completion\s+Print the shell completion script`, out)

	code, out, _ = run(t, "completion", "--help")
	require.Equal(t, exitOK, code)
	for _, line := range []string{
		"orproxy completion bash > ~/.local/share/bash-completion/completions/orproxy",
		`orproxy completion zsh > "${fpath[1]}/_orproxy"`,
		"orproxy completion fish > ~/.config/fish/completions/orproxy.fish",
	} {
		assert.Contains(t, out, line)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, _ = run(t, "completion", shell)
		assert.Equal(t, exitOK, code, shell)
		assert.Contains(t, out, "orproxy", shell)
	}
}

// Every command's help ends with examples to copy.
func TestEveryCommandHasExamples(t *testing.T) {
	root := newRootCmd(streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root || c.Name() == "help" {
			return
		}
		if c.Parent() != nil && c.Parent().Name() == "completion" {
			return // cobra's own, with their own install notes
		}
		n++
		assert.NotEmpty(t, strings.TrimSpace(c.Example), "%s has no Examples", c.CommandPath())
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	assert.Greater(t, n, 15)
	for _, args := range [][]string{{"login", "--help"}, {"service", "install", "--help"}, {"config", "show", "--help"}} {
		_, out, _ := run(t, args...)
		assert.Contains(t, out, "\nExamples:\n  orproxy", "%v", args)
	}
}

// make run builds what it runs, bin/orproxy, and not the fakes.
func TestMakeRunBuildsOnlyOrproxy(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	out, err := exec.Command("make", "-n", "-C", filepath.Join("..", ".."), "run").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "-o bin/orproxy ./cmd/orproxy")
	assert.Contains(t, string(out), "bin/orproxy serve")
	assert.NotContains(t, string(out), "orproxy-fake")
}
