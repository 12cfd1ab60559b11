package openrouter

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Pricing is what the fake charges, in USD. One price list serves every
// model, so that a test can work out what a request cost from the body the
// fake saw (Request.Body) alone.
type Pricing struct {
	// Prompt is the price of a prompt token not read from the cache.
	Prompt float64 `json:"prompt"`
	// CachedPrompt is the price of a prompt token read from the cache.
	CachedPrompt float64 `json:"cached_prompt"`
	// Completion is the price of a completion token, reasoning included.
	Completion float64 `json:"completion"`
	// WebSearch is the price of one web search, on top of the tokens.
	WebSearch float64 `json:"web_search"`
}

// DefaultPricing is a Claude Sonnet's price on OpenRouter, with the Exa
// search engine's price per search.
var DefaultPricing = Pricing{Prompt: 0.000003, CachedPrompt: 0.0000003, Completion: 0.000015, WebSearch: 0.007}

// CountTokens is the fake tokenizer: every started four bytes of a text are
// a token. A request's prompt tokens are CountTokens(len(body)) of the body
// as the fake received it.
func CountTokens(bytes int) int { return (bytes + 3) / 4 }

// Prompt caching works as OpenAI's automatic caching does: the longest
// prefix a key's request shares with that key's previous request to the same
// model is read from the cache, in blocks of CacheBlockTokens, once it is at
// least CacheMinTokens long. Small test bodies are therefore never cached.
const (
	CacheMinTokens   = 1024
	CacheBlockTokens = 128
	// maxPrefix bounds the bytes remembered per key and model.
	maxPrefix = 1 << 20
)

// ThinkingText is the fake model's reasoning, sent when a request asks for
// reasoning (chat and Responses `reasoning`, Messages `thinking`); its tokens
// are the answer's reasoning tokens.
const ThinkingText = "The user wants a short answer. I will keep it brief."

// Usage is what the fake charged for one answer: the figures its usage
// object reports (when the fault lets it report one). Each answered request
// records its Usage (Request.Usage). An answer is charged in full when it
// starts, as non-streaming requests and most providers' streams are: a
// client that leaves, or a stream that fails midway, does not get it back.
type Usage struct {
	PromptTokens int `json:"prompt_tokens"`
	// CachedTokens are the part of PromptTokens read from the cache.
	CachedTokens int `json:"cached_tokens"`
	// CompletionTokens include ReasoningTokens.
	CompletionTokens int `json:"completion_tokens"`
	ReasoningTokens  int `json:"reasoning_tokens"`
	WebSearches      int `json:"web_search_requests"`
	// PromptCost and CompletionCost are the token costs; Cost adds the
	// searches.
	PromptCost     float64 `json:"prompt_cost"`
	CompletionCost float64 `json:"completion_cost"`
	Cost           float64 `json:"cost"`
}

// picoUSD keeps money exact: sums of float dollars drift, sums of integers
// do not.
type picoUSD int64

func toPico(usd float64) picoUSD { return picoUSD(math.Round(usd * 1e12)) }

func (p picoUSD) usd() float64 { return float64(p) / 1e12 }

// Usage works out what an answer costs: prompt tokens of which cached are
// read from the cache, completion tokens (reasoning included) and searches.
func (p Pricing) Usage(prompt, cached, completion, reasoning, searches int) Usage {
	promptCost := toPico(float64(prompt-cached)*p.Prompt + float64(cached)*p.CachedPrompt)
	completionCost := toPico(float64(completion) * p.Completion)
	cost := promptCost + completionCost + picoUSD(searches)*toPico(p.WebSearch)
	return Usage{
		PromptTokens: prompt, CachedTokens: cached, CompletionTokens: completion, ReasoningTokens: reasoning, WebSearches: searches,
		PromptCost: promptCost.usd(), CompletionCost: completionCost.usd(), Cost: cost.usd(),
	}
}

func (u Usage) costDetails() map[string]any {
	return map[string]any{
		"upstream_inference_cost":             (toPico(u.PromptCost) + toPico(u.CompletionCost)).usd(),
		"upstream_inference_prompt_cost":      u.PromptCost,
		"upstream_inference_completions_cost": u.CompletionCost,
	}
}

// serverTools adds the search count under the documented name
// (server_tool_use) or, under Fault.ServerToolUseDetails, the spec's name,
// which is also what clients report seeing live.
func (u Usage) serverTools(m map[string]any, f Fault) {
	if u.WebSearches == 0 {
		return
	}
	if f.ServerToolUseDetails {
		m["server_tool_use_details"] = map[string]any{"web_search_requests": u.WebSearches,
			"tool_calls_requested": u.WebSearches, "tool_calls_executed": u.WebSearches}
		return
	}
	m["server_tool_use"] = map[string]any{"web_search_requests": u.WebSearches}
}

// chat is the usage object of chat completions.
func (u Usage) chat(f Fault) map[string]any {
	m := map[string]any{
		"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens, "total_tokens": u.PromptTokens + u.CompletionTokens,
		"cost": u.Cost, "is_byok": false,
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.CachedTokens, "cache_write_tokens": 0, "audio_tokens": 0, "video_tokens": 0},
		"cost_details":              u.costDetails(),
		"completion_tokens_details": map[string]any{"reasoning_tokens": u.ReasoningTokens, "image_tokens": 0, "audio_tokens": 0},
	}
	u.serverTools(m, f)
	return m
}

// responses is the usage object of the Responses API.
func (u Usage) responses(f Fault) map[string]any {
	m := map[string]any{
		"input_tokens": u.PromptTokens, "input_tokens_details": map[string]any{"cached_tokens": u.CachedTokens},
		"output_tokens": u.CompletionTokens, "output_tokens_details": map[string]any{"reasoning_tokens": u.ReasoningTokens},
		"total_tokens": u.PromptTokens + u.CompletionTokens,
		"cost":         u.Cost, "is_byok": false, "cost_details": u.costDetails(),
	}
	u.serverTools(m, f)
	return m
}

// anthropic is the usage object of Messages. As on Anthropic's API,
// input_tokens leaves out the cached tokens (cache_read_input_tokens), and
// a stream's figures are totals, not increments: message_start says one
// output token, message_delta the whole count. OpenRouter adds the cost
// once it is known: to the JSON answer and to message_delta.
func (u Usage) anthropic(stage string, f Fault) map[string]any {
	output := u.CompletionTokens
	if stage == "start" {
		output = 1
	}
	var details, tools any
	if u.ReasoningTokens > 0 {
		details = map[string]any{"thinking_tokens": u.ReasoningTokens}
	}
	if u.WebSearches > 0 {
		tools = map[string]any{"web_search_requests": u.WebSearches, "web_fetch_requests": 0}
	}
	m := map[string]any{
		"input_tokens": u.PromptTokens - u.CachedTokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": u.CachedTokens,
		"cache_creation": map[string]any{"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
		"output_tokens":  output, "output_tokens_details": details, "server_tool_use": tools,
		"service_tier": "standard", "inference_geo": nil,
	}
	if stage != "start" && !f.OmitUsage {
		m["cost"], m["is_byok"], m["cost_details"] = u.Cost, false, u.costDetails()
	}
	return m
}

// bill works out the usage of the answer the fake is about to send for c:
// output bytes of text (tool input included) and reasoning bytes of
// thinking, and searches. It charges the key and records the usage and the
// generation id with the request.
func (s *Server) bill(c *call, genID string, output, reasoning, searches int) Usage {
	prompt := max(CountTokens(len(c.body)), 1)
	cached := 0
	reasoningTokens := 0
	if reasoning > 0 {
		reasoningTokens = CountTokens(reasoning)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.key != "" {
		slot := c.key + "\x00" + c.req.Model
		shared := commonPrefix(s.prefixes[slot], c.body) / 4
		if shared >= CacheMinTokens {
			cached = min(shared/CacheBlockTokens*CacheBlockTokens, prompt)
		}
		s.prefixes[slot] = slices.Clone(c.body[:min(len(c.body), maxPrefix)])
	}
	u := s.opts.Pricing.Usage(prompt, cached, CountTokens(output)+reasoningTokens, reasoningTokens, searches)
	if c.key != "" {
		s.chargeLocked(c.key, toPico(u.Cost))
	}
	c.rec.Usage = &u
	c.rec.GenerationID = genID
	return u
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// newGenerationID returns an id shaped like OpenRouter's: gen-, the Unix
// time, and 20 letters and digits.
func newGenerationID() string {
	return fmt.Sprintf("gen-%d-%s", time.Now().Unix(), randomAlnum(20))
}

func randomAlnum(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// webSearchTools are the tool types OpenRouter runs as its web search: its
// own, and OpenAI's shorthands, which it converts.
var webSearchTools = []string{"openrouter:web_search", "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26"}

func isWebSearchTool(typ string) bool {
	// Anthropic's native web_search_20250305, web_search_20260209, … on Messages.
	return slices.Contains(webSearchTools, typ) || strings.HasPrefix(typ, "web_search_20")
}

// searches is how many web searches the fake model runs for req: one when
// it carries a search tool, the web plugin or an :online model.
func (c chatRequest) searches() int {
	if strings.HasSuffix(c.Model, ":online") ||
		slices.ContainsFunc(c.Tools, func(t toolSpec) bool { return isWebSearchTool(t.Type) }) ||
		slices.ContainsFunc(c.Plugins, func(p plugin) bool { return p.ID == "web" && (p.Enabled == nil || *p.Enabled) }) {
		return 1
	}
	return 0
}

// reasons reports whether req asks the model to reason.
func (c chatRequest) reasons() bool {
	if c.Thinking != nil {
		return c.Thinking.Type == "enabled" || c.Thinking.Type == "adaptive"
	}
	if c.ReasoningEffort != "" {
		return c.ReasoningEffort != "none"
	}
	if len(c.Reasoning) == 0 || string(c.Reasoning) == "null" {
		return false
	}
	var r struct {
		Effort  string `json:"effort"`
		Enabled *bool  `json:"enabled"`
		Exclude bool   `json:"exclude"`
	}
	_ = json.Unmarshal(c.Reasoning, &r)
	return r.Effort != "none" && (r.Enabled == nil || *r.Enabled)
}
