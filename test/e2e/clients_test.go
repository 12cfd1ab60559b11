package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// webSearchTools counts the web search tools in a request body the fake saw.
func webSearchTools(body []byte) int {
	n := 0
	gjson.GetBytes(body, "tools").ForEach(func(_, tool gjson.Result) bool {
		if tool.Get("type").String() == "openrouter:web_search" {
			n++
		}
		return true
	})
	return n
}

// assertChatsCarriedStoredKey checks every chat request the fake received
// since index from: the stored key (never the client's dummy) and exactly
// one web search tool.
func (s *stack) assertChatsCarriedStoredKey(from int) []openrouter.Request {
	s.t.Helper()
	reqs := s.chatRequests()
	require.Greater(s.t, len(reqs), from, "no chat request reached the fake")
	stored := s.storedKey()
	for i, r := range reqs[from:] {
		assert.Equal(s.t, "Bearer "+stored, r.Header.Get("Authorization"), "chat request %d", from+i)
		assert.Equal(s.t, 1, webSearchTools(r.Body), "chat request %d: web search tools in %s", from+i, truncate(r.Body))
	}
	return reqs[from:]
}

// assertRecovered checks the chat requests since index from, made while the
// key old was being revoked: each either carried old and got a 401, or
// carried the stored key with one web search tool and got a 200.
func (s *stack) assertRecovered(from int, old string) {
	s.t.Helper()
	reqs := s.chatRequests()[from:]
	stored := s.storedKey()
	require.NotEqual(s.t, old, stored)
	rejected, served := 0, 0
	for i, r := range reqs {
		switch r.Header.Get("Authorization") {
		case "Bearer " + old:
			assert.Equal(s.t, 401, r.Status, "request %d with the revoked key", i)
			rejected++
		case "Bearer " + stored:
			assert.Equal(s.t, 200, r.Status, "request %d with the new key", i)
			assert.Equal(s.t, 1, webSearchTools(r.Body), "request %d", i)
			served++
		default:
			s.t.Errorf("request %d carried neither the old nor the new key", i)
		}
	}
	assert.GreaterOrEqual(s.t, rejected, 1)
	// Every rejected request was retried; requests that came after the
	// rotation went out with the new key at once.
	assert.GreaterOrEqual(s.t, served, rejected)
	stats, err := s.broker.Stats(s.ctx())
	require.NoError(s.t, err)
	assert.Equal(s.t, 1, stats.RotateCalls, "one rotation")
}

func (s *stack) storedKey() string {
	s.t.Helper()
	data, err := os.ReadFile(s.credFile)
	require.NoError(s.t, err)
	return gjson.GetBytes(data, "openrouter_api_key").String()
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, nil, "", "curl", append([]string{"-sS", "--fail-with-body", "--max-time", "30"}, args...)...)
	require.NoError(t, err, "curl %v: %s %s", args, out, errOut)
	return out
}

func TestCurl(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	api := s.proxyURL + "/api/v1"

	out := curl(t, api+"/chat/completions", "-H", "Authorization: Bearer dummy", "-H", "Content-Type: application/json",
		"-d", `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, openrouter.DefaultReply, gjson.Get(out, "choices.0.message.content").String())
	assert.Equal(t, "url_citation", gjson.Get(out, "choices.0.message.annotations.0.type").String(), "the web search tool reached the fake")

	out = curl(t, "-N", api+"/chat/completions", "-H", "Authorization: Bearer dummy",
		"-d", `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	assert.Contains(t, out, ": OPENROUTER PROCESSING")
	assert.True(t, strings.HasSuffix(out, "data: [DONE]\n\n"), out)
	var text strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if data, ok := strings.CutPrefix(line, "data: {"); ok {
			text.WriteString(gjson.Get("{"+data, "choices.0.delta.content").String())
		}
	}
	assert.Equal(t, openrouter.DefaultReply, text.String())

	out = curl(t, s.proxyURL+"/v1/models")
	assert.Equal(t, "openai/gpt-4o-mini", gjson.Get(out, "data.0.id").String())
	assert.JSONEq(t, `{"status":"ok"}`, curl(t, s.proxyURL+"/healthz"))
	status := curl(t, s.proxyURL+"/status")
	assert.Equal(t, "broker", gjson.Get(status, "credential.source").String())
	assert.NotContains(t, status, s.storedKey())
	assert.Equal(t, int64(2), gjson.Get(status, "web_search.patched").Int())

	s.assertChatsCarriedStoredKey(0)

	// The key is revoked behind the proxy's back: the next curl still gets
	// its answer, through one rotation and one retry with the new key.
	before := s.storedKey()
	_, err := s.broker.RevokeCurrentKey(s.ctx())
	require.NoError(t, err)
	from := len(s.chatRequests())
	out = curl(t, api+"/chat/completions", "-H", "Authorization: Bearer dummy", "-H", "Content-Type: application/json",
		"-d", `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, openrouter.DefaultReply, gjson.Get(out, "choices.0.message.content").String())
	reqs := s.chatRequests()[from:]
	require.Len(t, reqs, 2, "the rejected attempt and its one retry")
	assert.Equal(t, "Bearer "+before, reqs[0].Header.Get("Authorization"), "the first attempt carried the revoked key")
	assert.Equal(t, "Bearer "+s.storedKey(), reqs[1].Header.Get("Authorization"), "the retry carried the new stored key")
	assert.Equal(t, 1, webSearchTools(reqs[1].Body), "the retry has one web search tool: %s", truncate(reqs[1].Body))
	s.assertRecovered(from, before)
	assert.Equal(t, int64(1), gjson.Get(curl(t, s.proxyURL+"/status"), "credential.rotation_count").Int())

	for _, key := range []string{before, s.storedKey()} {
		assert.NotContains(t, s.proxy.Output(), key, "no key reaches the log")
	}
}

type openaiResult struct {
	Text        string `json:"text"`
	Chunks      int    `json:"chunks"`
	Annotations int    `json:"annotations"`
	Error       string `json:"error"`
}

func (s *stack) openai(mode string) openaiResult {
	s.t.Helper()
	requireNode(s.t)
	env := append(s.env, "ORPROXY_BASE_URL="+s.proxyURL+"/api/v1")
	out, errOut, err := run(s.t, env, ".", "node", "openai_client.mjs", mode)
	var res openaiResult
	require.NoError(s.t, json.Unmarshal([]byte(strings.TrimSpace(out)), &res), "openai client printed %q, stderr %q", out, errOut)
	require.NoError(s.t, err, "openai client failed: %s", res.Error)
	return res
}

func requireNode(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("node")
	require.NoError(t, err, "the end-to-end tests need Node.js 20+ on PATH")
	_, err = os.Stat(filepath.Join(nodeModules, "openai"))
	require.NoError(t, err, "run `npm install` in test/e2e (make test does it)")
}

func TestOpenAISDK(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()

	res := s.openai("json")
	assert.Equal(t, openrouter.DefaultReply, res.Text)
	assert.Equal(t, 1, res.Annotations)

	res = s.openai("stream")
	assert.Equal(t, openrouter.DefaultReply, res.Text)
	assert.Greater(t, res.Chunks, 3)
	assert.Equal(t, 1, res.Annotations)
	s.assertChatsCarriedStoredKey(0)

	// The key is revoked behind the proxy's back: the client still succeeds
	// and the broker saw one rotation.
	before := s.storedKey()
	_, err := s.broker.RevokeCurrentKey(s.ctx())
	require.NoError(t, err)
	from := len(s.chatRequests())
	res = s.openai("stream")
	assert.Equal(t, openrouter.DefaultReply, res.Text)
	require.Len(t, s.chatRequests()[from:], 2, "the rejected attempt and its one retry")
	s.assertRecovered(from, before)
}

// TestRotateCommandWhileServing: `orproxy rotate` in another process; the
// daemon serves the new key on its next request without a broker call of
// its own.
func TestRotateCommandWhileServing(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	before := s.storedKey()
	curl(t, s.proxyURL+"/api/v1/chat/completions", "-d", `{"model":"openai/gpt-4o-mini","messages":[]}`)

	out, errOut, err := s.orproxy("", "rotate")
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "Rotated")
	after := s.storedKey()
	require.NotEqual(t, before, after)
	assert.NotContains(t, out+errOut, after)

	from := len(s.chatRequests())
	curl(t, s.proxyURL+"/api/v1/chat/completions", "-d", `{"model":"openai/gpt-4o-mini","messages":[]}`)
	reqs := s.chatRequests()[from:]
	require.Len(t, reqs, 1, "no 401 on the way: the daemon already uses the new key")
	assert.Equal(t, "Bearer "+after, reqs[0].Header.Get("Authorization"))
	stats, err := s.broker.Stats(s.ctx())
	require.NoError(t, err)
	assert.Equal(t, 1, stats.RotateCalls)
}
