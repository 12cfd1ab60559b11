package e2e

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testenv"
)

const (
	// claudeModel is an OpenRouter model id, as a user passes it to
	// `claude --model`; Claude Code sends it as it is.
	claudeModel = "anthropic/claude-sonnet-4.5"
	// The client's own credentials, which must never reach OpenRouter.
	claudeClientToken  = "client-token-from-claude-code"
	claudeClientAPIKey = "sk-ant-client-key-from-claude-code"
)

// claudeBinary finds the Claude Code CLI that @anthropic-ai/claude-code
// installed: its platform package holds the native binary, which the
// package's postinstall also copies over bin/claude.exe. Without Node.js
// (and so npm) there is nothing to run it from; anywhere else a missing CLI
// is a failure.
func claudeBinary(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("Claude Code's end-to-end tests need Node.js and npm on PATH (%s is missing); make e2e-deps installs the CLI with them", tool)
		}
	}
	candidates, _ := filepath.Glob(filepath.Join(nodeModules, "@anthropic-ai", "claude-code-*", "claude"))
	candidates = append(candidates, filepath.Join(nodeModules, "@anthropic-ai", "claude-code", "bin", "claude.exe"))
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 && st.Size() > 1<<20 {
			return c
		}
	}
	t.Fatalf("no Claude Code binary under %s/@anthropic-ai; run `make e2e-deps`", nodeModules)
	return ""
}

// claudeOffline is what keeps Claude Code to loopback and quick to fail:
// no telemetry, update check or other traffic beyond the API, and no
// retries, so that an error Claude Code sees fails the run at once
// (it would otherwise retry a 401 ten times, for minutes).
var claudeOffline = []string{
	"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	"DISABLE_AUTOUPDATER=1",
	"CLAUDE_CODE_MAX_RETRIES=0",
}

// claudeEnv is the stack's isolated environment (HOME in a temp dir, so
// ~/.claude and ~/.claude.json are the test's own) set up as the README
// tells a user: the proxy's /api, any token, an empty ANTHROPIC_API_KEY.
func (s *stack) claudeEnv(extra ...string) []string {
	return slices.Concat(s.env, s.claudeTemp(), []string{
		"ANTHROPIC_BASE_URL=" + s.proxyURL + "/api",
		"ANTHROPIC_AUTH_TOKEN=" + claudeClientToken,
		"ANTHROPIC_API_KEY=",
	}, claudeOffline, extra)
}

// claudeTemp keeps the sockets and scratch files Claude Code makes under
// TMPDIR in the test's own directory.
func (s *stack) claudeTemp() []string {
	s.t.Helper()
	dir := filepath.Join(s.home, "tmp")
	require.NoError(s.t, os.MkdirAll(dir, 0o700))
	return []string{"TMPDIR=" + dir}
}

// claudeProject is the directory Claude Code runs in.
func (s *stack) claudeProject() string {
	s.t.Helper()
	dir := filepath.Join(s.home, "project")
	require.NoError(s.t, os.MkdirAll(dir, 0o700))
	return dir
}

// claude runs `claude -p prompt --model claudeModel args…` to completion.
func (s *stack) claude(env []string, prompt string, args ...string) (string, string, error) {
	s.t.Helper()
	return run(s.t, env, s.claudeProject(), claudeBinary(s.t), append([]string{"-p", prompt, "--model", claudeModel}, args...)...)
}

// messagesRequests are the requests to the Messages API (count_tokens
// included) that the fake OpenRouter received.
func (s *stack) messagesRequests() []openrouter.Request {
	s.t.Helper()
	reqs, err := s.openrouter.Requests(s.ctx())
	require.NoError(s.t, err)
	var out []openrouter.Request
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/api/v1/messages") {
			out = append(out, r)
		}
	}
	return out
}

// assertMessagesCarriedStoredKey checks the Messages requests since index
// from: each went out with the stored key as its one credential and nothing
// of the credentials the client sent.
func (s *stack) assertMessagesCarriedStoredKey(from int, clientSecrets ...string) []openrouter.Request {
	s.t.Helper()
	reqs := s.messagesRequests()
	require.Greater(s.t, len(reqs), from, "no Messages request reached the fake")
	stored := s.storedKey()
	for i, r := range reqs[from:] {
		assert.Equal(s.t, "Bearer "+stored, r.Header.Get("Authorization"), "request %d", from+i)
		assert.Empty(s.t, r.Header.Values("X-Api-Key"), "request %d: the client's x-api-key went on", from+i)
		for name, values := range r.Header {
			for _, v := range values {
				for _, secret := range clientSecrets {
					assert.NotContains(s.t, v, secret, "request %d, header %s", from+i, name)
				}
			}
		}
	}
	return reqs[from:]
}

func TestClaudeCode(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()

	out, errOut, err := s.claude(s.claudeEnv(), "Say hi")
	require.NoError(t, err, "claude -p: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	reqs := s.assertMessagesCarriedStoredKey(0, claudeClientToken)
	first := reqs[0]
	assert.Equal(t, "/api/v1/messages", first.Path, "ANTHROPIC_BASE_URL=…/api: Claude Code adds /v1/messages")
	assert.Equal(t, "beta=true", first.Query, "the query went on as it came")
	assert.True(t, strings.HasPrefix(first.Header.Get("User-Agent"), "claude-cli/"), first.Header.Get("User-Agent"))
	assert.NotEmpty(t, first.Header.Get("Anthropic-Version"), "Anthropic's headers went on")
	assert.Equal(t, claudeModel, gjson.GetBytes(first.Body, "model").String(), "the OpenRouter model id went on as given")
	assert.True(t, gjson.GetBytes(first.Body, "stream").Bool(), "Claude Code streams, so this went through the SSE path")

	// A client that also sends x-api-key (ANTHROPIC_API_KEY set): both of
	// its credentials are dropped, the stored key goes instead.
	from := len(s.messagesRequests())
	out, errOut, err = s.claude(s.claudeEnv("ANTHROPIC_API_KEY="+claudeClientAPIKey), "Say hi")
	require.NoError(t, err, "claude -p with an API key: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	s.assertMessagesCarriedStoredKey(from, claudeClientToken, claudeClientAPIKey)

	// Revoked between two runs: the second run still answers, after one
	// rotation. Claude Code retries nothing here, so any 401 that reached
	// it would have failed the run.
	old := s.storedKey()
	_, err = s.broker.RevokeCurrentKey(s.ctx())
	require.NoError(t, err)
	from = len(s.messagesRequests())
	out, errOut, err = s.claude(s.claudeEnv(), "Say hi")
	require.NoError(t, err, "claude -p after the revocation: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	s.assertMessagesRecovered(from, old)
}

// assertMessagesRecovered checks the Messages requests since index from,
// made while the key old was being revoked: one went out with old and got
// the 401, and it was retried with the new key, which every later request
// carried too; the broker rotated once.
func (s *stack) assertMessagesRecovered(from int, old string) {
	s.t.Helper()
	stored := s.storedKey()
	require.NotEqual(s.t, old, stored, "the key was rotated")
	rejected, served := 0, 0
	for i, r := range s.messagesRequests()[from:] {
		switch r.Header.Get("Authorization") {
		case "Bearer " + old:
			assert.Equal(s.t, 401, r.Status, "request %d with the revoked key", i)
			rejected++
		case "Bearer " + stored:
			assert.Equal(s.t, 200, r.Status, "request %d with the new key", i)
			served++
		default:
			s.t.Errorf("request %d carried neither the old nor the new key", i)
		}
	}
	assert.Equal(s.t, 1, rejected, "one request met the revoked key")
	assert.GreaterOrEqual(s.t, served, rejected, "and was retried")
	stats, err := s.broker.Stats(s.ctx())
	require.NoError(s.t, err)
	assert.Equal(s.t, 1, stats.RotateCalls, "one rotation")
}

// TestClaudeCodeStreamsEventByEvent holds each piece of the fake's answer
// until the test lets it go, and lets the next one go only once Claude Code
// has shown the one before on its stream-json output: every event crossed
// the proxy on its own, none waited for a later one.
func TestClaudeCodeStreamsEventByEvent(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	require.NoError(t, s.openrouter.SetFault(s.ctx(), openrouter.Fault{Stepped: true}))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, claudeBinary(t), "-p", "Say hi", "--model", claudeModel,
		"--output-format", "stream-json", "--include-partial-messages", "--verbose")
	cmd.Env, cmd.Dir = s.claudeEnv(), s.claudeProject()
	// Asked to stop, Claude Code removes its socket; killed, it cannot.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var out, errOut testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	waitErr, exited := make(chan error, 1), make(chan struct{})
	go func() {
		waitErr <- cmd.Wait()
		close(exited)
	}()
	defer func() {
		cancel()
		<-exited
	}()

	// shown are the API events Claude Code printed so far, in order.
	shown := func() []gjson.Result {
		var events []gjson.Result
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if line := gjson.Parse(sc.Text()); line.Get("type").String() == "stream_event" {
				events = append(events, line.Get("event"))
			}
		}
		return events
	}
	sent, texts := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for done := false; !done; {
		require.True(t, time.Now().Before(deadline), "the stream did not finish in time; Claude Code printed:\n%s\n%s", out.String(), errOut.String())
		piece, err := s.openrouter.Step(s.ctx())
		if err != nil {
			select {
			case <-exited:
				t.Fatalf("claude ended before its answer was complete (%v):\n%s\n%s", <-waitErr, out.String(), errOut.String())
			default:
			}
			// Claude Code has not opened the stream yet.
			require.Zero(t, sent, "a step failed in the middle of the stream: %v", err)
			continue
		}
		name, data, ok := sseEvent(piece)
		if !ok || name == "ping" {
			continue // comments and pings are not shown by Claude Code
		}
		sent++
		require.Eventually(t, func() bool { return len(shown()) >= sent }, 10*time.Second, 10*time.Millisecond,
			"event %d (%s) was sent but Claude Code did not show it before the next was sent; it printed:\n%s", sent, name, out.String())
		got := shown()[sent-1]
		assert.Equal(t, name, got.Get("type").String(), "event %d", sent)
		if name == "content_block_delta" {
			assert.JSONEq(t, gjson.Get(data, "delta").Raw, got.Get("delta").Raw, "event %d", sent)
			if gjson.Get(data, "delta.type").String() == "text_delta" {
				texts++
			}
		}
		done = name == "message_stop"
	}
	select {
	case <-exited:
		require.NoError(t, <-waitErr, "claude: %s\n%s", out.String(), errOut.String())
	case <-ctx.Done():
		t.Fatalf("claude did not exit after the stream ended:\n%s", out.String())
	}
	assert.Equal(t, len(strings.Fields(openrouter.DefaultReply)), texts, "the answer came word by word")
	assert.Len(t, shown(), sent, "Claude Code showed nothing the test did not let go")
	var result gjson.Result
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if r := gjson.Parse(line); r.Get("type").String() == "result" {
			result = r
		}
	}
	assert.Equal(t, openrouter.DefaultReply, result.Get("result").String(), "the final result: %s", result.Raw)
	assert.Len(t, s.assertMessagesCarriedStoredKey(0, claudeClientToken), 1)
}

// sseEvent reads an `event: NAME\ndata: JSON\n\n` piece of an Anthropic
// stream; ok is false for a comment.
func sseEvent(piece string) (name, data string, ok bool) {
	for _, line := range strings.Split(piece, "\n") {
		if v, found := strings.CutPrefix(line, "event: "); found {
			name = v
		}
		if v, found := strings.CutPrefix(line, "data: "); found {
			data = v
		}
	}
	return name, data, name != ""
}

// TestClaudeCodeRunsATool: the fake model asks for Claude Code's Bash tool,
// Claude Code runs it (allowed for the one harmless command the fake asks
// for), sends its output back as a tool_result, and prints the fake's
// answer to that.
func TestClaudeCodeRunsATool(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	// The fake fills the tool's required input with "fake": the command
	// Claude Code runs is `fake`, this script.
	tools := t.TempDir()
	const toolOutput = "output of the fake command"
	require.NoError(t, os.WriteFile(filepath.Join(tools, "fake"), []byte("#!/bin/sh\necho '"+toolOutput+"'\n"), 0o700))
	env := s.claudeEnv()
	for i, kv := range env {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			env[i] = "PATH=" + tools + string(os.PathListSeparator) + path
		}
	}

	out, errOut, err := s.claude(env, "Run the tool "+openrouter.ToolUseMarker, "--tools", "Bash", "--allowedTools", "Bash(fake)")
	require.NoError(t, err, "claude -p: %s\n%s", out, errOut)
	assert.Contains(t, out, "The tool returned: "+toolOutput)

	reqs := s.assertMessagesCarriedStoredKey(0, claudeClientToken)
	require.Len(t, reqs, 2, "the question, then the tool's result")
	assert.Equal(t, "Bash", gjson.GetBytes(reqs[0].Body, "tools.0.name").String())
	messages := gjson.GetBytes(reqs[1].Body, "messages").Array()
	require.GreaterOrEqual(t, len(messages), 2)
	prev, last := messages[len(messages)-2], messages[len(messages)-1]
	assert.Equal(t, "user", last.Get("role").String())
	result := last.Get(`content.#(type=="tool_result")`)
	require.True(t, result.Exists(), "the last message carries a tool_result: %s", last.Raw)
	assert.Contains(t, result.Get("content").String(), toolOutput)
	assert.Equal(t, result.Get("tool_use_id").String(), prev.Get(`content.#(type=="tool_use").id`).String(),
		"the result answers the fake's tool_use")
}

// TestOrproxyClaude runs the real Claude Code through `orproxy claude`,
// with an access token the proxy requires: the command finds claude on
// PATH, points it at the daemon, passes the token and empties the user's
// ANTHROPIC_API_KEY.
func TestOrproxyClaude(t *testing.T) {
	s := newStack(t)
	s.login()
	const token = "local-access-token-for-claude"
	f, err := os.OpenFile(s.configFile, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("access_token: " + token + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s.startProxy()

	bin := t.TempDir()
	require.NoError(t, os.Symlink(claudeBinary(t), filepath.Join(bin, "claude")))
	env := slices.Clone(s.env)
	for i, kv := range env {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			env[i] = "PATH=" + bin + string(os.PathListSeparator) + path
		}
	}
	env = slices.Concat(env, s.claudeTemp(), claudeOffline, []string{
		// The user's own settings, which orproxy claude replaces.
		"ANTHROPIC_API_KEY=" + claudeClientAPIKey,
		"ANTHROPIC_BASE_URL=https://api.anthropic.com",
	})
	orproxy := filepath.Join(binDir, "orproxy")

	out, errOut, err := run(t, env, s.claudeProject(), orproxy, "--config", s.configFile, "claude", "--", "-p", "hi", "--model", claudeModel)
	require.NoError(t, err, "orproxy claude: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	s.assertMessagesCarriedStoredKey(0, token, claudeClientAPIKey)

	// Claude Code's exit code is orproxy's.
	_, direct, directErr := run(t, env, s.claudeProject(), filepath.Join(bin, "claude"), "--no-such-option")
	_, via, viaErr := run(t, env, s.claudeProject(), orproxy, "--config", s.configFile, "claude", "--", "--no-such-option")
	var directExit, viaExit *exec.ExitError
	require.True(t, errors.As(directErr, &directExit), "claude --no-such-option: %v %s", directErr, direct)
	require.True(t, errors.As(viaErr, &viaExit), "orproxy claude -- --no-such-option: %v %s", viaErr, via)
	assert.Equal(t, directExit.ExitCode(), viaExit.ExitCode())
	assert.Equal(t, direct, via, "claude's own words, nothing of orproxy's")

	// With the daemon gone, orproxy says so instead of starting claude.
	require.NoError(t, s.proxy.cmd.Process.Signal(os.Interrupt))
	<-s.proxy.done
	out, errOut, err = run(t, env, s.claudeProject(), orproxy, "--config", s.configFile, "claude", "--", "-p", "hi")
	require.Error(t, err)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "start it with `orproxy serve` or `orproxy service start`")
}
