package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testenv"
)

const toolJSON = `{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8}}`

func (d *daemonUnderTest) postWith(t *testing.T, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url+"/api/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func chats(env *testenv.Env) []openrouter.Request {
	var out []openrouter.Request
	for _, r := range env.OpenRouter.Requests() {
		if r.Path == "/api/v1/chat/completions" {
			out = append(out, r)
		}
	}
	return out
}

func (d *daemonUnderTest) status(t *testing.T) string {
	t.Helper()
	resp, err := client.Get(d.url + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestWebSearchToolReachesUpstream(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	d := startDaemon(t, env)
	const body = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Who won? caf\u00e9 ☕"}],"tools":[{"type":"function","function":{"name":"read","parameters":{}}}]}`

	status, answer := d.postWith(t, body, nil)
	require.Equal(t, http.StatusOK, status, answer)
	assert.Equal(t, "url_citation", gjson.Get(answer, "choices.0.message.annotations.0.type").String())
	got := chats(env)[0].Body
	want := strings.TrimSuffix(body, "]}") + "," + toolJSON + "]}"
	assert.Equal(t, want, string(got), "the tool appended, every other byte kept")

	st := d.status(t)
	assert.Equal(t, int64(1), gjson.Get(st, "web_search.patched").Int())
	assert.Equal(t, "auto", gjson.Get(st, "web_search.engine").String())
}

func TestWebSearchOptOutAndDisabledKeepTheBody(t *testing.T) {
	const body = `{"model":"openai/gpt-4o-mini", "messages":[{"role":"user","content":"hi"}] }`
	t.Run("header", func(t *testing.T) {
		env := testenv.New(t, testenv.Options{})
		env.LoginBroker(t)
		d := startDaemon(t, env)
		status, _ := d.postWith(t, body, map[string]string{"X-Orproxy-Web-Search": "off"})
		require.Equal(t, http.StatusOK, status)
		r := chats(env)[0]
		assert.Equal(t, body, string(r.Body))
		assert.Empty(t, r.Header.Get("X-Orproxy-Web-Search"))
		assert.Equal(t, int64(1), gjson.Get(d.status(t), "web_search.skipped.opt_out").Int())
	})
	t.Run("disabled", func(t *testing.T) {
		env := testenv.New(t, testenv.Options{})
		env.LoginBroker(t)
		d := startDaemon(t, env, func(c *config.Config) { c.WebSearch.Enabled = false })
		status, _ := d.postWith(t, body, nil)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, body, string(chats(env)[0].Body))
	})
}

func TestWebSearchFailsOpenWhenUpstreamRefusesTools(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.SetFault(openrouter.Fault{RejectToolsFor: []string{"openai/gpt-4o-mini"}})
	const body = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	status, answer := d.postWith(t, body, nil)
	require.Equal(t, http.StatusOK, status, answer)
	reqs := chats(env)
	require.Len(t, reqs, 2)
	assert.Equal(t, 404, reqs[0].Status)
	assert.Contains(t, string(reqs[0].Body), "openrouter:web_search")
	assert.Equal(t, body, string(reqs[1].Body), "sent again exactly as the client wrote it")

	// The model now goes without the tool for a while: no more failed attempts.
	status, _ = d.postWith(t, body, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Len(t, chats(env), 3)
	st := d.status(t)
	assert.Equal(t, int64(1), gjson.Get(st, "web_search.resent_without_tool").Int())
	assert.Equal(t, int64(1), gjson.Get(st, "web_search.skipped.cooldown").Int())
	assert.True(t, gjson.Get(st, "web_search.cooldowns.openai/gpt-4o-mini").Exists(), st)
}

// Clients such as the OpenAI SDK accept br and zstd, which orproxy could not
// read to see that the tool was refused: upstream is asked for gzip only,
// and a gzipped refusal is still recognised.
func TestWebSearchFailsOpenThroughCompressedErrors(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.SetFault(openrouter.Fault{RejectToolsFor: []string{"openai/gpt-4o-mini"}, GzipErrors: true})
	const body = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	status, answer := d.postWith(t, body, map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"})
	require.Equal(t, http.StatusOK, status, answer)
	reqs := chats(env)
	require.Len(t, reqs, 2)
	assert.Equal(t, "gzip", reqs[0].Header.Get("Accept-Encoding"))
	assert.Equal(t, 404, reqs[0].Status)
	assert.Equal(t, body, string(reqs[1].Body), "sent again without the tool")
}

func TestRetriesNeverStack(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	env.OpenRouter.SetFault(openrouter.Fault{RejectToolsFor: []string{"openai/gpt-4o-mini"}})
	status, body := d.postWith(t, `{"model":"openai/gpt-4o-mini","messages":[]}`, nil)
	require.Equal(t, http.StatusOK, status, body)
	var statuses []int
	for _, r := range chats(env) {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{401, 404, 200}, statuses, "one retry for the key, one without the tool, no more")
}

func TestModelWithoutToolSupportIsNotPatched(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	d := startDaemon(t, env)
	require.Eventually(t, func() bool {
		return gjson.Get(d.status(t), "web_search.catalog.models").Int() > 0
	}, 5*time.Second, 20*time.Millisecond, "the model catalogue is fetched in the background")
	const body = `{"model":"fake/no-tools-7b","messages":[{"role":"user","content":"hi"}]}`
	status, _ := d.postWith(t, body, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, body, string(chats(env)[0].Body))
	var st struct {
		WebSearch struct {
			Skipped map[string]int `json:"skipped"`
		} `json:"web_search"`
	}
	require.NoError(t, json.Unmarshal([]byte(d.status(t)), &st))
	assert.Equal(t, 1, st.WebSearch.Skipped["no_tool_support"])
}
