package openrouter

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/fake/admin"
)

// Handler serves the fake API at /api/v1, the OAuth page at /auth and the
// admin API at /_fake/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/chat/completions", s.chat)
	mux.HandleFunc("POST /api/v1/responses", s.responses)
	mux.HandleFunc("POST /api/v1/messages", s.messages)
	mux.HandleFunc("POST /api/v1/messages/count_tokens", s.countTokens)
	mux.HandleFunc("GET /api/v1/key", s.key)
	mux.HandleFunc("GET /api/v1/models", s.models)
	mux.HandleFunc("POST /api/v1/auth/keys", s.exchange)
	mux.HandleFunc("GET /auth", s.authPage)
	mux.HandleFunc("/api/v1/", s.notFound)
	s.adminRoutes(mux)
	return mux
}

// WriteError writes OpenRouter's error shape.
func WriteError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": status, "message": message}})
	_, _ = w.Write(body)
}

func writeGzipError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", "gzip")
	w.WriteHeader(status)
	zw := gzip.NewWriter(w)
	_ = json.NewEncoder(zw).Encode(map[string]any{"error": map[string]any{"code": status, "message": message}})
	_ = zw.Close()
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := s.record(r, body)
	s.setStatus(rec, http.StatusNotFound)
	WriteError(w, http.StatusNotFound, "Not Found")
}

type toolSpec struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type plugin struct {
	ID      string `json:"id"`
	Enabled *bool  `json:"enabled"`
}

// chatRequest is what the fake reads of a chat, Responses or Messages
// request.
type chatRequest struct {
	Model               string            `json:"model"`
	Stream              bool              `json:"stream"`
	Messages            []json.RawMessage `json:"messages"`
	Input               json.RawMessage   `json:"input"`
	Tools               []toolSpec        `json:"tools"`
	Plugins             []plugin          `json:"plugins"`
	MaxTokens           *int              `json:"max_tokens"`
	MaxCompletionTokens *int              `json:"max_completion_tokens"`
	MaxOutputTokens     *int              `json:"max_output_tokens"`
	Reasoning           json.RawMessage   `json:"reasoning"`
	ReasoningEffort     string            `json:"reasoning_effort"`
	Thinking            *struct {
		Type string `json:"type"`
	} `json:"thinking"`
}

// apiStyle is the error shape of the API a request went to.
type apiStyle int

const (
	styleOpenRouter apiStyle = iota
	styleAnthropic
)

// call is a request begin let through.
type call struct {
	rec  *Request
	req  chatRequest
	body []byte
	// key is the key it came with.
	key string
}

// begin records the request, checks its key and its money, and applies the
// fault. It returns false when it has answered already.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, style apiStyle) (*call, bool) {
	f := s.currentFault()
	var body []byte
	if !f.IgnoreBody {
		body, _ = io.ReadAll(r.Body)
	}
	c := &call{rec: s.record(r, body), body: body}
	gz := f.GzipErrors && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip")
	fail := func(status int, msg string) (*call, bool) {
		s.setStatus(c.rec, status)
		switch {
		case style == styleAnthropic:
			writeAnthropicError(w, status, msg, nil, gz)
		case gz:
			writeGzipError(w, status, msg)
		default:
			WriteError(w, status, msg)
		}
		return c, false
	}
	refuse := func(rf *refusal) (*call, bool) {
		s.setStatus(c.rec, rf.status)
		rf.write(w, style, gz)
		return c, false
	}
	info, msg := s.authenticate(r, style == styleAnthropic)
	if msg != "" {
		return fail(http.StatusUnauthorized, msg)
	}
	c.key = info.Key
	if rf := s.limitRefusal(c.key, f); rf != nil {
		return refuse(rf)
	}
	if f.HangBeforeHeaders {
		<-r.Context().Done()
		s.markCanceled(c.rec)
		return c, false
	}
	if f.HeaderDelay > 0 {
		select {
		case <-time.After(f.HeaderDelay):
		case <-r.Context().Done():
			s.markCanceled(c.rec)
			return c, false
		}
	}
	if status := s.takeStatus(); status != 0 {
		s.setStatus(c.rec, status)
		var named struct{ Model string }
		_ = json.Unmarshal(body, &named)
		if style == styleAnthropic {
			writeAnthropicStatusFault(w, f, status, named.Model, gz)
		} else {
			writeStatusFault(w, f, status, named.Model, gz)
		}
		return c, false
	}
	if f.IgnoreBody {
		c.req.Model = "openai/gpt-4o-mini"
		return c, true
	}
	if err := json.Unmarshal(body, &c.req); err != nil {
		return fail(http.StatusBadRequest, "Invalid JSON body: "+err.Error())
	}
	if c.req.Model == "" {
		c.req.Model = "openai/gpt-4o-mini"
	}
	if rf := s.affordRefusal(c.key, c.req, len(body)); rf != nil {
		return refuse(rf)
	}
	if len(c.req.Tools) > 0 && slices.Contains(f.RejectToolsFor, c.req.Model) {
		return fail(http.StatusNotFound, "No endpoints found that support tool use. To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing")
	}
	return c, true
}

// fakeCitation is the source the fake search finds.
func fakeCitation() map[string]any {
	return map[string]any{"type": "url_citation", "url_citation": map[string]any{
		"url": "https://example.com/fake-source", "title": "Fake source", "content": "An excerpt the fake search found.", "start_index": 0, "end_index": 5,
	}}
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, styleOpenRouter)
	if !ok {
		return
	}
	rec, req := c.rec, c.req
	f := s.currentFault()
	if f.CutAfterBytes > 0 {
		w = &cutWriter{ResponseWriter: w, left: f.CutAfterBytes}
	}
	if req.Messages == nil && !f.IgnoreBody {
		s.setStatus(rec, http.StatusBadRequest)
		WriteError(w, http.StatusBadRequest, "Input required: specify \"messages\"")
		return
	}
	id := newGenerationID()
	w.Header().Set("X-Generation-Id", id)
	searches := req.searches()
	var annotations []any
	if searches > 0 {
		annotations = []any{fakeCitation()}
	}
	reasoning := ""
	if req.reasons() {
		reasoning = ThinkingText
	}
	u := s.bill(c, id, len(s.opts.Reply), len(reasoning), searches)
	s.setStatus(rec, http.StatusOK)
	created := time.Now().Unix()
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": s.opts.Reply}
		if annotations != nil {
			msg["annotations"] = annotations
		}
		if reasoning != "" {
			msg["reasoning"] = reasoning
		}
		answer := map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": req.Model, "provider": "FakeProvider",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "native_finish_reason": "stop", "message": msg}},
		}
		if !f.OmitUsage {
			answer["usage"] = u.chat(f)
		}
		// With its length, as OpenRouter sends it, so that a cut answer is
		// visibly short.
		body, _ := json.Marshal(answer)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	words := strings.SplitAfter(s.opts.Reply, " ")
	events := make([]any, 0, len(words)+3)
	if reasoning != "" {
		events = append(events, chunk(id, created, req.Model, map[string]any{"role": "assistant", "content": "", "reasoning": reasoning}, nil))
	}
	for i, word := range words {
		delta := map[string]any{"content": word}
		if i == 0 && reasoning == "" {
			delta["role"] = "assistant"
		}
		if i == len(words)-1 && annotations != nil {
			delta["annotations"] = annotations
		}
		events = append(events, chunk(id, created, req.Model, delta, nil))
	}
	if f.ErrorMidStream > 0 {
		n := min(f.ErrorMidStream, len(events))
		events = append(events[:n:n], streamError(id, created, req.Model, f.ErrorMidStreamCode))
		s.stream(w, r, rec, events, false)
		return
	}
	events = append(events, chunk(id, created, req.Model, map[string]any{}, "stop"))
	if !f.OmitUsage {
		// OpenRouter's last chunk before [DONE]: no choices, the usage.
		events = append(events, map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"provider": "FakeProvider", "choices": []any{}, "usage": u.chat(f)})
	}
	s.stream(w, r, rec, events, true)
}

// ssePiece is one event of a stream as it goes on the wire.
func ssePiece(ev any) string {
	if ne, ok := ev.(namedEvent); ok {
		data, _ := json.Marshal(ne.data)
		return "event: " + ne.name + "\ndata: " + string(data) + "\n\n"
	}
	data, _ := json.Marshal(ev)
	return "data: " + string(data) + "\n\n"
}

func chunk(id string, created int64, model string, delta map[string]any, finish any) map[string]any {
	return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "provider": "FakeProvider",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
}

// stream sends events as SSE: keep-alive comments first, as OpenRouter sends
// while a model warms up, then one event per chunk, with a comment among
// them, then [DONE] unless done is false (a stream that ends in an error
// event).
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rec *Request, events []any, done bool) {
	f := s.currentFault()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// The headers go out before the first piece, which may wait for a step.
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	// send writes one piece after pause (and, under Stepped, after its
	// step) and flushes it; false means the stream is over.
	send := func(piece string, pause time.Duration) bool {
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-r.Context().Done():
				s.markCanceled(rec)
				return false
			}
		}
		var step chan<- string
		if f.Stepped {
			select {
			case step = <-s.steps:
			case <-r.Context().Done():
				s.markCanceled(rec)
				return false
			}
		}
		_, err := io.WriteString(w, piece)
		if err == nil {
			if err = rc.Flush(); errors.Is(err, http.ErrNotSupported) {
				err = nil // a writer that cannot flush still gets the whole stream
			}
		}
		if step != nil {
			if err == nil {
				step <- piece
			} else {
				close(step)
			}
		}
		if err != nil {
			if !errors.Is(err, errCut) {
				s.markCanceled(rec)
			}
			return false
		}
		return true
	}
	const comment = ": OPENROUTER PROCESSING\n\n"
	for range max(f.KeepAlives, 1) {
		if !send(comment, f.KeepAliveInterval) {
			return
		}
	}
	for i, ev := range events {
		if f.CloseMidStream > 0 && i == f.CloseMidStream {
			panic(http.ErrAbortHandler) // drops the connection without ending the chunked body
		}
		if !send(ssePiece(ev), s.opts.ChunkDelay) {
			return
		}
		if i == len(events)-1 {
			break
		}
		between := f.KeepAlivesBetween
		if between == 0 && i == len(events)/2 {
			between = 1
		}
		for range between {
			if !send(comment, f.KeepAliveInterval) {
				return
			}
		}
	}
	if done {
		send("data: [DONE]\n\n", 0)
	}
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, styleOpenRouter)
	if !ok {
		return
	}
	rec, req := c.rec, c.req
	f := s.currentFault()
	if req.Input == nil && !f.IgnoreBody {
		s.setStatus(rec, http.StatusBadRequest)
		admin.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "invalid_prompt", "message": "Input required"}, "metadata": nil})
		return
	}
	genID := newGenerationID()
	w.Header().Set("X-Generation-Id", genID)
	searches := req.searches()
	reasoning := 0
	if req.reasons() {
		reasoning = len(ThinkingText)
	}
	u := s.bill(c, genID, len(s.opts.Reply), reasoning, searches)
	s.setStatus(rec, http.StatusOK)
	id := "resp-" + randomAlnum(20)
	annotations := []any{}
	var output []any
	if searches > 0 {
		annotations = append(annotations, map[string]any{"type": "url_citation", "url": "https://example.com/fake-source", "title": "Fake source",
			"content": "An excerpt the fake search found.", "start_index": 0, "end_index": 5})
		output = append(output, map[string]any{"type": "openrouter:web_search", "id": "ws-1", "status": "completed",
			"action": map[string]any{"type": "search", "query": "fake search", "sources": []any{map[string]any{"type": "url", "url": "https://example.com/fake-source"}}}})
	}
	text := map[string]any{"type": "output_text", "text": s.opts.Reply, "annotations": annotations}
	output = append(output, map[string]any{"type": "message", "id": "msg-1", "role": "assistant", "status": "completed", "content": []any{text}})
	response := map[string]any{"id": id, "object": "response", "created_at": time.Now().Unix(), "model": req.Model, "status": "completed", "output": output}
	if !f.OmitUsage {
		response["usage"] = u.responses(f)
	}
	if !req.Stream {
		admin.WriteJSON(w, http.StatusOK, response)
		return
	}
	events := []any{
		map[string]any{"type": "response.created", "response": map[string]any{"id": id, "status": "in_progress"}},
		map[string]any{"type": "response.output_text.delta", "item_id": "msg-1", "delta": s.opts.Reply},
		map[string]any{"type": "response.completed", "response": response},
	}
	s.stream(w, r, rec, events, true)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	rec := s.record(r, nil)
	s.setStatus(rec, http.StatusOK)
	data := make([]any, 0, len(s.opts.Models))
	// The prices the fake charges, as OpenRouter writes them: decimal strings.
	price := func(usd float64) string { return strconv.FormatFloat(usd, 'f', -1, 64) }
	p := s.opts.Pricing
	pricing := map[string]any{"prompt": price(p.Prompt), "completion": price(p.Completion), "request": "0", "image": "0",
		"web_search": price(p.WebSearch), "internal_reasoning": price(p.Completion), "input_cache_read": price(p.CachedPrompt)}
	for _, m := range s.opts.Models {
		data = append(data, map[string]any{
			"id": m.ID, "canonical_slug": m.ID, "name": m.Name, "created": 1700000000, "context_length": m.ContextLength,
			"architecture":         map[string]any{"modality": "text->text", "input_modalities": []string{"text"}, "output_modalities": []string{"text"}},
			"pricing":              pricing,
			"top_provider":         map[string]any{"context_length": m.ContextLength, "max_completion_tokens": m.MaxCompletionTokens, "is_moderated": false},
			"supported_parameters": m.SupportedParameters,
		})
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

// authPage plays OpenRouter's consent page with a user who always approves:
// with callback_url it redirects there with ?code=…; without (headless mode)
// it shows the code for the user to paste.
func (s *Server) authPage(w http.ResponseWriter, r *http.Request) {
	rec := s.record(r, nil)
	q := r.URL.Query()
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	callback := q.Get("callback_url")
	if callback == "" && challenge == "" {
		s.setStatus(rec, http.StatusBadRequest)
		http.Error(w, "headless mode requires code_challenge", http.StatusBadRequest)
		return
	}
	if method == "" && challenge != "" {
		method = "plain"
	}
	code := "code-" + NewKey()[9:41]
	s.mu.Lock()
	s.codes[code] = pkceCode{challenge: challenge, method: method, expires: time.Now().Add(10 * time.Minute)}
	s.mu.Unlock()
	if callback == "" {
		s.setStatus(rec, http.StatusOK)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>OpenRouter</title><p>Paste this code into your application:</p><pre id=\"code\">%s</pre>", html.EscapeString(code))
		return
	}
	u, err := url.Parse(callback)
	if err != nil || (u.Scheme != "https" && !isLocal(u.Hostname())) {
		s.setStatus(rec, http.StatusBadRequest)
		http.Error(w, "callback_url must be https or localhost", http.StatusBadRequest)
		return
	}
	qs := u.Query()
	qs.Set("code", code)
	u.RawQuery = qs.Encode()
	s.setStatus(rec, http.StatusFound)
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func isLocal(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := s.record(r, body)
	var in struct {
		Code                string `json:"code"`
		CodeVerifier        string `json:"code_verifier"`
		CodeChallengeMethod string `json:"code_challenge_method"`
	}
	fail := func(status int, msg string) {
		s.setStatus(rec, status)
		WriteError(w, status, msg)
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Code == "" {
		fail(http.StatusBadRequest, "Invalid request body")
		return
	}
	s.mu.Lock()
	c, ok := s.codes[in.Code]
	delete(s.codes, in.Code) // single use, right or wrong
	s.mu.Unlock()
	switch {
	case !ok:
		fail(http.StatusForbidden, "Invalid code or code_verifier")
		return
	case time.Now().After(c.expires):
		fail(http.StatusForbidden, "Authorization code expired")
		return
	case c.challenge != "" && in.CodeChallengeMethod != "" && !strings.EqualFold(in.CodeChallengeMethod, c.method):
		fail(http.StatusBadRequest, "Invalid code_challenge_method")
		return
	case c.challenge != "" && !verifierMatches(in.CodeVerifier, c.challenge, c.method):
		fail(http.StatusForbidden, "Invalid code or code_verifier")
		return
	}
	info := s.IssueKey("", nil)
	s.setStatus(rec, http.StatusOK)
	admin.WriteJSON(w, http.StatusOK, map[string]any{"key": info.Key, "user_id": "user_fake"})
}

// verifierMatches is the PKCE check (RFC 7636 section 4.6).
func verifierMatches(verifier, challenge, method string) bool {
	if strings.EqualFold(method, "S256") {
		sum := sha256.Sum256([]byte(verifier))
		return base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
	}
	return verifier == challenge
}
