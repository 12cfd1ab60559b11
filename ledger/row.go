package ledger

import "time"

// Row is one request that reached OpenRouter. It holds what was asked, what
// was served and what it cost; never a prompt, an answer or a secret. Add
// copies it, so a caller may reuse its Row.
type Row struct {
	// Time is when the request started; the zero time means "when written".
	Time time.Time
	// Endpoint is the API the request went to, as usage.Kind names it:
	// chat (chat and legacy completions), responses, messages or other
	// (embeddings, /models, …). `orproxy usage --by endpoint` groups by it.
	Endpoint string
	// Model is the model the client asked for; ModelServed the one
	// OpenRouter answered with (empty when unknown, e.g. on an error).
	Model       string
	ModelServed string
	// Provider is the upstream provider OpenRouter routed to, if it said.
	Provider string
	// GenerationID is OpenRouter's id of the answer (gen-…), the key to
	// its /generation endpoint; empty when there was none.
	GenerationID string
	// Status is the HTTP status the client got.
	Status int
	// Streamed is true for an SSE answer.
	Streamed bool
	// Retried is true when OpenRouter rejected the key (401) and the
	// request went again with a rotated one.
	Retried bool
	// ResentWithoutTool is true when the request was sent again without the
	// web search tool orproxy had added, because upstream refused it.
	ResentWithoutTool bool
	// ToolInjected is true when orproxy added the web search tool.
	ToolInjected bool

	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	ReasoningTokens  int64

	// CostUSD is what OpenRouter charged, valid only when CostKnown: an
	// unknown cost is stored as NULL, never as a free request.
	CostUSD   float64
	CostKnown bool

	// WebSearches is how many web searches OpenRouter ran (and billed).
	WebSearches int64
	// Duration is from the request's start until its answer ended.
	Duration time.Duration
	// TTFB is from the request's start until the first byte of the answer;
	// 0 when none came.
	TTFB time.Duration
	// Client is the client's family from its User-Agent, as
	// usage.ClientFamily names it: opencode, claude-code, openai-sdk, curl or
	// other.
	Client string
	// Error is true when the answer failed: a stream that ended with an
	// error event or was cut. A Status of 400 or more counts as an error
	// whatever Error says.
	Error bool
}

// failed is what the errors column records.
func (r *Row) failed() bool { return r.Error || r.Status >= 400 }
