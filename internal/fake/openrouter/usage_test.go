package openrouter

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const usageKey = "sk-or-v1-usage"

func usageServer(t *testing.T, opts Options, f Fault) (*Server, string) {
	t.Helper()
	opts.Keys = append(opts.Keys, usageKey)
	fake := New(opts)
	fake.SetFault(f)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/api/v1"
}

// usageOf finds the usage an answer reported, whatever its API and framing:
// the chat chunk or Responses event that carries it, or Messages'
// message_delta. nil when the answer reported none.
func usageOf(t *testing.T, path string, stream bool, body string) map[string]any {
	t.Helper()
	if !stream {
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &v), body)
		u, _ := v["usage"].(map[string]any)
		return u
	}
	var found map[string]any
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &v), data)
		switch {
		case path == "/responses" && v["type"] == "response.completed":
			found, _ = v["response"].(map[string]any)["usage"].(map[string]any)
		case path == "/messages" && v["type"] == "message_delta":
			found, _ = v["usage"].(map[string]any)
		case path == "/chat/completions" && v["usage"] != nil:
			require.Nil(t, found, "usage comes once")
			assert.Equal(t, []any{}, v["choices"], "the usage chunk has no choices")
			found = v["usage"].(map[string]any)
		}
	}
	return found
}

var usageCases = []struct {
	path, body string
	stream     bool
	// prompt, completion, cost and searches name the fields of that API's usage.
	prompt, completion string
}{
	{"/chat/completions", `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, false, "prompt_tokens", "completion_tokens"},
	{"/chat/completions", `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, true, "prompt_tokens", "completion_tokens"},
	{"/responses", `{"model":"openai/gpt-4o-mini","input":"hi"}`, false, "input_tokens", "output_tokens"},
	{"/responses", `{"model":"openai/gpt-4o-mini","stream":true,"input":"hi"}`, true, "input_tokens", "output_tokens"},
	{"/messages", `{"model":"anthropic/claude-sonnet-4.5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, false, "input_tokens", "output_tokens"},
	{"/messages", `{"model":"anthropic/claude-sonnet-4.5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, true, "input_tokens", "output_tokens"},
}

func TestUsageWithCostOnEveryAnswer(t *testing.T) {
	for _, tt := range usageCases {
		t.Run(tt.path+map[bool]string{true: " stream"}[tt.stream], func(t *testing.T) {
			fake, api := usageServer(t, Options{}, Fault{})
			resp := post(t, api+tt.path, usageKey, tt.body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			genID := resp.Header.Get("X-Generation-Id")
			assert.Regexp(t, `^gen-\d+-[A-Za-z0-9]{20}$`, genID)
			got := usageOf(t, tt.path, tt.stream, bodyOf(t, resp))
			require.NotNil(t, got, "every answer reports its usage")

			want := DefaultPricing.Usage(CountTokens(len(tt.body)), 0, CountTokens(len(DefaultReply)), 0, 0)
			assert.EqualValues(t, want.PromptTokens, got[tt.prompt])
			assert.EqualValues(t, want.CompletionTokens, got[tt.completion])
			assert.Equal(t, want.Cost, got["cost"])
			assert.Equal(t, false, got["is_byok"])
			assert.Equal(t, map[string]any{"upstream_inference_cost": want.Cost, "upstream_inference_prompt_cost": want.PromptCost,
				"upstream_inference_completions_cost": want.CompletionCost}, got["cost_details"])
			assert.Nil(t, got["server_tool_use"], "no search, no count (Messages says null)")

			reqs := fake.Requests()
			require.Len(t, reqs, 1)
			require.NotNil(t, reqs[0].Usage)
			assert.Equal(t, want, *reqs[0].Usage, "the fake records what it charged")
			assert.Equal(t, genID, reqs[0].GenerationID)
			st, _ := fake.KeyStatus(usageKey)
			assert.Equal(t, want.Cost, st.Usage, "and charged the key")
		})
	}
}

func TestChatUsageDetails(t *testing.T) {
	_, api := usageServer(t, Options{}, Fault{})
	body := `{"model":"openai/gpt-4o-mini","reasoning":{"effort":"high"},"messages":[{"role":"user","content":"hi"}]}`
	resp := post(t, api+"/chat/completions", usageKey, body)
	var out struct {
		ID      string
		Choices []struct {
			Message struct{ Reasoning string }
		}
		Provider string
		Usage    struct {
			CompletionTokens    int `json:"completion_tokens"`
			TotalTokens         int `json:"total_tokens"`
			PromptTokensDetails struct {
				CachedTokens *int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	assert.Equal(t, resp.Header.Get("X-Generation-Id"), out.ID)
	assert.Equal(t, "FakeProvider", out.Provider)
	assert.Equal(t, ThinkingText, out.Choices[0].Message.Reasoning)
	reasoning := CountTokens(len(ThinkingText))
	assert.Equal(t, reasoning, out.Usage.CompletionTokensDetails.ReasoningTokens)
	assert.Equal(t, CountTokens(len(DefaultReply))+reasoning, out.Usage.CompletionTokens, "completion tokens include reasoning")
	assert.Equal(t, CountTokens(len(body))+out.Usage.CompletionTokens, out.Usage.TotalTokens)
	require.NotNil(t, out.Usage.PromptTokensDetails.CachedTokens)
	assert.Zero(t, *out.Usage.PromptTokensDetails.CachedTokens)

	for _, off := range []string{`"reasoning":{"effort":"none"}`, `"reasoning":{"enabled":false}`, `"reasoning":null`} {
		resp := post(t, api+"/chat/completions", usageKey, `{"model":"m",`+off+`,"messages":[]}`)
		assert.NotContains(t, bodyOf(t, resp), ThinkingText, off)
	}
}

func TestWebSearchUsage(t *testing.T) {
	searched := []struct{ name, path, body string }{
		{"chat tool", "/chat/completions", `{"model":"m","tools":[{"type":"openrouter:web_search","parameters":{"max_results":3}}],"messages":[]}`},
		{"chat shorthand", "/chat/completions", `{"model":"m","tools":[{"type":"web_search_preview"}],"messages":[]}`},
		{"chat plugin", "/chat/completions", `{"model":"m","plugins":[{"id":"web"}],"messages":[]}`},
		{"chat online", "/chat/completions", `{"model":"openai/gpt-4o:online","messages":[]}`},
		{"responses", "/responses", `{"model":"m","tools":[{"type":"openrouter:web_search"}],"input":"hi"}`},
		{"messages", "/messages", `{"model":"m","tools":[{"type":"openrouter:web_search"}],"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tt := range searched {
		t.Run(tt.name, func(t *testing.T) {
			fake, api := usageServer(t, Options{}, Fault{})
			got := usageOf(t, tt.path, false, bodyOf(t, post(t, api+tt.path, usageKey, tt.body)))
			rec := fake.Requests()[0].Usage
			require.NotNil(t, rec)
			assert.Equal(t, 1, rec.WebSearches)
			assert.Equal(t, rec.Cost, got["cost"])
			assert.InDelta(t, rec.PromptCost+rec.CompletionCost+DefaultPricing.WebSearch, rec.Cost, 1e-12)
			stu := got["server_tool_use"].(map[string]any)
			assert.EqualValues(t, 1, stu["web_search_requests"])
		})
	}
	t.Run("plugin switched off", func(t *testing.T) {
		fake, api := usageServer(t, Options{}, Fault{})
		post(t, api+"/chat/completions", usageKey, `{"model":"m","plugins":[{"id":"web","enabled":false}],"messages":[]}`)
		assert.Zero(t, fake.Requests()[0].Usage.WebSearches)
	})
	t.Run("the spec's spelling", func(t *testing.T) {
		_, api := usageServer(t, Options{}, Fault{ServerToolUseDetails: true})
		for _, path := range []string{"/chat/completions", "/responses"} {
			body := `{"model":"m","tools":[{"type":"openrouter:web_search"}],"messages":[],"input":"hi"}`
			got := usageOf(t, path, false, bodyOf(t, post(t, api+path, usageKey, body)))
			assert.NotContains(t, got, "server_tool_use")
			assert.Equal(t, map[string]any{"web_search_requests": 1.0, "tool_calls_requested": 1.0, "tool_calls_executed": 1.0}, got["server_tool_use_details"])
		}
	})
}

func TestOmitUsage(t *testing.T) {
	for _, tt := range usageCases {
		t.Run(tt.path+map[bool]string{true: " stream"}[tt.stream], func(t *testing.T) {
			fake, api := usageServer(t, Options{}, Fault{OmitUsage: true})
			resp := post(t, api+tt.path, usageKey, tt.body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			body := bodyOf(t, resp)
			got := usageOf(t, tt.path, tt.stream, body)
			if tt.path == "/messages" {
				// Anthropic's shape needs usage: the tokens stay, the cost goes.
				require.NotNil(t, got)
				assert.NotContains(t, got, "cost")
			} else {
				assert.Nil(t, got, body)
			}
			if tt.stream && tt.path != "/messages" {
				assert.True(t, strings.HasSuffix(body, "data: [DONE]\n\n"), "the stream still ends properly")
			}
			st, _ := fake.KeyStatus(usageKey)
			assert.Positive(t, st.Usage, "the request is charged all the same")
			assert.Equal(t, fake.Requests()[0].Usage.Cost, st.Usage)
		})
	}
}

func TestPromptCaching(t *testing.T) {
	fake, api := usageServer(t, Options{Keys: []string{"sk-or-v1-other"}}, Fault{})
	long := strings.Repeat("You are a careful assistant. ", 300) // ~2200 tokens
	first := `{"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"system","content":"` + long + `"},{"role":"user","content":"one"}]}`
	second := `{"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"system","content":"` + long + `"},{"role":"user","content":"two"}]}`
	short := `{"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user","content":"one"}]}`

	send := func(key, body string) Usage {
		t.Helper()
		require.Equal(t, http.StatusOK, post(t, api+"/chat/completions", key, body).StatusCode)
		reqs := fake.Requests()
		return *reqs[len(reqs)-1].Usage
	}
	assert.Zero(t, send(usageKey, first).CachedTokens, "nothing cached yet")
	u := send(usageKey, second)
	shared := strings.Index(second, "two") / 4
	assert.Equal(t, shared/CacheBlockTokens*CacheBlockTokens, u.CachedTokens, "the shared prefix, in whole blocks")
	assert.Equal(t, DefaultPricing.Usage(CountTokens(len(second)), u.CachedTokens, u.CompletionTokens, 0, 0), u)
	assert.Less(t, u.PromptCost, send("sk-or-v1-other", second).PromptCost, "cached tokens are cheaper; another key has its own cache")
	assert.Zero(t, send(usageKey, short).CachedTokens, "a short prefix is not cached")

	// Messages reports it the Anthropic way: input_tokens leave the cache out.
	msg := `{"model":"anthropic/claude-sonnet-4.5","system":"` + long + `","messages":[{"role":"user","content":"%s"}]}`
	post(t, api+"/messages", usageKey, strings.Replace(msg, "%s", "one", 1))
	got := usageOf(t, "/messages", false, bodyOf(t, post(t, api+"/messages", usageKey, strings.Replace(msg, "%s", "two", 1))))
	rec := fake.Requests()[len(fake.Requests())-1].Usage
	require.Positive(t, rec.CachedTokens)
	assert.EqualValues(t, rec.CachedTokens, got["cache_read_input_tokens"])
	assert.EqualValues(t, rec.PromptTokens-rec.CachedTokens, got["input_tokens"])
}

func TestModelsShowThePricesCharged(t *testing.T) {
	_, api := usageServer(t, Options{Pricing: Pricing{Prompt: 0.000001, Completion: 0.000002, WebSearch: 0.02}}, Fault{})
	resp, err := testClient.Get(api + "/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data []struct {
			Pricing map[string]string
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.Data)
	assert.Equal(t, "0.000001", out.Data[0].Pricing["prompt"])
	assert.Equal(t, "0.000002", out.Data[0].Pricing["completion"])
	assert.Equal(t, "0.02", out.Data[0].Pricing["web_search"])
}
