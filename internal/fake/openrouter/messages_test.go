package openrouter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	msgKey  = "sk-or-v1-messages"
	msgBody = `{"model":"anthropic/claude-sonnet-4.5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`
)

// weatherTools is a Messages tools array: a client tool first, as Claude
// Code sends them.
const weatherTools = `[{"name":"get_weather","description":"Weather","input_schema":{"type":"object",` +
	`"properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"note":{"type":"string"}},` +
	`"required":["city","days","unit"]}},{"name":"other","input_schema":{"type":"object"}}]`

func msgServer(t *testing.T, opts Options, f Fault) (*Server, string) {
	t.Helper()
	opts.Keys = append(opts.Keys, msgKey)
	fake := New(opts)
	fake.SetFault(f)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/api/v1/messages"
}

// postWith posts body with exactly the given headers.
func postWith(t *testing.T, url string, headers map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bodyOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(data)
}

// anthropicErr is the Anthropic error envelope OpenRouter's Messages use.
type anthropicErr struct {
	Type  string `json:"type"`
	Error struct {
		Type      string `json:"type"`
		Message   string `json:"message"`
		ErrorType string `json:"error_type"`
	} `json:"error"`
	RequestID *string        `json:"request_id"`
	Metadata  map[string]any `json:"metadata"`
}

func decodeAnthropicErr(t *testing.T, resp *http.Response) anthropicErr {
	t.Helper()
	var e anthropicErr
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	assert.Equal(t, "error", e.Type)
	return e
}

func TestMessagesAuthentication(t *testing.T) {
	fake, url := msgServer(t, Options{Keys: []string{"sk-or-v1-revoked"}}, Fault{})
	require.True(t, fake.Revoke("sk-or-v1-revoked"))

	tests := []struct {
		name    string
		headers map[string]string
		status  int
		message string
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + msgKey}, http.StatusOK, ""},
		{"x-api-key", map[string]string{"X-Api-Key": msgKey}, http.StatusOK, ""},
		{"empty x-api-key leaves it to the bearer", map[string]string{"X-Api-Key": "", "Authorization": "Bearer " + msgKey}, http.StatusOK, ""},
		{"x-api-key wins over the bearer", map[string]string{"X-Api-Key": "sk-or-v1-revoked", "Authorization": "Bearer " + msgKey}, http.StatusUnauthorized, "User not found."},
		{"revoked", map[string]string{"Authorization": "Bearer sk-or-v1-revoked"}, http.StatusUnauthorized, "User not found."},
		{"unknown", map[string]string{"X-Api-Key": "sk-or-v1-unknown"}, http.StatusUnauthorized, "User not found."},
		{"none", nil, http.StatusUnauthorized, "Missing Authentication header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postWith(t, url, tt.headers, msgBody)
			require.Equal(t, tt.status, resp.StatusCode)
			if tt.status == http.StatusOK {
				return
			}
			assert.JSONEq(t, `{"type":"error","error":{"type":"authentication_error","message":"`+tt.message+`","error_type":"authentication"},"request_id":null}`, bodyOf(t, resp))
		})
	}
	// Chat reads only the bearer: x-api-key is a Messages thing.
	chat := strings.TrimSuffix(url, "/messages") + "/chat/completions"
	assert.Equal(t, http.StatusUnauthorized, postWith(t, chat, map[string]string{"X-Api-Key": msgKey}, chatJSON).StatusCode)

	reqs := fake.Requests()
	require.Len(t, reqs, len(tests)+1)
	assert.Equal(t, msgKey, reqs[1].Header.Get("X-Api-Key"), "the fake records the headers it saw")
	assert.Equal(t, msgBody, string(reqs[0].Body))
	assert.Equal(t, len(tests), fake.Count("/api/v1/messages"))
}

// messageJSON is a Messages answer, as far as these tests read it.
type messageJSON struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Role       string            `json:"role"`
	Model      string            `json:"model"`
	Content    []json.RawMessage `json:"content"`
	StopReason string            `json:"stop_reason"`
	Usage      struct {
		InputTokens          int      `json:"input_tokens"`
		OutputTokens         int      `json:"output_tokens"`
		CacheReadInputTokens int      `json:"cache_read_input_tokens"`
		Cost                 *float64 `json:"cost"`
		ServerToolUse        *struct {
			WebSearchRequests int `json:"web_search_requests"`
		} `json:"server_tool_use"`
	} `json:"usage"`
}

type blockJSON struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

func decodeMessage(t *testing.T, resp *http.Response) (messageJSON, []blockJSON) {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var m messageJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	blocks := make([]blockJSON, len(m.Content))
	for i, c := range m.Content {
		require.NoError(t, json.Unmarshal(c, &blocks[i]))
	}
	return m, blocks
}

func TestMessagesJSONAnswer(t *testing.T) {
	fake, url := msgServer(t, Options{}, Fault{})
	resp := postWith(t, url+"?beta=true", map[string]string{"Authorization": "Bearer " + msgKey, "Anthropic-Version": "2023-06-01"}, msgBody)
	m, blocks := decodeMessage(t, resp)
	assert.True(t, strings.HasPrefix(m.ID, "msg_"), m.ID)
	assert.Equal(t, "message", m.Type)
	assert.Equal(t, "assistant", m.Role)
	assert.Equal(t, "anthropic/claude-sonnet-4.5", m.Model)
	assert.Equal(t, "end_turn", m.StopReason)
	require.Len(t, blocks, 1)
	assert.Equal(t, blockJSON{Type: "text", Text: DefaultReply}, blocks[0])

	u := DefaultPricing.Usage(CountTokens(len(msgBody)), 0, CountTokens(len(DefaultReply)), 0, 0)
	assert.Equal(t, u.PromptTokens, m.Usage.InputTokens)
	assert.Equal(t, u.CompletionTokens, m.Usage.OutputTokens)
	require.NotNil(t, m.Usage.Cost)
	assert.Equal(t, u.Cost, *m.Usage.Cost)
	assert.Nil(t, m.Usage.ServerToolUse)

	reqs := fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "beta=true", reqs[0].Query)
	assert.Equal(t, "2023-06-01", reqs[0].Header.Get("Anthropic-Version"))
	require.NotNil(t, reqs[0].Usage)
	assert.Equal(t, u, *reqs[0].Usage)
	assert.Equal(t, reqs[0].GenerationID, resp.Header.Get("X-Generation-Id"))
	assert.True(t, strings.HasPrefix(reqs[0].GenerationID, "gen-"))
}

func TestMessagesValidation(t *testing.T) {
	_, url := msgServer(t, Options{}, Fault{})
	for body, message := range map[string]string{
		`{"model":"m"}`: "Invalid request: messages field is required",
		`{"messages":[{"role":"user","content":"hi"}]}`: "Invalid request: model field is required",
	} {
		resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, body)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		e := decodeAnthropicErr(t, resp)
		assert.Equal(t, "invalid_request_error", e.Error.Type)
		assert.Equal(t, "invalid_request", e.Error.ErrorType)
		assert.Equal(t, message, e.Error.Message)
	}
	resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, `{not json`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "invalid_request_error", decodeAnthropicErr(t, resp).Error.Type)
}

// sseEvent is one event of an Anthropic stream.
type sseEvent struct {
	name string
	data map[string]any
	at   time.Time
}

// readAnthropicStream reads a whole Messages stream: its events in order and
// its comment lines, and fails on a data line without an event line.
func readAnthropicStream(t *testing.T, resp *http.Response) (events []sseEvent, comments int, raw string) {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var all strings.Builder
	sc := bufio.NewScanner(resp.Body)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		switch {
		case line == "":
		case strings.HasPrefix(line, ":"):
			comments++
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NotEmpty(t, name, "a data line without its event line")
			var data map[string]any
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data))
			assert.Equal(t, name, data["type"], "the event line names the data's type")
			events = append(events, sseEvent{name: name, data: data, at: time.Now()})
			name = ""
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	require.NoError(t, sc.Err())
	return events, comments, all.String()
}

func names(events []sseEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.name
	}
	return out
}

func TestMessagesStream(t *testing.T) {
	const delay = 25 * time.Millisecond
	_, url := msgServer(t, Options{Reply: "one two three", ChunkDelay: delay}, Fault{})
	body := `{"model":"anthropic/claude-sonnet-4.5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp := postWith(t, url+"?beta=true", map[string]string{"X-Api-Key": msgKey}, body)
	require.NotEmpty(t, resp.Header.Get("X-Generation-Id"))
	events, comments, raw := readAnthropicStream(t, resp)
	assert.Equal(t, []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop"}, names(events))
	assert.GreaterOrEqual(t, comments, 1, "OpenRouter's keep-alive comments come on Messages too")
	assert.NotContains(t, raw, "[DONE]", "an Anthropic stream has no [DONE]")
	assert.GreaterOrEqual(t, events[len(events)-1].at.Sub(events[0].at), 7*delay, "events are spread by ChunkDelay")

	u := DefaultPricing.Usage(CountTokens(len(body)), 0, CountTokens(len("one two three")), 0, 0)
	start := events[0].data["message"].(map[string]any)
	assert.True(t, strings.HasPrefix(start["id"].(string), "msg_"))
	assert.Equal(t, []any{}, start["content"])
	startUsage := start["usage"].(map[string]any)
	assert.EqualValues(t, u.PromptTokens, startUsage["input_tokens"])
	assert.EqualValues(t, 1, startUsage["output_tokens"], "message_start's output count is a placeholder")
	assert.NotContains(t, startUsage, "cost", "the cost is known only at the end")

	var text strings.Builder
	for _, e := range events {
		if e.name == "content_block_delta" {
			d := e.data["delta"].(map[string]any)
			assert.Equal(t, "text_delta", d["type"])
			text.WriteString(d["text"].(string))
		}
	}
	assert.Equal(t, "one two three", text.String())

	final := events[len(events)-2].data
	assert.Equal(t, map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, final["delta"])
	finalUsage := final["usage"].(map[string]any)
	assert.EqualValues(t, u.CompletionTokens, finalUsage["output_tokens"], "message_delta's count is the total")
	assert.EqualValues(t, u.PromptTokens, finalUsage["input_tokens"])
	assert.Equal(t, u.Cost, finalUsage["cost"])
}

func TestMessagesToolUse(t *testing.T) {
	wantInput := `{"city":"fake","days":1,"unit":"celsius"}`
	ask := `{"model":"anthropic/claude-sonnet-4.5","max_tokens":1024,"tools":` + weatherTools + `,"messages":[{"role":"user","content":"%s"}]%s}`
	for _, tt := range []struct {
		name  string
		fault Fault
		text  string
	}{
		{"fault", Fault{ToolUse: true}, "weather?"},
		{"marker", Fault{}, "weather? " + ToolUseMarker},
	} {
		t.Run(tt.name+" JSON", func(t *testing.T) {
			_, url := msgServer(t, Options{}, tt.fault)
			m, blocks := decodeMessage(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, fmt.Sprintf(ask, tt.text, "")))
			assert.Equal(t, "tool_use", m.StopReason)
			require.Len(t, blocks, 2, "some text, then the call")
			assert.Equal(t, "text", blocks[0].Type)
			assert.Equal(t, "tool_use", blocks[1].Type)
			assert.Equal(t, "get_weather", blocks[1].Name)
			assert.True(t, strings.HasPrefix(blocks[1].ID, "toolu_"), blocks[1].ID)
			assert.JSONEq(t, wantInput, string(blocks[1].Input))
		})
		t.Run(tt.name+" stream", func(t *testing.T) {
			_, url := msgServer(t, Options{}, tt.fault)
			events, _, _ := readAnthropicStream(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, fmt.Sprintf(ask, tt.text, `,"stream":true`)))
			var partial strings.Builder
			pieces := 0
			for _, e := range events {
				if e.name == "content_block_start" && e.data["index"] == float64(1) {
					assert.Equal(t, map[string]any{}, e.data["content_block"].(map[string]any)["input"])
					assert.Equal(t, "get_weather", e.data["content_block"].(map[string]any)["name"])
				}
				if e.name == "content_block_delta" && e.data["index"] == float64(1) {
					d := e.data["delta"].(map[string]any)
					assert.Equal(t, "input_json_delta", d["type"])
					partial.WriteString(d["partial_json"].(string))
					pieces++
				}
			}
			assert.Greater(t, pieces, 2, "the input comes in pieces")
			assert.JSONEq(t, wantInput, partial.String())
			assert.Equal(t, "tool_use", events[len(events)-2].data["delta"].(map[string]any)["stop_reason"])
		})
	}
	t.Run("no marker, no fault: text", func(t *testing.T) {
		_, url := msgServer(t, Options{}, Fault{})
		m, blocks := decodeMessage(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, fmt.Sprintf(ask, "weather?", "")))
		assert.Equal(t, "end_turn", m.StopReason)
		assert.Equal(t, []blockJSON{{Type: "text", Text: DefaultReply}}, blocks)
	})
	t.Run("a tool result is answered with text that quotes it", func(t *testing.T) {
		_, url := msgServer(t, Options{}, Fault{ToolUse: true})
		body := `{"model":"anthropic/claude-sonnet-4.5","max_tokens":1024,"tools":` + weatherTools + `,"messages":[` +
			`{"role":"user","content":"weather?"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"12 degrees and rain"}]}]}]}`
		m, blocks := decodeMessage(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, body))
		assert.Equal(t, "end_turn", m.StopReason)
		require.Len(t, blocks, 1)
		assert.Equal(t, "The tool returned: 12 degrees and rain", blocks[0].Text)
	})
}

func TestMessagesThinkingAndWebSearch(t *testing.T) {
	fake, url := msgServer(t, Options{}, Fault{})
	body := `{"model":"anthropic/claude-sonnet-4.5","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},` +
		`"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}],"messages":[{"role":"user","content":"news?"}]}`
	m, blocks := decodeMessage(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, body))
	var types []string
	for _, b := range blocks {
		types = append(types, b.Type)
	}
	assert.Equal(t, []string{"thinking", "server_tool_use", "web_search_tool_result", "text"}, types)
	assert.JSONEq(t, `{"query":"news?"}`, string(blocks[1].Input))
	require.NotNil(t, m.Usage.ServerToolUse)
	assert.Equal(t, 1, m.Usage.ServerToolUse.WebSearchRequests)

	rec := fake.Requests()[0].Usage
	require.NotNil(t, rec)
	assert.Equal(t, 1, rec.WebSearches)
	assert.Equal(t, CountTokens(len(ThinkingText)), rec.ReasoningTokens)
	assert.Equal(t, rec.CompletionTokens, m.Usage.OutputTokens, "thinking is part of the output")
	assert.InDelta(t, rec.PromptCost+rec.CompletionCost+DefaultPricing.WebSearch, *m.Usage.Cost, 1e-12, "a search adds its price")
}

func TestMessagesErrorsInAnthropicEnvelope(t *testing.T) {
	tests := []struct {
		status               int
		typ, errorType       string
		retryAfter, rateHdrs bool
	}{
		{http.StatusBadRequest, "invalid_request_error", "invalid_request", false, false},
		{http.StatusForbidden, "permission_error", "permission_denied", false, false},
		{http.StatusNotFound, "not_found_error", "not_found", false, false},
		{http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", true, true},
		{http.StatusInternalServerError, "api_error", "server", false, false},
		{http.StatusBadGateway, "api_error", "provider_unavailable", false, false},
		{http.StatusServiceUnavailable, "overloaded_error", "provider_overloaded", true, false},
		{http.StatusGatewayTimeout, "api_error", "timeout", false, false},
		{529, "overloaded_error", "provider_overloaded", false, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			_, url := msgServer(t, Options{}, Fault{Status: tt.status, RetryAfter: 5})
			resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, msgBody)
			require.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			e := decodeAnthropicErr(t, resp)
			assert.Equal(t, tt.typ, e.Error.Type)
			assert.Equal(t, tt.errorType, e.Error.ErrorType)
			assert.NotEmpty(t, e.Error.Message)
			require.NotNil(t, e.RequestID, "an error after routing names its generation")
			assert.True(t, strings.HasPrefix(*e.RequestID, "gen-"))
			if tt.retryAfter {
				assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			}
			if tt.rateHdrs {
				assert.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
			}
		})
	}
	t.Run("gzip", func(t *testing.T) {
		_, url := msgServer(t, Options{}, Fault{Status: http.StatusTooManyRequests, GzipErrors: true})
		resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, msgBody)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.True(t, resp.Uncompressed, "Go's client took the gzip off")
		assert.Equal(t, "rate_limit_error", decodeAnthropicErr(t, resp).Error.Type)
	})
	t.Run("tools rejected", func(t *testing.T) {
		_, url := msgServer(t, Options{}, Fault{RejectToolsFor: []string{"fake/no-tools-7b"}})
		body := `{"model":"fake/no-tools-7b","max_tokens":10,"tools":` + weatherTools + `,"messages":[{"role":"user","content":"hi"}]}`
		resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, body)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		e := decodeAnthropicErr(t, resp)
		assert.Equal(t, "not_found_error", e.Error.Type)
		assert.Contains(t, e.Error.Message, "No endpoints found that support tool use")
	})
}

func TestMessagesMidStreamError(t *testing.T) {
	for _, tt := range []struct {
		code int
		typ  string
	}{{0, "api_error"}, {http.StatusTooManyRequests, "rate_limit_error"}, {529, "overloaded_error"}} {
		_, url := msgServer(t, Options{Reply: "one two three four"}, Fault{ErrorMidStream: 2, ErrorMidStreamCode: tt.code})
		body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		events, _, _ := readAnthropicStream(t, postWith(t, url, map[string]string{"X-Api-Key": msgKey}, body))
		assert.Equal(t, []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"}, names(events),
			"two deltas, then the error event and nothing else")
		e := events[len(events)-1].data["error"].(map[string]any)
		assert.Equal(t, tt.typ, e["type"])
		assert.NotEmpty(t, e["error_type"])
	}
}

func TestMessagesSteppedStream(t *testing.T) {
	fake, url := msgServer(t, Options{Reply: "a b"}, Fault{Stepped: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := postWith(t, url, map[string]string{"X-Api-Key": msgKey}, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the headers come before any step")
	var all strings.Builder
	for i := 0; !strings.Contains(all.String(), "event: message_stop"); i++ {
		require.Less(t, i, 30, "the stream never ended")
		piece, err := fake.Step(ctx)
		require.NoError(t, err)
		buf := make([]byte, len(piece))
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		require.Equal(t, piece, string(buf), "the client reads exactly what the step sent")
		all.WriteString(piece)
	}
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Empty(t, rest)
}

func TestCountTokens(t *testing.T) {
	fake, url := msgServer(t, Options{}, Fault{})
	count := url + "/count_tokens?beta=true"
	body := `{"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user","content":"how many tokens is this?"}]}`
	resp := postWith(t, count, map[string]string{"X-Api-Key": msgKey}, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"input_tokens":`+strconv.Itoa(CountTokens(len(body)))+`}`, bodyOf(t, resp))

	resp = postWith(t, count, map[string]string{"Authorization": "Bearer sk-or-v1-nope"}, body)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "authentication_error", decodeAnthropicErr(t, resp).Error.Type)

	resp = postWith(t, count, map[string]string{"X-Api-Key": msgKey}, `{"model":"m"}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "invalid_request_error", decodeAnthropicErr(t, resp).Error.Type)

	st, ok := fake.KeyStatus(msgKey)
	require.True(t, ok)
	assert.Zero(t, st.Usage, "counting tokens is free")
	reqs := fake.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "/api/v1/messages/count_tokens", reqs[0].Path)
	assert.Equal(t, "beta=true", reqs[0].Query)
}
