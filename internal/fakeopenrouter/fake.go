// Package fakeopenrouter is a faithful stand-in for OpenRouter's API, for tests
// and the demo: chat completions (JSON and SSE, with OpenRouter's keep-alive
// comments), the Responses API, /key, /models, OAuth PKCE (/auth and
// /auth/keys), and OpenRouter's error shapes. Keys are minted, listed and
// revoked through Go methods or, when the fake runs as a process, through an
// admin API under /_fake/. Nothing in the product depends on this package.
package fakeopenrouter

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
	// Status, when set, answers every chat request with this status and
	// OpenRouter's error body (e.g. 429, 402, 500). A 429 comes as
	// OpenRouter's own rate limiter sends it: Retry-After, X-RateLimit-Limit,
	// X-RateLimit-Remaining and X-RateLimit-Reset (Unix milliseconds), the same
	// figures in error.metadata.headers. A 502 says the provider failed; a 503
	// carries error.availability and, with RetryAfter, Retry-After.
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
	s := &Server{opts: opts, keys: map[string]*KeyInfo{}, codes: map[string]pkceCode{}, counts: map[string]int{}, steps: make(chan chan<- string)}
	for _, k := range opts.Keys {
		s.AddKey(k, "", nil)
	}
	return s
}

// AddKey makes key valid.
func (s *Server) AddKey(key, label string, expiresAt *time.Time) KeyInfo {
	sum := sha256.Sum256([]byte(key))
	info := &KeyInfo{Key: key, Hash: hex.EncodeToString(sum[:]), Label: label, ExpiresAt: expiresAt}
	if label == "" {
		info.Label = maskKey(key)
	}
	s.mu.Lock()
	s.keys[key] = info
	s.mu.Unlock()
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
func (s *Server) authenticate(r *http.Request) (*KeyInfo, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, "Missing Authentication header"
	}
	key, ok := strings.CutPrefix(h, "Bearer ")
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
