package usage

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

const (
	// MaxCost bounds a believable charge for one request, in USD. A larger
	// figure is a broken answer, and a single one would use up any budget.
	MaxCost = 1e6
	// maxTokens bounds a believable token count (2^50, far above any
	// context window yet exact in a float64).
	maxTokens = 1 << 50
	// maxName bounds model, provider and id strings kept for the ledger.
	maxName = 256
)

// count is a token count read as it was last seen.
type count struct {
	n  int64
	ok bool
}

func (c *count) set(v gjson.Result) {
	if f, ok := number(v); ok && f <= maxTokens {
		c.n, c.ok = int64(f), true
	}
}

// accum gathers what an answer says about itself, field by field, so that
// Anthropic's message_start and message_delta can each bring their part and
// a later figure replaces an earlier one.
type accum struct {
	found bool

	cost      float64
	costKnown bool

	prompt, completion, cached, reasoning, web, cacheRead, cacheWrite count

	model, provider, id string

	errorEvent, complete bool
}

// record turns what was gathered into the Record's figures.
func (a *accum) record(kind Kind, r *Record) {
	r.Found = a.found
	r.Cost, r.CostKnown = a.cost, a.costKnown
	r.PromptTokens = a.prompt.n
	r.CachedTokens = a.cached.n
	if !a.cached.ok {
		r.CachedTokens = a.cacheRead.n
	}
	if kind == Messages {
		// Anthropic's input_tokens leaves out the tokens read from and
		// written to the prompt cache; the ledger's prompt tokens, like
		// OpenAI's, count them all.
		r.PromptTokens += a.cacheRead.n + a.cacheWrite.n
	}
	r.CompletionTokens = a.completion.n
	r.ReasoningTokens = a.reasoning.n
	r.WebSearches = a.web.n
	r.ModelServed, r.Provider = a.model, a.provider
	r.ErrorEvent, r.Complete = a.errorEvent, a.complete
}

// usage merges one usage object in any of the three shapes: OpenAI chat
// (prompt_tokens …), OpenAI Responses (input_tokens, input_tokens_details …)
// and Anthropic (input_tokens, cache_read_input_tokens …). A figure that is
// not a non-negative number is ignored; a cost that is not one makes the
// cost unknown.
func (a *accum) usage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	a.found = true
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			a.prompt.set(v)
		case "completion_tokens", "output_tokens":
			a.completion.set(v)
		case "prompt_tokens_details", "input_tokens_details":
			a.cached.set(v.Get("cached_tokens"))
		case "completion_tokens_details", "output_tokens_details":
			r := v.Get("reasoning_tokens")
			if !r.Exists() { // Messages' spelling
				r = v.Get("thinking_tokens")
			}
			a.reasoning.set(r)
		case "cache_read_input_tokens":
			a.cacheRead.set(v)
		case "cache_creation_input_tokens":
			a.cacheWrite.set(v)
		case "server_tool_use", "server_tool_use_details":
			// The docs say server_tool_use, the spec
			// server_tool_use_details; read whichever comes.
			a.web.set(v.Get("web_search_requests"))
		case "cost":
			f, ok := number(v)
			a.cost, a.costKnown = f+0, ok && f <= MaxCost // +0 turns -0 into 0
			if !a.costKnown {
				a.cost = 0
			}
		}
		return true
	})
}

// top reads the members of an answer object that matter: a chat
// completion or chunk, a Responses response object, an Anthropic message
// or message_delta. s may point into a buffer that will be reused: every
// string kept is cloned. It reports whether s is one whole object: its
// members parse and its closing brace ends it. That costs nothing extra,
// unlike validating s, which would read it all a second time.
func (a *accum) top(s string, kind Kind) (whole bool) {
	body := strings.TrimLeft(s, " \t\r\n")
	if body == "" || body[0] != '{' {
		return false
	}
	end := len(s) - len(body) + 1 // past the opening brace
	gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
		end = len(s) - len(body) + v.Index + len(v.Raw)
		switch k.Str {
		case "usage":
			a.usage(v)
		case "model":
			keep(&a.model, v)
		case "provider":
			keep(&a.provider, v)
		case "id":
			keep(&a.id, v)
		case "error":
			// Responses carry "error": null when all went well.
			if v.IsObject() {
				a.errorEvent = true
			}
		case "choices":
			if strings.Contains(v.Raw, `"error"`) {
				v.ForEach(func(_, c gjson.Result) bool {
					if c.Get("finish_reason").Str == "error" {
						a.errorEvent = true
					}
					return !a.errorEvent
				})
			}
		case "status":
			if kind == Responses && v.Str == "failed" {
				a.errorEvent = true
			}
		case "type":
			if v.Str == "error" {
				a.errorEvent = true
			}
		}
		return true
	})
	// What follows the last member parsed must be the closing brace: a
	// member cut short does not parse and leaves more.
	rest := strings.TrimLeft(s[end:], " \t\r\n")
	return len(rest) > 0 && rest[0] == '}' && strings.TrimLeft(rest[1:], " \t\r\n") == ""
}

// keep stores a string value, cloned off the buffer it points into. An
// empty or implausibly long one is not a name and is left out.
func keep(dst *string, v gjson.Result) {
	if v.Type == gjson.String && v.Str != "" && len(v.Str) <= maxName && v.Str != *dst {
		*dst = strings.Clone(v.Str)
	}
}

// number reads a non-negative finite JSON number, or a string holding one
// (some APIs quote decimals); NaN, infinities, negatives and anything else
// are not numbers here.
func number(v gjson.Result) (float64, bool) {
	var f float64
	switch v.Type {
	case gjson.Number:
		f = v.Num
	case gjson.String:
		if !jsonNumber(v.Str) {
			return 0, false
		}
		var err error
		if f, err = strconv.ParseFloat(v.Str, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	// NaN fails both comparisons; +Inf (from 1e999) fails the second.
	if !(f >= 0 && f <= maxTokens) {
		return 0, false
	}
	return f, true
}

// jsonNumber reports whether s is spelled like a JSON number, so that a
// quoted "NaN", "Inf" or "0x10" is not read as one.
func jsonNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', c == '.', c == 'e', c == 'E', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

// str views b as a string without copying, for gjson; nothing that holds
// it may outlive b's contents.
func str(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
