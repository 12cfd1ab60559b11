package websearch

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsToolRejection(t *testing.T) {
	errBody := func(msg string, code int) string {
		return fmt.Sprintf(`{"error":{"message":%q,"code":%d}}`, msg, code)
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"404 no tool endpoints", 404, errBody("No endpoints found that support tool use. To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing", 404), true},
		{"404 no tool endpoints, other case", 404, errBody("no endpoints found that support Tool Use", 404), true},
		{"400 server tool with models fallback", 400, errBody("Server tool request failed", 400), true},
		{"400 server tools, plural", 400, errBody("Server tools are not supported by this provider", 400), true},
		{"400 names openrouter:web_search", 400, errBody("tool openrouter:web_search is not supported for this model", 400), true},
		{"400 names the tool type in a schema error", 400, errBody("tools.3: Invalid discriminator value. Expected 'function' | 'web_search', received 'openrouter:web_search'", 400), true},
		{"400 names web_search", 400, errBody("web_search is not available for this provider", 400), true},
		{"400 names web search", 400, errBody("Web search is not supported with engine native for this model", 400), true},
		{"400 native Google domain filters", 400, errBody("Domain filters are not supported by native web search for google/gemini-3-pro", 400), true},
		{"400 names websearch", 400, errBody("WebSearch engine exa is unavailable", 400), true},
		{"400 names web-search", 400, errBody("Provider returned error: web-search tool is disabled for this deployment", 400), true},
		{"404 in Anthropic's envelope (Messages)", 404, `{"type":"error","error":{"type":"not_found_error","message":"No endpoints found that support tool use. To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing","error_type":"not_found"},"request_id":null}`, true},
		{"400 in Anthropic's envelope (Messages)", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"tools.3: Input tag 'openrouter:web_search' found using 'type' does not match any of the expected tags","error_type":"invalid_request"},"request_id":"gen-1"}`, true},
		{"400 client tool in Anthropic's envelope", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"tools.0.custom.input_schema: JSON schema is invalid","error_type":"invalid_request"},"request_id":null}`, false},
		{"400 with extra fields", 400, `{"error":{"code":400,"metadata":{"provider_name":"X","error_type":"invalid_request"},"message":"Server tool request failed"},"user_id":"u"}`, true},

		// The client's own function tools are refused with messages that
		// say "tool" too; they must not turn web search off for the model.
		{"400 client function schema", 400, errBody("Invalid schema for function 'get_weather': tools[0].function.parameters: 'additionalProperties' is required to be supplied and to be false", 400), false},
		{"400 client tool name", 400, errBody("Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", 400), false},
		{"400 tool_choice without tools", 400, `{"error":{"code":400,"metadata":{"provider_name":"OpenAI"},"message":"Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."},"user_id":"u"}`, false},
		{"400 unsupported tool type", 400, errBody("Invalid value for 'tools': unsupported type", 400), false},
		{"400 tool call without result", 400, errBody("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_abc123", 400), false},
		{"400 provider tool limit", 400, errBody("Provider returned error: tools: maximum number of tools is 128", 400), false},
		{"400 tool use by Anthropic", 400, errBody("messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01", 400), false},

		{"404 model missing", 404, errBody("No endpoints found for foo/bar.", 404), false},
		{"404 tool message but other status wording", 404, errBody("tool not found", 404), false},
		{"400 unrelated", 400, errBody("max_tokens must be at least 1", 400), false},
		{"400 context length", 400, errBody("This endpoint's maximum context length is 128000 tokens", 400), false},
		{"401 mentioning tools", 401, errBody("User not found. tools", 401), false},
		{"402", 402, errBody("Insufficient credits for tool use", 402), false},
		{"429", 429, errBody("Rate limit exceeded: web_search", 429), false},
		{"500 mentioning tools", 500, errBody("tool failure", 500), false},
		{"200", 200, `{"choices":[]}`, false},
		{"400 not JSON", 400, `Bad Request: tools`, false},
		{"404 HTML", 404, `<html>No endpoints found that support tool use</html>`, false},
		{"400 message not a string", 400, `{"error":{"message":["tools"]}}`, false},
		{"400 message elsewhere", 400, `{"message":"tools are bad"}`, false},
		{"400 empty body", 400, ``, false},
		{"400 truncated", 400, `{"error":{"message":"Server tool req`, false},
		{"400 truncated after the message", 400, `{"error":{"message":"Server tool request failed"`, false},
		{"404 trailing garbage", 404, `{"error":{"message":"No endpoints found that support tool use."}}<html>`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, IsToolRejection(tt.status, []byte(tt.body)))
		})
	}
}

func TestToolRejectedCountsAndCoolsDown(t *testing.T) {
	in, err := New(testSettings(), "", nil, nil, Options{Cooldown: 10 * time.Minute})
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	in.now = func() time.Time { return now }
	rejected := []byte(`{"error":{"message":"Server tool request failed","code":400}}`)

	assert.False(t, in.ToolRejected("a/b", 400, []byte(`{"error":{"message":"bad temperature"}}`)))
	// The client's own function tool is at fault: no resend, no cooldown.
	assert.False(t, in.ToolRejected("a/b", 400, []byte(`{"error":{"message":"Invalid schema for function 'get_weather': tools[0].function.parameters: 'required' must be an array","code":400}}`)))
	assert.Zero(t, in.Status().ResentWithoutTool)
	assert.Empty(t, in.Status().Cooldowns)

	assert.True(t, in.ToolRejected("a/b", 400, rejected))
	now = now.Add(time.Minute)
	assert.True(t, in.ToolRejected("c/d", 400, rejected))
	s := in.Status()
	assert.Equal(t, uint64(2), s.ResentWithoutTool)
	assert.Equal(t, map[string]time.Time{
		"a/b": now.Add(9 * time.Minute),
		"c/d": now.Add(10 * time.Minute),
	}, s.Cooldowns)

	_, d := in.Patch(chatReq, []byte(`{"model":"a/b","messages":[]}`))
	assert.Equal(t, ReasonCooldown, d.Reason)
	now = now.Add(9 * time.Minute)
	_, d = in.Patch(chatReq, []byte(`{"model":"a/b","messages":[]}`))
	assert.True(t, d.Patched, "cooldowns end")
	_, d = in.Patch(chatReq, []byte(`{"model":"c/d","messages":[]}`))
	assert.Equal(t, ReasonCooldown, d.Reason)
	assert.Equal(t, []string{"c/d"}, slices.Collect(maps.Keys(in.Status().Cooldowns)))
}

func TestCooldownTableIsBounded(t *testing.T) {
	in := newTestInjector(t, testSettings())
	rejected := []byte(`{"error":{"message":"No endpoints found that support tool use.","code":404}}`)
	for i := range maxCooldowns + 10 {
		require.True(t, in.ToolRejected(fmt.Sprintf("m/%d", i), 404, rejected), "the resend happens even when the table is full")
	}
	assert.Len(t, in.Status().Cooldowns, maxCooldowns)
	assert.Equal(t, uint64(maxCooldowns+10), in.Status().ResentWithoutTool)
	assert.True(t, in.ToolRejected("m/0", 404, rejected), "a model already in cooldown is renewed")
}

func TestStatus(t *testing.T) {
	in, err := New(Settings{Enabled: true, Engine: "exa", MaxResults: 5, MaxCharacters: 1500, ExcludeModels: []string{"x/*"}}, "", nil, nil, Options{})
	require.NoError(t, err)
	in.now = func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }
	in.Patch(chatReq, []byte(`{"model":"a/b","messages":[]}`))
	in.Patch(chatReq, []byte(`{"model":"a/b","messages":[]}`))
	in.Patch(chatReq, []byte(`{"model":"x/y","messages":[]}`))
	in.Patch(Request{Method: "GET", Path: "/models"}, nil)
	in.Patch(messagesReq, []byte(`{"model":"a/b","messages":[]}`))
	in.ToolRejected("a/b", 404, []byte(`{"error":{"message":"No endpoints found that support tool use."}}`))

	raw, err := json.Marshal(in.Status())
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"enabled": true, "engine": "exa", "max_results": 5, "max_characters": 1500, "exclude_models": ["x/*"],
		"patched": 2,
		"skipped": {"disabled":0,"opt_out":0,"not_chat":1,"messages_off":1,"encoded":0,"not_json":0,"invalid_json":0,"no_messages":0,
			"duplicate_tools":0,"duplicate_key":0,"tools_not_array":0,"models_fallback":0,"online_model":0,
			"excluded_model":1,"no_tool_support":0,"cooldown":0,"web_plugin":0,"has_web_search":0},
		"resent_without_tool": 1,
		"catalog": {"models": 0, "without_tools": 0},
		"cooldowns": {"a/b": "2026-11-23T11:00:00Z"}
	}`, string(raw))

	// Defaults show as empty lists and maps, not null.
	raw, err = json.Marshal(newTestInjector(t, testSettings()).Status())
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"exclude_models":[]`)
	assert.Contains(t, string(raw), `"cooldowns":{}`)
}

func TestNewRejectsBadSettings(t *testing.T) {
	ok := testSettings()
	for name, tc := range map[string]struct {
		mod      func(*Settings)
		upstream string
	}{
		"engine":           {func(s *Settings) { s.Engine = "bing" }, ""},
		"engine empty":     {func(s *Settings) { s.Engine = "" }, ""},
		"max results 0":    {func(s *Settings) { s.MaxResults = 0 }, ""},
		"max results 26":   {func(s *Settings) { s.MaxResults = 26 }, ""},
		"max characters":   {func(s *Settings) { s.MaxCharacters = -1 }, ""},
		"max characters 2": {func(s *Settings) { s.MaxCharacters = 100001 }, ""},
		"glob":             {func(s *Settings) { s.ExcludeModels = []string{"a/["} }, ""},
		"empty glob":       {func(s *Settings) { s.ExcludeModels = []string{""} }, ""},
		"upstream":         {func(*Settings) {}, "openrouter.ai/api/v1"},
		"upstream scheme":  {func(*Settings) {}, "ftp://openrouter.ai/api/v1"},
	} {
		t.Run(name, func(t *testing.T) {
			s := ok
			tc.mod(&s)
			_, err := New(s, tc.upstream, nil, nil, Options{})
			assert.Error(t, err)
		})
	}
	_, err := New(ok, "https://openrouter.ai/api/v1", nil, nil, Options{})
	assert.NoError(t, err)
}

func TestNewCopiesExcludeModels(t *testing.T) {
	s := testSettings()
	s.ExcludeModels = []string{"a/*"}
	in := newTestInjector(t, s)
	s.ExcludeModels[0] = "b/*"
	_, d := in.Patch(chatReq, []byte(`{"model":"a/x","messages":[]}`))
	assert.Equal(t, ReasonExcludedModel, d.Reason)
	in.Status().ExcludeModels[0] = "c/*"
	assert.Equal(t, []string{"a/*"}, in.Status().ExcludeModels)
}

func TestConcurrentUse(t *testing.T) {
	// Run with -race: patches, rejections, catalogue updates and snapshots
	// at once.
	in := newTestInjector(t, testSettings())
	rejected := []byte(`{"error":{"message":"Server tool request failed"}}`)
	c, err := parseCatalog([]byte(modelList))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				model := fmt.Sprintf("m/%d", (g+i)%7)
				_, d := in.Patch(chatReq, []byte(`{"model":"`+model+`","messages":[]}`))
				if d.Patched && i%5 == 0 {
					in.ToolRejected(model, 400, rejected)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			in.catalog.Store(c)
			in.Status()
		}
	})
	wg.Wait()
	s := in.Status()
	var skipped uint64
	for _, n := range s.Skipped {
		skipped += n
	}
	assert.Equal(t, uint64(4*200), s.Patched+skipped, "every call counted once")
}
