package openrouter

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/orproxy/orproxy/internal/fake/admin"
)

// ToolUseMarker in the last user message of a Messages request that offers
// tools makes the fake model call the first of them (as Fault.ToolUse does
// for every such request).
const ToolUseMarker = "[fake:tool_use]"

// namedEvent is an SSE event with an event: line, as Anthropic's streams
// have; the chat stream's events have none.
type namedEvent struct {
	name string
	data any
}

// anthropicTypes maps a status to the error.type of Anthropic's envelope
// and OpenRouter's canonical error_type, after OpenRouter's table for its
// Messages skin.
func anthropicTypes(status int) (typ, errorType string) {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error", "invalid_request"
	case http.StatusUnauthorized:
		return "authentication_error", "authentication"
	case http.StatusPaymentRequired:
		return "billing_error", "payment_required"
	case http.StatusForbidden:
		return "permission_error", "permission_denied"
	case http.StatusNotFound:
		return "not_found_error", "not_found"
	case http.StatusRequestEntityTooLarge:
		return "invalid_request_error", "payload_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error", "rate_limit_exceeded"
	case http.StatusBadGateway:
		return "api_error", "provider_unavailable"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error", "provider_overloaded"
	case http.StatusRequestTimeout, http.StatusGatewayTimeout, 524:
		return "api_error", "timeout"
	case http.StatusInternalServerError:
		return "api_error", "server"
	}
	return "api_error", "unmapped"
}

// anthropicErrorBody is OpenRouter's error in Anthropic's envelope.
// requestID is null for errors raised before routing, a generation id
// after.
func anthropicErrorBody(status int, message string, requestID any) map[string]any {
	typ, errorType := anthropicTypes(status)
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message, "error_type": errorType}, "request_id": requestID}
}

func writeAnthropicError(w http.ResponseWriter, status int, message string, requestID any, gz bool) {
	data, _ := json.Marshal(anthropicErrorBody(status, message, requestID))
	writeErrorBody(w, status, data, gz)
}

// writeAnthropicStatusFault answers Fault.Status on Messages: the statuses
// and headers of the chat fault, in Anthropic's envelope.
func writeAnthropicStatusFault(w http.ResponseWriter, f Fault, status int, model string, gz bool) {
	message := http.StatusText(status)
	switch status {
	case http.StatusPaymentRequired:
		creditsRefusal(f).write(w, styleAnthropic, gz)
		return
	case http.StatusTooManyRequests:
		setRateLimitHeaders(w, f)
		message = "Rate limit exceeded: free-models-per-min. "
	case http.StatusBadGateway:
		message = "Provider returned error"
	case http.StatusServiceUnavailable:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		message = "No endpoints available for " + model + ": temporarily unavailable"
	case 529:
		message = "Provider is temporarily overloaded"
	}
	writeAnthropicError(w, status, message, newGenerationID(), gz)
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type messagesRequest struct {
	Model    string             `json:"model"`
	Messages []anthropicMessage `json:"messages"`
}

type contentBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
}

// blocks reads a message's content: a string or an array of blocks.
func blocks(content json.RawMessage) []contentBlock {
	var text string
	if json.Unmarshal(content, &text) == nil {
		return []contentBlock{{Type: "text", Text: text}}
	}
	var out []contentBlock
	_ = json.Unmarshal(content, &out)
	return out
}

func textOf(bs []contentBlock) string {
	var parts []string
	for _, b := range bs {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// answerBlock is one content block of the answer: whole for a JSON answer,
// and as a stream sends it: its start and its deltas.
type answerBlock struct {
	start  map[string]any
	deltas []map[string]any
	full   map[string]any
	// output is how many bytes of it the model generated.
	output int
}

func textBlock(text string) answerBlock {
	b := answerBlock{start: map[string]any{"type": "text", "text": ""},
		full: map[string]any{"type": "text", "text": text, "citations": nil}, output: len(text)}
	for _, word := range strings.SplitAfter(text, " ") {
		b.deltas = append(b.deltas, map[string]any{"type": "text_delta", "text": word})
	}
	return b
}

func thinkingBlock() answerBlock {
	sig := base64.StdEncoding.EncodeToString([]byte("fake-signature-" + randomAlnum(16)))
	b := answerBlock{start: map[string]any{"type": "thinking", "thinking": "", "signature": ""},
		full: map[string]any{"type": "thinking", "thinking": ThinkingText, "signature": sig}}
	for _, word := range strings.SplitAfter(ThinkingText, " ") {
		b.deltas = append(b.deltas, map[string]any{"type": "thinking_delta", "thinking": word})
	}
	b.deltas = append(b.deltas, map[string]any{"type": "signature_delta", "signature": sig})
	return b
}

// toolBlock is a tool_use or server_tool_use block; a stream sends its
// input as pieces of JSON text, the first one empty, as Anthropic's does.
func toolBlock(typ, id, name string, input []byte) answerBlock {
	b := answerBlock{start: map[string]any{"type": typ, "id": id, "name": name, "input": map[string]any{}},
		full: map[string]any{"type": typ, "id": id, "name": name, "input": json.RawMessage(input)}, output: len(input)}
	b.deltas = append(b.deltas, map[string]any{"type": "input_json_delta", "partial_json": ""})
	step := max(len(input)/3, 1)
	for i := 0; i < len(input); i += step {
		b.deltas = append(b.deltas, map[string]any{"type": "input_json_delta", "partial_json": string(input[i:min(i+step, len(input))])})
	}
	return b
}

func searchResultBlock(toolUseID string) answerBlock {
	full := map[string]any{"type": "web_search_tool_result", "tool_use_id": toolUseID, "content": []any{map[string]any{
		"type": "web_search_result", "url": "https://example.com/fake-source", "title": "Fake source",
		"encrypted_content": base64.StdEncoding.EncodeToString([]byte("An excerpt the fake search found.")), "page_age": nil,
	}}}
	return answerBlock{start: full, full: full}
}

// sampleInput makes up the arguments of a tool call from its input schema:
// a value of the right type for each required property.
func sampleInput(schema json.RawMessage) []byte {
	var sc struct {
		Properties map[string]struct {
			Type any   `json:"type"`
			Enum []any `json:"enum"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &sc)
	input := map[string]any{}
	for _, name := range sc.Required {
		p := sc.Properties[name]
		typ, _ := p.Type.(string)
		if list, ok := p.Type.([]any); ok && len(list) > 0 {
			typ, _ = list[0].(string)
		}
		switch {
		case len(p.Enum) > 0:
			input[name] = p.Enum[0]
		case typ == "number" || typ == "integer":
			input[name] = 1
		case typ == "boolean":
			input[name] = true
		case typ == "array":
			input[name] = []any{}
		case typ == "object":
			input[name] = map[string]any{}
		default:
			input[name] = "fake"
		}
	}
	data, _ := json.Marshal(input)
	return data
}

// functionTool is the first tool of req the client runs itself, or nil.
func functionTool(tools []toolSpec) *toolSpec {
	i := slices.IndexFunc(tools, func(t toolSpec) bool {
		return t.Name != "" && (t.Type == "" || t.Type == "custom") && !isWebSearchTool(t.Type)
	})
	if i < 0 {
		return nil
	}
	return &tools[i]
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, styleAnthropic)
	if !ok {
		return
	}
	f := s.currentFault()
	if f.CutAfterBytes > 0 {
		w = &cutWriter{ResponseWriter: w, left: f.CutAfterBytes}
	}
	var req messagesRequest
	if !f.IgnoreBody {
		_ = json.Unmarshal(c.body, &req) // begin checked that it is JSON
		msg := ""
		switch {
		case req.Model == "":
			msg = "Invalid request: model field is required"
		case len(req.Messages) == 0:
			msg = "Invalid request: messages field is required"
		}
		if msg != "" {
			s.setStatus(c.rec, http.StatusBadRequest)
			writeAnthropicError(w, http.StatusBadRequest, msg, nil, false)
			return
		}
	}
	genID := newGenerationID()
	w.Header().Set("X-Generation-Id", genID)

	var last []contentBlock
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "user" {
		last = blocks(req.Messages[n-1].Content)
	}
	var answer []answerBlock
	reasoning := 0
	if c.req.reasons() {
		answer = append(answer, thinkingBlock())
		reasoning = len(ThinkingText)
	}
	searches := c.req.searches()
	if searches > 0 {
		id := "srvtoolu_" + randomAlnum(24)
		query, _ := json.Marshal(map[string]string{"query": strings.TrimSpace(firstNonEmpty(textOf(last), "fake search"))})
		answer = append(answer, toolBlock("server_tool_use", id, "web_search", query), searchResultBlock(id))
	}
	stop := "end_turn"
	resultAt := slices.IndexFunc(last, func(b contentBlock) bool { return b.Type == "tool_result" })
	tool := functionTool(c.req.Tools)
	switch {
	case resultAt >= 0:
		answer = append(answer, textBlock("The tool returned: "+toolResultText(last[resultAt].Content)))
	case tool != nil && (f.ToolUse || strings.Contains(textOf(last), ToolUseMarker)):
		answer = append(answer, textBlock("I will use "+tool.Name+"."),
			toolBlock("tool_use", "toolu_"+randomAlnum(24), tool.Name, sampleInput(tool.InputSchema)))
		stop = "tool_use"
	default:
		answer = append(answer, textBlock(s.opts.Reply))
	}
	output := 0
	for _, b := range answer {
		output += b.output
	}
	u := s.bill(c, genID, output, reasoning, searches)
	s.setStatus(c.rec, http.StatusOK)
	msgID := "msg_" + randomAlnum(24)
	model := c.req.Model
	if req.Model != "" {
		model = req.Model
	}

	if !c.req.Stream {
		content := make([]any, len(answer))
		for i, b := range answer {
			content[i] = b.full
		}
		body, _ := json.Marshal(map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": u.anthropic("final", f), "provider": "FakeProvider",
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}

	events := []any{namedEvent{"message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": u.anthropic("start", f),
	}}}}
	deltas := 0
	for i, b := range answer {
		events = append(events, namedEvent{"content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": b.start}})
		if i == 0 {
			events = append(events, namedEvent{"ping", map[string]any{"type": "ping"}})
		}
		for _, d := range b.deltas {
			if f.ErrorMidStream > 0 && deltas == f.ErrorMidStream {
				break
			}
			events = append(events, namedEvent{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": d}})
			deltas++
		}
		if f.ErrorMidStream > 0 && deltas == f.ErrorMidStream {
			events = append(events, anthropicStreamError(f.ErrorMidStreamCode))
			s.stream(w, r, c.rec, events, false)
			return
		}
		events = append(events, namedEvent{"content_block_stop", map[string]any{"type": "content_block_stop", "index": i}})
	}
	if f.ErrorMidStream > 0 { // fewer deltas than the fault waits for: fail at the end
		events = append(events, anthropicStreamError(f.ErrorMidStreamCode))
		s.stream(w, r, c.rec, events, false)
		return
	}
	events = append(events,
		namedEvent{"message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": u.anthropic("delta", f)}},
		namedEvent{"message_stop", map[string]any{"type": "message_stop"}})
	s.stream(w, r, c.rec, events, false)
}

// anthropicStreamError is the error event of a Messages stream that fails
// after it started: Anthropic's envelope, with OpenRouter's error_type.
func anthropicStreamError(code int) namedEvent {
	if code == 0 {
		code = http.StatusBadGateway
	}
	message := "Provider returned error"
	switch code {
	case http.StatusTooManyRequests:
		message = "Rate limit exceeded"
	case http.StatusServiceUnavailable, 529:
		message = "Provider is temporarily overloaded"
	}
	body := anthropicErrorBody(code, message, nil)
	delete(body, "request_id")
	return namedEvent{"error", body}
}

func toolResultText(content json.RawMessage) string {
	if t := textOf(blocks(content)); t != "" {
		return t
	}
	return string(content)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// countTokens answers POST /messages/count_tokens, which Claude Code calls
// every turn: the prompt tokens a Messages request with this body would
// have, free of charge.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := s.record(r, body)
	fail := func(status int, msg string) {
		s.setStatus(rec, status)
		writeAnthropicError(w, status, msg, nil, false)
	}
	if _, msg := s.authenticate(r, true); msg != "" {
		fail(http.StatusUnauthorized, msg)
		return
	}
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(http.StatusBadRequest, "Invalid JSON body: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		fail(http.StatusBadRequest, "Invalid request: messages field is required")
		return
	}
	s.setStatus(rec, http.StatusOK)
	admin.WriteJSON(w, http.StatusOK, map[string]int{"input_tokens": max(CountTokens(len(body)), 1)})
}
