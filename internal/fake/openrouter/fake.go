// Package openrouter is a faithful stand-in for OpenRouter's API, for tests
// and the demo: chat completions (JSON and SSE, with OpenRouter's keep-alive
// comments), the Responses API, Anthropic Messages (JSON and SSE, tool use,
// count_tokens), usage with cost on every answer, /key with per-key limits
// and the spending the fake charged, /models, OAuth PKCE (/auth and
// /auth/keys), and OpenRouter's error shapes, the money errors among them.
// Keys are minted, limited, charged, listed and revoked through Go methods
// or, when the fake runs as a process, through an admin API under /_fake/.
// Nothing in the product depends on this package.
package openrouter

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	// Keys are valid from the start.
	Keys []string
	// ChunkDelay is the pause between SSE events; zero sends them at once.
	ChunkDelay time.Duration
	// Reply is the assistant's answer, streamed word by word; empty uses a default.
	Reply string
	// MaxRecorded bounds the request log; zero means 1000.
	MaxRecorded int
	// Models replaces the model catalogue served at /models.
	Models []Model
	// Pricing is what the fake charges; the zero value means DefaultPricing.
	Pricing Pricing
	// Now is the clock of the spending periods of /key; nil means time.Now.
	Now func() time.Time
}

// DefaultReply is what the fake assistant says unless Options.Reply is set.
const DefaultReply = "Hello from the fake OpenRouter."

// Model is one entry of GET /models.
type Model struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	ContextLength       int      `json:"context_length"`
	MaxCompletionTokens int      `json:"max_completion_tokens"`
	SupportedParameters []string `json:"supported_parameters"`
}

// DefaultModels is the catalogue served unless Options.Models is set. The last
// one takes no tools, as some small open models on OpenRouter do.
var DefaultModels = []Model{
	{ID: "openai/gpt-4o-mini", Name: "OpenAI: GPT-4o-mini", ContextLength: 128000, MaxCompletionTokens: 16384, SupportedParameters: []string{"max_tokens", "temperature", "tools", "tool_choice", "response_format"}},
	{ID: "anthropic/claude-sonnet-4.5", Name: "Anthropic: Claude Sonnet 4.5", ContextLength: 1000000, MaxCompletionTokens: 64000, SupportedParameters: []string{"max_tokens", "temperature", "tools", "tool_choice", "reasoning"}},
	{ID: "google/gemini-2.5-flash", Name: "Google: Gemini 2.5 Flash", ContextLength: 1048576, MaxCompletionTokens: 65535, SupportedParameters: []string{"max_tokens", "temperature", "tools", "tool_choice"}},
	{ID: "fake/no-tools-7b", Name: "Fake: No Tools 7B", ContextLength: 8192, MaxCompletionTokens: 2048, SupportedParameters: []string{"max_tokens", "temperature"}},
}

// KeyInfo describes a key the fake knows.
type KeyInfo struct {
	Key       string     `json:"key"`
	Hash      string     `json:"hash"`
	Label     string     `json:"label"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	// Limit, LimitReset and IsFreeTier are set by SetKeyLimit.
	Limit      *float64 `json:"limit,omitempty"`
	LimitReset string   `json:"limit_reset,omitempty"`
	IsFreeTier bool     `json:"is_free_tier,omitempty"`
	// Usage is what the fake charged the key in all, in USD.
	Usage float64 `json:"usage"`
}

// Fault makes the fake misbehave, for fault tests. The zero value is healthy.
type Fault struct {
	// HangBeforeHeaders keeps chat requests waiting, without response headers,
	// until the client gives up.
	HangBeforeHeaders bool `json:"hang_before_headers,omitempty"`
	// HeaderDelay delays chat response headers (a slow non-streaming completion).
	HeaderDelay time.Duration `json:"header_delay,omitempty"`
	// CloseMidStream drops the connection after this many SSE events (0 = never).
	CloseMidStream int `json:"close_mid_stream,omitempty"`
	// RejectToolsFor lists models that answer a request carrying tools with
	// 404 "No endpoints found that support tool use".
	RejectToolsFor []string `json:"reject_tools_for,omitempty"`
	// Status, when set, answers every chat, Responses and Messages request
	// with this status and OpenRouter's error body (e.g. 429, 402, 500; on
	// Messages in Anthropic's envelope). A 429 comes as OpenRouter's own
	// rate limiter sends it: Retry-After, X-RateLimit-Limit,
	// X-RateLimit-Remaining and X-RateLimit-Reset (Unix milliseconds), the same
	// figures in error.metadata.headers. A 502 says the provider failed; a 503
	// carries error.availability and, with RetryAfter, Retry-After. A 402 is
	// the account out of credits (error.metadata.limit_source
	// "openrouter_credits"); with RetryAfter it is the in-flight spending
	// budget ("openrouter_in_flight_budget", with Retry-After).
	Status int `json:"status,omitempty"`
	// StatusTimes limits Status to the next this many chat requests (a burst
	// of 429s); then the fault clears itself. Zero: every request.
	StatusTimes int `json:"status_times,omitempty"`
	// RetryAfter is the Retry-After of a Status 429 or 503, in seconds; a 429
	// without it says 1.
	RetryAfter int `json:"retry_after,omitempty"`
	// ErrorMidStream ends chat streams after this many content chunks with
	// OpenRouter's mid-stream error event (status 200 already sent): a chunk
	// with a top-level error and finish_reason "error", then the body ends,
	// without [DONE].
	ErrorMidStream int `json:"error_mid_stream,omitempty"`
	// ErrorMidStreamCode is that event's error.code; zero means 502.
	ErrorMidStreamCode int `json:"error_mid_stream_code,omitempty"`
	// KeepAlives is how many ": OPENROUTER PROCESSING" comments open a
	// stream; zero means one.
	KeepAlives int `json:"keep_alives,omitempty"`
	// KeepAlivesBetween puts this many comments between every two events;
	// zero means one comment halfway through the stream.
	KeepAlivesBetween int `json:"keep_alives_between,omitempty"`
	// KeepAliveInterval is the pause before each comment.
	KeepAliveInterval time.Duration `json:"keep_alive_interval,omitempty"`
	// Stepped holds every piece of a stream (comment, event, [DONE]) until
	// Step lets it go, so a test can check each one arrived before the next
	// was sent. The response headers go out at once.
	Stepped bool `json:"stepped,omitempty"`
	// CutAfterBytes closes the connection of a chat answer after this many
	// body bytes: a JSON answer has promised its whole Content-Length, a
	// stream never sends its terminating chunk.
	CutAfterBytes int `json:"cut_after_bytes,omitempty"`
	// IgnoreBody answers chat requests without reading the request body
	// (golang/go#40747 shape: the response starts before the body is read).
	IgnoreBody bool `json:"ignore_body,omitempty"`
	// GzipErrors gzips the error answers of chat requests that accept gzip,
	// as a CDN in front of OpenRouter may.
	GzipErrors bool `json:"gzip_errors,omitempty"`
	// OmitUsage leaves usage out of chat and Responses answers, and cost out
	// of Messages usage, as some providers' answers come: the request is
	// charged all the same.
	OmitUsage bool `json:"omit_usage,omitempty"`
	// ServerToolUseDetails reports web searches as
	// usage.server_tool_use_details (the spec's spelling, which clients
	// report seeing live) instead of the documented usage.server_tool_use.
	ServerToolUseDetails bool `json:"server_tool_use_details,omitempty"`
	// KeyLimitForbidden answers a key whose limit is used up with the 403
	// "Key limit exceeded (… limit)" clients have seen, instead of the
	// documented 402 with error.metadata.limit_source "openrouter_key_limit".
	KeyLimitForbidden bool `json:"key_limit_forbidden,omitempty"`
	// ToolUse makes the Messages model call the request's first tool
	// whenever the last message is not a tool result (ToolUseMarker does it
	// for one request).
	ToolUse bool `json:"tool_use,omitempty"`
}

// Request is one request the fake received, as it arrived.
type Request struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Header  http.Header `json:"header"`
	Body    []byte      `json:"body"`
	Status  int         `json:"status"`
	Started time.Time   `json:"started"`
	// Canceled is when the handler saw the client go away; zero if it did not.
	Canceled time.Time `json:"canceled"`
	// Usage is what the fake charged for its answer; nil when it charged
	// nothing (an error).
	Usage *Usage `json:"usage,omitempty"`
	// GenerationID is the answer's X-Generation-Id.
	GenerationID string `json:"generation_id,omitempty"`
}

// Server is the fake. Use Handler with httptest.NewServer or http.Server.
type Server struct {
	opts Options

	mu       sync.Mutex
	keys     map[string]*KeyInfo
	codes    map[string]pkceCode
	fault    Fault
	requests []*Request
	counts   map[string]int
	// steps hands each Step to a Stepped stream, which answers with what it sent.
	steps chan chan<- string
	// spent is what each key was charged.
	spent map[string]*spending
	// prefixes holds each key's last body per model, for prompt caching.
	prefixes map[string][]byte
}

type pkceCode struct {
	challenge, method string
	expires           time.Time
}

// New returns a fake with opts.Keys valid.
func New(opts Options) *Server {
	if opts.MaxRecorded == 0 {
		opts.MaxRecorded = 1000
	}
	if opts.Reply == "" {
		opts.Reply = DefaultReply
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	if opts.Pricing == (Pricing{}) {
		opts.Pricing = DefaultPricing
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, keys: map[string]*KeyInfo{}, codes: map[string]pkceCode{}, counts: map[string]int{}, steps: make(chan chan<- string),
		spent: map[string]*spending{}, prefixes: map[string][]byte{}}
	for _, k := range opts.Keys {
		s.AddKey(k, "", nil)
	}
	return s
}

func (s *Server) now() time.Time { return s.opts.Now() }

// AddKey makes key valid. A key added again keeps its limit and what it
// spent.
func (s *Server) AddKey(key, label string, expiresAt *time.Time) KeyInfo {
	sum := sha256.Sum256([]byte(key))
	info := &KeyInfo{Key: key, Hash: hex.EncodeToString(sum[:]), Label: label, ExpiresAt: expiresAt}
	if label == "" {
		info.Label = maskKey(key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.keys[key]; old != nil {
		info.Limit, info.LimitReset, info.IsFreeTier, info.Usage = old.Limit, old.LimitReset, old.IsFreeTier, old.Usage
	}
	s.keys[key] = info
	return *info
}

// IssueKey mints a new valid key, as OpenRouter's key API or OAuth does.
func (s *Server) IssueKey(label string, expiresAt *time.Time) KeyInfo {
	return s.AddKey(NewKey(), label, expiresAt)
}

// NewKey returns a random key in OpenRouter's format.
func NewKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "sk-or-v1-" + hex.EncodeToString(b[:])
}

// Revoke makes a key (named by key or hash) invalid; OpenRouter answers 401 to it from now on.
func (s *Server) Revoke(keyOrHash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, info := range s.keys {
		if info.Key == keyOrHash || info.Hash == keyOrHash {
			info.Revoked = true
			return true
		}
	}
	return false
}

// Keys lists every key the fake knows, revoked ones included.
func (s *Server) Keys() []KeyInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]KeyInfo, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, *k)
	}
	return out
}

// SetFault replaces the current fault.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *Server) currentFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// Requests returns copies of the recorded requests, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// Count is how many requests reached a path (e.g. "/api/v1/chat/completions"),
// including those no longer in the bounded request log.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

func (s *Server) record(r *http.Request, body []byte) *Request {
	rec := &Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, Started: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.URL.Path]++
	if len(s.requests) >= s.opts.MaxRecorded {
		s.requests = append(s.requests[:0], s.requests[1:]...)
	}
	s.requests = append(s.requests, rec)
	return rec
}

func (s *Server) setStatus(rec *Request, status int) {
	s.mu.Lock()
	rec.Status = status
	s.mu.Unlock()
}

func (s *Server) markCanceled(rec *Request) {
	s.mu.Lock()
	rec.Canceled = time.Now()
	s.mu.Unlock()
}

// authenticate returns the key's info, or the 401 message OpenRouter gives.
// With xAPIKey (Messages) a non-empty x-api-key header is read first, as
// Anthropic's SDKs send the key there; it wins over Authorization.
func (s *Server) authenticate(r *http.Request, xAPIKey bool) (*KeyInfo, string) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if x := r.Header.Get("X-Api-Key"); xAPIKey && x != "" {
		key, ok = x, true
	} else if h == "" {
		return nil, "Missing Authentication header"
	}
	if !ok {
		return nil, "No auth credentials found"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info, found := s.keys[strings.TrimSpace(key)]
	if !found || info.Revoked || (info.ExpiresAt != nil && time.Now().After(*info.ExpiresAt)) {
		return nil, "User not found."
	}
	c := *info
	return &c, ""
}

func maskKey(k string) string {
	if len(k) < 16 {
		return "sk-or-v1-..."
	}
	return k[:11] + "..." + k[len(k)-3:]
}
