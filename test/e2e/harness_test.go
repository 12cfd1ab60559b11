// Package e2e drives the built orproxy binary with real clients (curl, the
// openai npm package, the OpenCode CLI) against the fake OpenRouter and the
// fake broker, each running as its own process on a loopback port.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testenv"
)

var (
	binDir      string // orproxy and orproxy-fake, built once
	nodeModules string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orproxy-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		for _, pkg := range []string{"github.com/orproxy/orproxy/cmd/orproxy", "github.com/orproxy/orproxy/cmd/orproxy-fake"} {
			cmd := exec.Command("go", "build", "-o", dir, pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: build:", err)
				return 1
			}
		}
		wd, _ := os.Getwd()
		nodeModules = filepath.Join(wd, "node_modules")
		return m.Run()
	}()
	os.Exit(code)
}

// process is a child process whose output is kept for assertions.
type process struct {
	cmd    *exec.Cmd
	output testenv.SyncBuffer
	done   chan struct{}
}

func (p *process) Output() string { return p.output.String() }

// start runs a binary and waits until a line of its output satisfies ready,
// returning that line. The process is stopped with SIGTERM when the test ends.
func start(t *testing.T, env []string, ready func(line string) bool, name string, args ...string) (*process, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = env
	p := &process{cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.output.Write([]byte(line + "\n"))
			if !sent && ready(line) {
				found <- line
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case line := <-found:
		return p, line
	case <-p.done:
		t.Fatalf("%s %v exited before it was ready:\n%s", name, args, p.Output())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s %v not ready in time:\n%s", name, args, p.Output())
	}
	return nil, ""
}

// stack is the fake OpenRouter, the fake broker and orproxy, as processes,
// with a HOME of their own.
type stack struct {
	t           *testing.T
	home        string
	env         []string
	upstreamURL string // …/api/v1
	brokerURL   string
	proxyURL    string // http://127.0.0.1:PORT
	configFile  string
	credFile    string
	proxy       *process
	openrouter  *openrouter.AdminClient
	broker      *broker.AdminClient
}

func isURL(line string) bool { return strings.HasPrefix(line, "http://127.0.0.1:") }

func newStack(t *testing.T) *stack {
	t.Helper()
	home := t.TempDir()
	s := &stack{t: t, home: home}
	s.env = isolatedEnv(home)
	_, s.upstreamURL = start(t, s.env, isURL, "orproxy-fake", "openrouter", "--listen", "127.0.0.1:0", "--chunk-delay", "20ms")
	origin := strings.TrimSuffix(s.upstreamURL, "/api/v1")
	_, s.brokerURL = start(t, s.env, isURL, "orproxy-fake", "broker", "--listen", "127.0.0.1:0", "--openrouter-admin", origin)
	s.openrouter = &openrouter.AdminClient{BaseURL: origin}
	s.broker = &broker.AdminClient{BaseURL: s.brokerURL}
	s.credFile = filepath.Join(home, ".config", "orproxy", "credentials.json")
	s.configFile = filepath.Join(home, "orproxy.yaml")
	// A fixed port, so commands that read the config (status, opencode) find the daemon.
	cfg := fmt.Sprintf("listen: %s\nupstream: %s\nbroker:\n  url: %s\n  timeout: 5s\ncredentials:\n  file: %s\nlogin:\n  open_browser: false\nlog:\n  level: debug\n  format: json\n",
		freeAddr(t), s.upstreamURL, s.brokerURL, s.credFile)
	require.NoError(t, os.WriteFile(s.configFile, []byte(cfg), 0o600))
	return s
}

// isolatedEnv keeps every process away from the user's own files and from
// the network beyond loopback.
func isolatedEnv(home string) []string {
	env := []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".local", "state"),
		"PATH=" + os.Getenv("PATH"),
		"TERM=dumb",
		"NO_COLOR=1",
		"ORPROXY_NO_BROWSER=1",
	}
	if v := os.Getenv("GOCOVERDIR"); v != "" {
		env = append(env, "GOCOVERDIR="+v)
	}
	return env
}

// startProxy runs `orproxy serve` with the stack's config.
func (s *stack) startProxy() {
	s.t.Helper()
	s.proxy, s.proxyURL = serve(s.t, s.env, "--config", s.configFile)
}

// serve runs `orproxy serve` with args until the test ends and returns the
// process and the proxy's base URL (without /api/v1), read from its
// "orproxy serving" log line.
func serve(t *testing.T, env []string, args ...string) (*process, string) {
	t.Helper()
	p, line := start(t, env, func(line string) bool {
		var e struct{ Msg string }
		return json.Unmarshal([]byte(line), &e) == nil && e.Msg == "orproxy serving"
	}, "orproxy", append([]string{"serve"}, args...)...)
	var e struct{ Listen string }
	require.NoError(t, json.Unmarshal([]byte(line), &e))
	return p, strings.TrimSuffix(e.Listen, "/api/v1")
}

// orproxy runs an orproxy command to completion.
func (s *stack) orproxy(stdin string, args ...string) (string, string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "orproxy"), append([]string{"--config", s.configFile}, args...)...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func (s *stack) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

// chatRequests are the chat completions the fake OpenRouter received.
func (s *stack) chatRequests() []openrouter.Request {
	s.t.Helper()
	reqs, err := s.openrouter.Requests(s.ctx())
	require.NoError(s.t, err)
	var out []openrouter.Request
	for _, r := range reqs {
		if r.Path == "/api/v1/chat/completions" {
			out = append(out, r)
		}
	}
	return out
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// run executes an external client with a deadline.
func run(t *testing.T, env []string, dir string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = nil
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// freeAddr is a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
