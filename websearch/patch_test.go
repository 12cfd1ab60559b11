package websearch

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// webTool is what the default test settings add.
const webTool = `{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8}}`

var (
	chatReq      = Request{Method: "POST", Path: "/chat/completions", ContentType: "application/json"}
	responsesReq = Request{Method: "POST", Path: "/responses", ContentType: "application/json"}
	messagesReq  = Request{Method: "POST", Path: "/messages", ContentType: "application/json"}
)

// The parts of OpenCode's request: everything before "tools", its ten
// function tools, and what follows.
var (
	ocHead = `{"model":"anthropic/claude-sonnet-4.5","max_tokens":32000,"temperature":0,"messages":[` +
		`{"role":"system","content":"You are opencode, an interactive CLI tool.\nUse \"tools\" wisely."},` +
		`{"role":"user","content":[{"type":"text","text":"Fix proxy/guard.go — the évil host test fails 😅"}]},` +
		`{"role":"assistant","content":"","tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"read","arguments":"{\"filePath\":\"/home/dev/proxy/guard.go\"}"}}]},` +
		`{"role":"tool","tool_call_id":"toolu_01A","content":"<file>\n00001| package proxy\n00002| \n00003| var hostRE = regexp.MustCompile(` + "`" + `^(localhost|127\\.\\d+)$` + "`" + `)\n</file>"}],`
	ocTools = func() string {
		var sb strings.Builder
		sb.WriteString(`[`)
		for i, t := range tools {
			if i > 0 {
				sb.WriteString(`,`)
			}
			sb.WriteString(`{"type":"function","function":{"name":"` + t.name + `","description":`)
			jsonString(&sb, t.desc, false)
			sb.WriteString(`,"parameters":` + t.params + `}}`)
		}
		sb.WriteString(`]`)
		return sb.String()
	}()
	ocTail = `,"tool_choice":"auto","stream":true,"stream_options":{"include_usage":true}}`

	// Claude Code's Messages request: system blocks and tools with cache
	// breakpoints, a tool_use and its result, metadata, stream.
	ccHead = `{"model":"anthropic/claude-sonnet-4.5","messages":[` +
		`{"role":"user","content":[{"type":"text","text":"<system-reminder>\nAs you answer, use the context below.\n</system-reminder>"},{"type":"text","text":"Why does the évil host test fail? 😅","cache_control":{"type":"ephemeral"}}]},` +
		`{"role":"assistant","content":[{"type":"text","text":"Let me read it."},{"type":"tool_use","id":"toolu_01A","name":"Read","input":{"file_path":"/home/dev/proxy/guard.go"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":"     1\tpackage proxy\n     2\t\n     3\tvar hostRE = regexp.MustCompile(` + "`" + `^(localhost|127\\.\\d+)$` + "`" + `)"}]}],` +
		`"temperature":1,"system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude.","cache_control":{"type":"ephemeral"}}],`
	ccTools = `[{"name":"Bash","description":"Executes a given bash command.","input_schema":{"type":"object","properties":{"command":{"type":"string","description":"The command to execute"}},"required":["command"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}},` +
		`{"name":"Read","description":"Reads a file from the local filesystem.","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]},"cache_control":{"type":"ephemeral"}}]`
	ccTail = `,"metadata":{"user_id":"user_2f9c_account__session_1b7e"},"max_tokens":32000,"stream":true}`
)

// patchCases are request bodies shaped like real clients' and the expected
// results. FuzzPatch's seed corpus starts from them.
var patchCases = []struct {
	name   string
	req    Request
	body   string
	want   string // the patched body; "" when the body must go out unchanged
	reason Reason
	model  string
	stream bool
}{
	{
		name:   "OpenCode chat with ten function tools",
		body:   ocHead + `"tools":` + ocTools + ocTail,
		want:   ocHead + `"tools":` + strings.TrimSuffix(ocTools, `]`) + `,` + webTool + `]` + ocTail,
		model:  "anthropic/claude-sonnet-4.5",
		stream: true,
	},
	{
		name:  "OpenAI SDK chat without tools",
		body:  `{"messages":[{"role":"user","content":"Say this is a test"}],"model":"openai/gpt-4o"}`,
		want:  `{"messages":[{"role":"user","content":"Say this is a test"}],"model":"openai/gpt-4o","tools":[` + webTool + `]}`,
		model: "openai/gpt-4o",
	},
	{
		name:  "Responses API, input string",
		req:   Request{Method: "POST", Path: "/responses", ContentType: "application/json"},
		body:  `{"model":"openai/gpt-5","input":"What changed in Go 1.26?","stream":false}`,
		want:  `{"model":"openai/gpt-5","input":"What changed in Go 1.26?","stream":false,"tools":[` + webTool + `]}`,
		model: "openai/gpt-5",
	},
	{
		name: "Responses API, input array and a function tool",
		req:  Request{Method: "POST", Path: "/responses", ContentType: "application/json"},
		body: `{"model":"openai/gpt-5","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"weather?"}]}],` +
			`"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],"stream":true}`,
		want: `{"model":"openai/gpt-5","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"weather?"}]}],` +
			`"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}},` + webTool + `],"stream":true}`,
		model:  "openai/gpt-5",
		stream: true,
	},
	{
		name:  "unicode and escapes kept byte for byte",
		body:  `{"model":"m","messages":[{"role":"user","content":"caf\u00e9 café ☕ 日本語 😀 \ud83d\ude00 \"q\" \/ \\path\n\t","n":1.0e0,"big":12345678901234567890,"html":"<b>&amp;"}]}`,
		want:  `{"model":"m","messages":[{"role":"user","content":"caf\u00e9 café ☕ 日本語 😀 \ud83d\ude00 \"q\" \/ \\path\n\t","n":1.0e0,"big":12345678901234567890,"html":"<b>&amp;"}],"tools":[` + webTool + `]}`,
		model: "m",
	},
	{
		name:  "tools inside messages are not touched",
		body:  `{"model":"m","messages":[{"role":"user","content":"x","tools":[]},{"tools":null}]}`,
		want:  `{"model":"m","messages":[{"role":"user","content":"x","tools":[]},{"tools":null}],"tools":[` + webTool + `]}`,
		model: "m",
	},
	{
		name:  "tools null is replaced",
		body:  `{"model":"m","messages":[],"tools":null,"stream":false}`,
		want:  `{"model":"m","messages":[],"tools":[` + webTool + `],"stream":false}`,
		model: "m",
	},
	{
		name: "tools null with spaces",
		body: `{"messages":[] , "tools" :  null  }`,
		want: `{"messages":[] , "tools" :  [` + webTool + `]  }`,
	},
	{
		name: "tools empty",
		body: `{"messages":[],"tools":[]}`,
		want: `{"messages":[],"tools":[` + webTool + `]}`,
	},
	{
		name: "tools empty with whitespace",
		body: "{\"messages\":[],\"tools\":[ \n\t]}",
		want: "{\"messages\":[],\"tools\":[" + webTool + " \n\t]}",
	},
	{
		name:  "pretty-printed with tools",
		body:  "{\n  \"model\": \"m\",\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ],\n  \"tools\": [\n    {\"type\": \"function\", \"function\": {\"name\": \"f\"}}\n  ]\n}\n",
		want:  "{\n  \"model\": \"m\",\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ],\n  \"tools\": [\n    {\"type\": \"function\", \"function\": {\"name\": \"f\"}}," + webTool + "\n  ]\n}\n",
		model: "m",
	},
	{
		name:  "pretty-printed without tools",
		body:  "\r\n{\n\t\"model\" : \"m\",\n\t\"messages\" : [ ]\n}\n",
		want:  "\r\n{\n\t\"model\" : \"m\",\n\t\"messages\" : [ ],\"tools\":[" + webTool + "]\n}\n",
		model: "m",
	},
	{
		name:  "escaped member names count",
		body:  `{"m\u006fdel":"a\/b","messages":[],"t\u006fols":[]}`,
		want:  `{"m\u006fdel":"a\/b","messages":[],"t\u006fols":[` + webTool + `]}`,
		model: "a/b",
	},
	{
		name: "content type with parameters, identity encoding",
		req:  Request{Method: "POST", Path: "/chat/completions", ContentType: "Application/JSON; charset=utf-8", ContentEncoding: "Identity"},
		body: `{"messages":[]}`,
		want: `{"messages":[],"tools":[` + webTool + `]}`,
	},
	{
		name: "no content type",
		req:  Request{Method: "POST", Path: "/chat/completions"},
		body: `{"messages":[]}`,
		want: `{"messages":[],"tools":[` + webTool + `]}`,
	},
	{
		name:  "a model that only looks like an excluded or online one",
		body:  `{"model":"openai/gpt-4o:online-ish","messages":[],"models":null,"plugins":[{"id":"web-fetch"},{"name":"web"}]}`,
		want:  `{"model":"openai/gpt-4o:online-ish","messages":[],"models":null,"plugins":[{"id":"web-fetch"},{"name":"web"}],"tools":[` + webTool + `]}`,
		model: "openai/gpt-4o:online-ish",
	},
	{
		name: "a tool named web_search that is a function",
		body: `{"messages":[],"tools":[{"type":"function","function":{"name":"web_search"}},{"type":"websearch"},{"type":"openrouter:web_fetch"}]}`,
		want: `{"messages":[],"tools":[{"type":"function","function":{"name":"web_search"}},{"type":"websearch"},{"type":"openrouter:web_fetch"},` + webTool + `]}`,
	},
	{
		name:   "Claude Code messages with its tools",
		req:    messagesReq,
		body:   ccHead + `"tools":` + ccTools + ccTail,
		want:   ccHead + `"tools":` + strings.TrimSuffix(ccTools, `]`) + `,` + webTool + `]` + ccTail,
		model:  "anthropic/claude-sonnet-4.5",
		stream: true,
	},
	{
		name:  "Anthropic SDK messages without tools",
		req:   messagesReq,
		body:  `{"max_tokens":1024,"messages":[{"role":"user","content":"Hello, Claude"}],"model":"anthropic/claude-haiku-4.5"}`,
		want:  `{"max_tokens":1024,"messages":[{"role":"user","content":"Hello, Claude"}],"model":"anthropic/claude-haiku-4.5","tools":[` + webTool + `]}`,
		model: "anthropic/claude-haiku-4.5",
	},
	{
		name:  "messages with tool_choice kept",
		req:   messagesReq,
		body:  `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"},"tools":[]}`,
		want:  `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"},"tools":[` + webTool + `]}`,
		model: "m",
	},
	{
		name:  "messages: tools inside tool_use input are not touched",
		req:   messagesReq,
		body:  `{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Edit","input":{"tools":[{"type":"web_search_20250305"}]}}]}],"tools":[{"name":"Edit","input_schema":{"type":"object"}}]}`,
		want:  `{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Edit","input":{"tools":[{"type":"web_search_20250305"}]}}]}],"tools":[{"name":"Edit","input_schema":{"type":"object"}},` + webTool + `]}`,
		model: "m",
	},
	{
		name:   "stream only when literally true",
		body:   `{"messages":[],"stream":"true"}`,
		want:   `{"messages":[],"stream":"true","tools":[` + webTool + `]}`,
		stream: false,
	},

	// Skipped: the body goes out as it came.
	{name: "top-level array", body: `[{"messages":[]}]`, reason: ReasonInvalidJSON},
	{name: "top-level string", body: `"hello"`, reason: ReasonInvalidJSON},
	{name: "empty body", body: ``, reason: ReasonInvalidJSON},
	{name: "truncated", body: `{"model":"m","messages":[{"role":"user","content":"hi"}]`, reason: ReasonInvalidJSON},
	{name: "truncated in a string", body: `{"model":"m","messages":[{"role":"user","content":"h`, reason: ReasonInvalidJSON},
	{name: "trailing garbage", body: `{"model":"m","messages":[]}garbage`, reason: ReasonInvalidJSON},
	{name: "two objects", body: `{"messages":[]}{"messages":[]}`, reason: ReasonInvalidJSON},
	{name: "trailing comma", body: `{"messages":[],}`, reason: ReasonInvalidJSON},
	{name: "control character in a string", body: "{\"messages\":[\"a\x01\"]}", reason: ReasonInvalidJSON},
	{name: "tools object", body: `{"model":"m","messages":[],"tools":{}}`, reason: ReasonToolsNotArray, model: "m"},
	{name: "tools string", body: `{"messages":[],"tools":"x"}`, reason: ReasonToolsNotArray},
	{name: "tools number", body: `{"messages":[],"tools":0}`, reason: ReasonToolsNotArray},
	{name: "tools false", body: `{"messages":[],"tools":false}`, reason: ReasonToolsNotArray},
	{name: "duplicate tools", body: `{"messages":[],"tools":[],"tools":[{"type":"function"}]}`, reason: ReasonDuplicateTools},
	{name: "duplicate tools, one escaped", body: `{"messages":[],"tools":[],"tool\u0073":null}`, reason: ReasonDuplicateTools},
	{name: "duplicate model", body: `{"model":"a:online","messages":[],"model":"b"}`, reason: ReasonDuplicateKey, model: "b"},
	{name: "duplicate messages", body: `{"messages":[],"messages":{}}`, reason: ReasonNoMessages},
	{name: "duplicate plugins", body: `{"messages":[],"plugins":[],"plugins":[{"id":"web"}]}`, reason: ReasonDuplicateKey},
	{name: "chat without messages", body: `{"model":"m","prompt":"hi"}`, reason: ReasonNoMessages, model: "m"},
	{name: "chat with messages not an array", body: `{"messages":"hi"}`, reason: ReasonNoMessages},
	{name: "empty object", body: `{}`, reason: ReasonNoMessages},
	{name: "responses without input", req: Request{Method: "POST", Path: "/responses"}, body: `{"model":"m","messages":[]}`, reason: ReasonNoMessages, model: "m"},
	{name: "responses with input object", req: Request{Method: "POST", Path: "/responses"}, body: `{"input":{}}`, reason: ReasonNoMessages},
	{name: "our tool already there", body: `{"messages":[],"tools":[{"type":"openrouter:web_search"}]}`, reason: ReasonHasWebSearch},
	{name: "our tool, escaped", body: `{"messages":[],"tools":[{"type":"openrouter:web_s\u0065arch","parameters":{}}]}`, reason: ReasonHasWebSearch},
	{name: "type repeated in a tool", body: `{"messages":[],"tools":[{"type":"web_search","type":"function"}]}`, reason: ReasonHasWebSearch},
	{name: "OpenAI web_search", body: `{"messages":[],"tools":[{"type":"function","function":{"name":"f"}},{"type":"web_search"}]}`, reason: ReasonHasWebSearch},
	{name: "OpenAI web_search_preview", body: `{"messages":[],"tools":[{"type":"web_search_preview"}]}`, reason: ReasonHasWebSearch},
	{name: "OpenAI web_search_preview dated", body: `{"messages":[],"tools":[{"type":"web_search_preview_2025_03_11"}]}`, reason: ReasonHasWebSearch},
	{name: "OpenAI web_search dated", body: `{"messages":[],"tools":[{"type":"web_search_2025_08_26"}]}`, reason: ReasonHasWebSearch},
	{name: "Anthropic web_search", body: `{"messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, reason: ReasonHasWebSearch},
	{name: "Anthropic web_search 2026", body: `{"messages":[],"tools":[{"type":"web_search_20260209"}]}`, reason: ReasonHasWebSearch},
	{name: "any type starting with web_search", body: `{"messages":[],"tools":[{"type":"web_search_tool"}]}`, reason: ReasonHasWebSearch},
	{name: "messages: Claude Code's own web search", req: messagesReq, body: ccHead + `"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":8}]` + ccTail, reason: ReasonHasWebSearch, model: "anthropic/claude-sonnet-4.5", stream: true},
	{name: "messages: Anthropic web search 2026", req: messagesReq, body: `{"model":"m","messages":[],"tools":[{"name":"Bash","input_schema":{}},{"type":"web_search_20260209","name":"web_search","allowed_domains":["go.dev"]}]}`, reason: ReasonHasWebSearch, model: "m"},
	{name: "messages: a later web_search type", req: messagesReq, body: `{"model":"m","messages":[],"tools":[{"type":"web_search_20271231","name":"web_search"}]}`, reason: ReasonHasWebSearch, model: "m"},
	{name: "messages: our tool already there", req: messagesReq, body: `{"model":"m","messages":[],"tools":[{"type":"openrouter:web_search","parameters":{"max_results":2}}]}`, reason: ReasonHasWebSearch, model: "m"},
	{name: "messages: web plugin", req: messagesReq, body: `{"model":"m","messages":[],"plugins":[{"id":"web"}]}`, reason: ReasonWebPlugin, model: "m"},
	{name: "messages: online model", req: messagesReq, body: `{"model":"anthropic/claude-haiku-4.5:online","messages":[]}`, reason: ReasonOnlineModel, model: "anthropic/claude-haiku-4.5:online"},
	{name: "messages: models fallback", req: messagesReq, body: `{"model":"a/b","models":["a/b"],"messages":[]}`, reason: ReasonModelsFallback, model: "a/b"},
	{name: "messages: no messages", req: messagesReq, body: `{"model":"m","prompt":"hi"}`, reason: ReasonNoMessages, model: "m"},
	{name: "messages: tools object", req: messagesReq, body: `{"model":"m","messages":[],"tools":{"type":"web_search_20250305"}}`, reason: ReasonToolsNotArray, model: "m"},
	{name: "messages: invalid JSON", req: messagesReq, body: `{"model":"m","messages":[`, reason: ReasonInvalidJSON},
	{name: "messages: opt-out", req: Request{Method: "POST", Path: "/messages", OptOut: true}, body: `{"model":"m","messages":[],"stream":true}`, reason: ReasonOptOut, model: "m", stream: true},
	{name: "messages: count_tokens", req: Request{Method: "POST", Path: "/messages/count_tokens"}, body: `{"model":"m","messages":[]}`, reason: ReasonNotChat},
	{name: "messages: gzip", req: Request{Method: "POST", Path: "/messages", ContentEncoding: "gzip"}, body: `{"model":"m","messages":[]}`, reason: ReasonEncoded},
	{name: "web plugin", body: `{"model":"m","messages":[],"plugins":[{"id":"file-parser"},{"id":"web","max_results":3}]}`, reason: ReasonWebPlugin, model: "m"},
	{name: "web plugin disabled is still the client's choice", body: `{"messages":[],"plugins":[{"id":"web","enabled":false}]}`, reason: ReasonWebPlugin},
	{name: "online model", body: `{"model":"openai/gpt-4o:online","messages":[]}`, reason: ReasonOnlineModel, model: "openai/gpt-4o:online"},
	{name: "models fallback", body: `{"model":"a/b","models":["a/b","c/d"],"messages":[]}`, reason: ReasonModelsFallback, model: "a/b"},
	{name: "models fallback, empty", body: `{"models":[],"messages":[]}`, reason: ReasonModelsFallback},
	{name: "not POST", req: Request{Method: "GET", Path: "/chat/completions"}, body: `{"messages":[]}`, reason: ReasonNotChat},
	{name: "other path", req: Request{Method: "POST", Path: "/embeddings"}, body: `{"messages":[]}`, reason: ReasonNotChat},
	{name: "path below chat", req: Request{Method: "POST", Path: "/chat/completions/x"}, body: `{"messages":[]}`, reason: ReasonNotChat},
	{name: "lower-case method", req: Request{Method: "post", Path: "/chat/completions"}, body: `{"messages":[]}`, reason: ReasonNotChat},
	{name: "gzip", req: Request{Method: "POST", Path: "/chat/completions", ContentEncoding: "gzip"}, body: `{"messages":[]}`, reason: ReasonEncoded},
	{name: "text content type", req: Request{Method: "POST", Path: "/chat/completions", ContentType: "text/plain"}, body: `{"messages":[]}`, reason: ReasonNotJSON},
	{name: "curl's default form content type", req: Request{Method: "POST", Path: "/chat/completions", ContentType: "application/x-www-form-urlencoded"}, body: `{"messages":[]}`, want: `{"messages":[],"tools":[` + webTool + `]}`},
	{name: "form content type that is not JSON", req: Request{Method: "POST", Path: "/chat/completions", ContentType: "application/x-www-form-urlencoded"}, body: `a=1&b=2`, reason: ReasonInvalidJSON},
	{name: "json-ish content type", req: Request{Method: "POST", Path: "/chat/completions", ContentType: "application/jsonl"}, body: `{"messages":[]}`, reason: ReasonNotJSON},
	{name: "+json content type", req: Request{Method: "POST", Path: "/chat/completions", ContentType: "application/vnd.api+json; charset=utf-8"}, body: `{"messages":[]}`, want: `{"messages":[],"tools":[` + webTool + `]}`},
	{name: "opt-out", req: Request{Method: "POST", Path: "/chat/completions", OptOut: true}, body: `{"model":"m","messages":[],"stream":true}`, reason: ReasonOptOut, model: "m", stream: true},
}

func TestPatch(t *testing.T) {
	for _, tt := range patchCases {
		t.Run(tt.name, func(t *testing.T) {
			in := newTestInjector(t, testSettings())
			req := tt.req
			if req.Method == "" {
				req = chatReq
			}
			body := []byte(tt.body)
			orig := bytes.Clone(body)
			out, d := in.Patch(req, body)
			assert.Equal(t, orig, body, "the caller's body was modified")
			assert.Equal(t, tt.model, d.Model, "model")
			assert.Equal(t, tt.stream, d.Stream, "stream")
			if tt.want == "" {
				assert.Equal(t, tt.reason, d.Reason, "reason")
				assert.False(t, d.Patched)
				assert.Equal(t, tt.body, string(out))
				return
			}
			require.Equal(t, ReasonNone, d.Reason, "reason")
			assert.True(t, d.Patched)
			assert.Equal(t, tt.want, string(out))
			assert.Equal(t, len(out), cap(out), "the output buffer is sized exactly")
		})
	}
}

func TestPatchSettings(t *testing.T) {
	body := []byte(`{"model":"openai/gpt-4o","messages":[]}`)
	tests := []struct {
		name     string
		settings Settings
		want     string // "" = unchanged
		reason   Reason
	}{
		{"max characters", Settings{Enabled: true, Engine: "exa", MaxResults: 25, MaxCharacters: 2000},
			`{"model":"openai/gpt-4o","messages":[],"tools":[{"type":"openrouter:web_search","parameters":{"engine":"exa","max_results":25,"max_characters":2000}}]}`, ReasonNone},
		{"native engine", Settings{Enabled: true, Engine: "native", MaxResults: 1},
			`{"model":"openai/gpt-4o","messages":[],"tools":[{"type":"openrouter:web_search","parameters":{"engine":"native","max_results":1}}]}`, ReasonNone},
		{"disabled", Settings{Engine: "auto", MaxResults: 8}, "", ReasonDisabled},
		{"excluded by glob", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"anthropic/*", "openai/gpt-4?"}}, "", ReasonExcludedModel},
		{"excluded exactly", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"openai/gpt-4o"}}, "", ReasonExcludedModel},
		{"star crosses the slash", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"*gpt-4o"}}, "", ReasonExcludedModel},
		{"anywhere in the ID", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"*gpt*"}}, "", ReasonExcludedModel},
		{"class", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"[o]penai/gpt-4[a-z]"}}, "", ReasonExcludedModel},
		{"a glob matches the whole ID", Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"openai/gpt-4", "gpt-4o", "*:free"}},
			`{"model":"openai/gpt-4o","messages":[],"tools":[` + webTool + `]}`, ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newTestInjector(t, tt.settings)
			out, d := in.Patch(chatReq, body)
			assert.Equal(t, tt.reason, d.Reason)
			assert.Equal(t, "openai/gpt-4o", d.Model)
			if tt.want == "" {
				assert.Equal(t, string(body), string(out))
			} else {
				assert.Equal(t, tt.want, string(out))
			}
		})
	}
}

func TestPatchUsesCatalogAndCooldown(t *testing.T) {
	in := newTestInjector(t, testSettings())
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	in.now = func() time.Time { return now }
	patch := func(model string) Decision {
		_, d := in.Patch(chatReq, []byte(`{"model":"`+model+`","messages":[]}`))
		return d
	}

	assert.True(t, patch("old/no-tools").Patched, "an unknown catalogue means inject")
	c, err := parseCatalog([]byte(`{"data":[
		{"id":"old/no-tools","supported_parameters":["temperature","max_tokens"]},
		{"id":"new/tools","supported_parameters":["tools","tool_choice"]},
		{"id":"new/tools:thinking","supported_parameters":["max_tokens"]},
		{"id":"odd/no-list"}]}`))
	require.NoError(t, err)
	in.catalog.Store(c)
	assert.Equal(t, ReasonNoToolSupport, patch("old/no-tools").Reason)
	assert.Equal(t, ReasonNoToolSupport, patch("old/no-tools:nitro").Reason, "a variant follows its base model")
	assert.Equal(t, ReasonNoToolSupport, patch("new/tools:thinking").Reason, "a listed variant speaks for itself")
	assert.True(t, patch("new/tools").Patched)
	assert.True(t, patch("new/tools:floor").Patched)
	assert.True(t, patch("odd/no-list").Patched, "no supported_parameters: assume tools")
	assert.True(t, patch("unlisted/model").Patched)

	notFound := []byte(`{"error":{"message":"No endpoints found that support tool use. To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing","code":404}}`)
	assert.True(t, in.ToolRejected("new/tools", 404, notFound))
	assert.Equal(t, ReasonCooldown, patch("new/tools").Reason)
	assert.True(t, patch("new/tools:floor").Patched, "a cooldown is for the exact model")
	assert.False(t, in.ToolRejected("new/tools:floor", 500, notFound))
	assert.True(t, patch("new/tools:floor").Patched)

	now = now.Add(time.Hour)
	assert.True(t, patch("new/tools").Patched, "the cooldown ends")
	assert.Empty(t, in.Status().Cooldowns)
}

func TestPatchDoesNotMutateWhenCapacityAllows(t *testing.T) {
	// A caller's buffer with spare capacity must not be written past its
	// length either: the proxy may keep it to resend the original.
	in := newTestInjector(t, testSettings())
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"messages":[]}`...)
	spare := buf[:cap(buf)]
	for i := len(buf); i < len(spare); i++ {
		spare[i] = 'X'
	}
	before := bytes.Clone(spare)
	out, d := in.Patch(chatReq, buf)
	require.True(t, d.Patched)
	assert.Equal(t, before, spare)
	out[0] = '!'
	assert.Equal(t, byte('{'), buf[0], "the output shares memory with the input")
}

func TestPatchAllocations(t *testing.T) {
	in := newTestInjector(t, testSettings())
	body := opencodeBody(64 << 10)
	allocs := testing.AllocsPerRun(50, func() {
		if _, d := in.Patch(chatReq, body); !d.Patched {
			t.Fatal(d.Reason)
		}
	})
	// The output body and the model string.
	assert.LessOrEqual(t, allocs, 2.0)
	c, err := parseCatalog([]byte(modelList))
	require.NoError(t, err)
	in.catalog.Store(c)
	require.True(t, in.ToolRejected("other/model", 404, []byte(`{"error":{"message":"No endpoints found that support tool use."}}`)))
	allocs = testing.AllocsPerRun(50, func() { in.Patch(chatReq, body) })
	assert.LessOrEqual(t, allocs, 2.0, "with a catalogue and a cooldown to look up")
	// Anthropic tools carry escaped descriptions at their top level; the
	// look for a web search tool must not unescape them.
	messages := claudeCodeBody(64 << 10)
	allocs = testing.AllocsPerRun(50, func() {
		if _, d := in.Patch(messagesReq, messages); !d.Patched {
			t.Fatal(d.Reason)
		}
	})
	assert.LessOrEqual(t, allocs, 2.0, "a Messages body")
	skip := Request{Method: "POST", Path: "/chat/completions", OptOut: true}
	allocs = testing.AllocsPerRun(50, func() { in.Patch(skip, body) })
	assert.LessOrEqual(t, allocs, 1.0, "a skip costs at most the model string")
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range numReasons {
		name := r.String()
		require.NotEmpty(t, name, "reason %d has no name", r)
		require.False(t, seen[name], "reason name %q used twice", name)
		seen[name] = true
		text, err := r.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, name, string(text))
	}
	assert.Equal(t, "unknown", numReasons.String())
}

// The documented examples must work on real OpenRouter IDs, which all hold a "/".
func TestExcludeModelGlobs(t *testing.T) {
	in := newTestInjector(t, Settings{Enabled: true, Engine: "auto", MaxResults: 8, ExcludeModels: []string{"*:free", "*claude*", "openai/o1*"}})
	for model, want := range map[string]bool{
		"meta-llama/llama-3.3-70b-instruct:free": true,
		"anthropic/claude-sonnet-4.5":            true,
		"openai/o1-mini":                         true,
		"openai/gpt-4o":                          false,
		"meta-llama/llama-3.3-70b-instruct":      false,
		"x/openai/o1":                            false,
	} {
		assert.Equal(t, want, in.excluded(model), model)
	}
}
