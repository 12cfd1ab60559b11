package ledger

import (
	"strings"
	"time"
)

// Endpoints, the OpenRouter API a request was for. The ledger groups by
// these names, so they are part of what `orproxy usage --by endpoint` prints.
const (
	EndpointChat        = "chat/completions"
	EndpointCompletions = "completions"
	EndpointResponses   = "responses"
	EndpointMessages    = "messages"
	EndpointEmbeddings  = "embeddings"
	EndpointOther       = "other"
)

// Client families, told apart by the User-Agent.
const (
	ClientOpenCode   = "opencode"
	ClientClaudeCode = "claude-code"
	ClientOpenAISDK  = "openai-sdk"
	ClientCurl       = "curl"
	ClientOther      = "other"
)

// Row is one request that reached OpenRouter. It holds what was asked, what
// was served and what it cost; never a prompt, an answer or a secret. Add
// copies it, so a caller may reuse its Row.
type Row struct {
	// Time is when the request started; the zero time means "when written".
	Time time.Time
	// Endpoint is one of the Endpoint constants.
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
	// Client is one of the Client constants, see ClientFromUserAgent.
	Client string
	// Error is true when the answer failed: a stream that ended with an
	// error event or was cut. A Status of 400 or more counts as an error
	// whatever Error says.
	Error bool
}

// failed is what the errors column records.
func (r *Row) failed() bool { return r.Error || r.Status >= 400 }

// ClientFromUserAgent tells the client family from a User-Agent header. It
// does not allocate: it runs on every request.
func ClientFromUserAgent(ua string) string {
	switch {
	case containsFold(ua, "opencode"):
		return ClientOpenCode
	// Claude Code calls itself claude-cli; claude-code is its package name.
	case containsFold(ua, "claude-cli"), containsFold(ua, "claude-code"):
		return ClientClaudeCode
	// The official SDKs send "OpenAI/Python 1.x", "OpenAI/JS 4.x", "OpenAI/Go …".
	case hasPrefixFold(ua, "openai/"), containsFold(ua, "openai-python"), containsFold(ua, "openai-node"):
		return ClientOpenAISDK
	case hasPrefixFold(ua, "curl/"):
		return ClientCurl
	}
	return ClientOther
}

// EndpointFromPath names the endpoint of an API path, with or without the
// /api/v1 prefix: "/api/v1/chat/completions" and "/chat/completions" are
// both EndpointChat.
func EndpointFromPath(path string) string {
	path = strings.TrimPrefix(path, "/api/v1")
	path = strings.Trim(path, "/")
	switch path {
	case EndpointChat, EndpointCompletions, EndpointResponses, EndpointMessages, EndpointEmbeddings:
		return path
	}
	return EndpointOther
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// containsFold is strings.Contains ignoring ASCII case, without the
// allocation of lowering s. sub must be lower case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
