package usage

import "strings"

// Kind is the API an answer comes from; it decides where its usage is.
type Kind uint8

const (
	// Other is any endpoint without a known answer shape. A top-level
	// "usage" object in the OpenAI shape is still read, which covers
	// /embeddings.
	Other Kind = iota
	// Chat is /chat/completions and the legacy /completions.
	Chat
	// Responses is the OpenAI Responses API, /responses.
	Responses
	// Messages is the Anthropic Messages API, /messages.
	Messages
)

// String names the kind as the ledger stores it.
func (k Kind) String() string {
	switch k {
	case Chat:
		return "chat"
	case Responses:
		return "responses"
	case Messages:
		return "messages"
	default:
		return "other"
	}
}

// EndpointKind maps a request path (with or without /api/v1 in front, with
// or without a query) to its Kind. /messages/count_tokens and every other
// path are Other.
func EndpointKind(path string) Kind {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimRight(path, "/")
	switch {
	case strings.HasSuffix(path, "/completions"):
		// /chat/completions and the legacy /completions share a shape.
		return Chat
	case strings.HasSuffix(path, "/responses"):
		return Responses
	case strings.HasSuffix(path, "/messages"):
		return Messages
	default:
		return Other
	}
}

// End says how the body ended.
type End uint8

const (
	// EndNone: the body has not ended yet.
	EndNone End = iota
	// EndEOF: the upstream body ended normally.
	EndEOF
	// EndError: reading the upstream body failed, so the answer was cut.
	EndError
	// EndClosed: the body was closed before its end, usually because the
	// client went away.
	EndClosed
)

// String names the end for logs.
func (e End) String() string {
	switch e {
	case EndEOF:
		return "eof"
	case EndError:
		return "error"
	case EndClosed:
		return "closed"
	default:
		return "none"
	}
}

// Record is what one answer said about its own cost. Counts are 0 when the
// answer did not carry them; Found and CostKnown tell "zero" from "unknown".
type Record struct {
	// Found: a usage object was seen at all.
	Found bool
	// CostKnown: Cost holds OpenRouter's charge. An absent cost, or one that
	// is not a finite number between 0 and MaxCost, is unknown.
	CostKnown bool
	// Cost in USD, as OpenRouter charged it.
	Cost float64

	// PromptTokens counts every input token, cached ones included (for
	// Messages: input_tokens plus the cache reads and writes, which
	// Anthropic counts apart).
	PromptTokens int64
	// CompletionTokens counts output tokens, reasoning included.
	CompletionTokens int64
	// CachedTokens are the input tokens read from the prompt cache.
	CachedTokens int64
	// ReasoningTokens are the output tokens spent on reasoning.
	ReasoningTokens int64
	// WebSearches is the number of server-side web searches billed.
	WebSearches int64

	// ModelServed is the model that answered, which may differ from the one
	// asked for (fallbacks, aliases).
	ModelServed string
	// Provider is the upstream provider that served the model, when the
	// answer names it.
	Provider string
	// GenerationID is OpenRouter's id for the request: the X-Generation-Id
	// header, else the answer's own id.
	GenerationID string

	// ErrorEvent: the answer carried an error: a mid-stream error event, a
	// choice that finished with "error", a failed response, or a JSON error
	// body.
	ErrorEvent bool
	// Complete: the answer reached its end: the stream's end marker
	// ([DONE], response.completed and the other terminal Responses events,
	// message_stop), or for a JSON answer a body whose top-level object
	// closes at EOF.
	Complete bool

	// Streamed: the answer was server-sent events.
	Streamed bool
	// Gzip: the answer was gzip-encoded and read through a side decoder.
	Gzip bool
	// LineSkipped: a data line longer than MaxLine was not looked at, so
	// usage in it, if any, was missed.
	LineSkipped bool
	// BodyTooLarge: a JSON answer was longer than MaxBody and was not parsed.
	BodyTooLarge bool
	// DecodeFailed: the answer's encoding could not be read (an encoding
	// other than gzip, a corrupt gzip stream, a side decoder that fell too
	// far behind); DecodeError says why. What was decoded before still
	// counts.
	DecodeFailed bool
	DecodeError  string

	// End says how the body ended; Bytes is how many bytes of it (as sent,
	// compressed or not) went through.
	End   End
	Bytes int64
}

// ClientFamily sorts a request's User-Agent into the families the ledger
// groups by: opencode, claude-code, openai-sdk, curl or other.
func ClientFamily(userAgent string) string {
	switch {
	// OpenCode sends "opencode/<version>" and the AI SDK it is built on adds
	// "ai-sdk/…" parts; check before openai-sdk, whose marker the AI SDK's
	// provider names can contain.
	case containsFold(userAgent, "opencode"), containsFold(userAgent, "ai-sdk/"):
		return "opencode"
	case hasPrefixFold(userAgent, "claude-cli/"), containsFold(userAgent, "claude-code"):
		return "claude-code"
	// "OpenAI/JS 4.x", "OpenAI/Python 1.x", "AsyncOpenAI/Python 1.x",
	// "OpenAI/Go …".
	case containsFold(userAgent, "openai/"):
		return "openai-sdk"
	case hasPrefixFold(userAgent, "curl/"):
		return "curl"
	default:
		return "other"
	}
}

// containsFold is strings.Contains ignoring ASCII case, for a lower-case
// ASCII sub; it does not allocate, unlike lowering the whole User-Agent.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case, for a lower-case
// ASCII prefix.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
