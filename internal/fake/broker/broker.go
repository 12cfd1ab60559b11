// Package broker stands in for the company's credential broker, for tests
// and the demo. It implements the broker contract of docs/ARCHITECTURE.md: an
// auto-approving start page that redirects to return_to with a code, the code
// exchange, and key rotation. Keys are minted at and revoked from a fake
// OpenRouter, in process or in another process, so a rotated key really stops
// working. Faults make it misbehave the ways a real broker can. Nothing in the
// product depends on this package.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/netaddr"
)

// KeyIssuer mints and revokes OpenRouter keys, as the real broker does with
// OpenRouter's management API.
type KeyIssuer interface {
	IssueKey(ctx context.Context, label string, expiresAt *time.Time) (openrouter.KeyInfo, error)
	Revoke(ctx context.Context, key string) error
}

// A fake OpenRouter in another process is driven through its admin client,
// which already has the right methods.
var _ KeyIssuer = (*openrouter.AdminClient)(nil)

// ServerIssuer adapts a fake OpenRouter in this process.
func ServerIssuer(s *openrouter.Server) KeyIssuer { return serverIssuer{s} }

type serverIssuer struct{ s *openrouter.Server }

func (i serverIssuer) IssueKey(_ context.Context, label string, expiresAt *time.Time) (openrouter.KeyInfo, error) {
	return i.s.IssueKey(label, expiresAt), nil
}

func (i serverIssuer) Revoke(_ context.Context, key string) error {
	if !i.s.Revoke(key) {
		return errors.New("fake OpenRouter does not know this key")
	}
	return nil
}

// Options configure a Server.
type Options struct {
	// Issuer mints and revokes the keys; required.
	Issuer KeyIssuer
	// NaiveAppend makes the start page glue "?code=…" onto return_to without
	// parsing it, as some brokers do, instead of adding code to its query.
	NaiveAppend bool
	// ExactReturnTo makes the start page accept only a return_to that is
	// exactly http://127.0.0.1:<port>/callback (or localhost), as a broker
	// that matches it against a registered redirect address does: one with a
	// query, such as orproxy's ?state=…, gets ReturnToRefusal.
	ExactReturnTo bool
	// StartHeaders are "Name: value" lines the start page requires (enterprise
	// identity headers). A start request without them gets
	// MissingHeadersStatus.
	StartHeaders []string
	// MissingHeadersStatus is 403 (a JSON refusal, the default) or 200 (an
	// HTML sign-in page, as a broker behind an identity proxy would show).
	MissingHeadersStatus int
	// OmitRotatedRefreshToken leaves broker_refresh_token out of rotate
	// answers: the client must keep the token it has.
	OmitRotatedRefreshToken bool
	// RotateRefreshTokens issues a new refresh token on each rotation and
	// invalidates the old one.
	RotateRefreshTokens bool
	// KeyTTL is the lifetime of issued keys, reported as
	// openrouter_key_expires_at; zero means 30 days, negative means keys do
	// not expire.
	KeyTTL time.Duration
	// KeyLabel prefixes the labels of issued keys; empty means "orproxy-fake-broker".
	KeyLabel string
}

// DefaultKeyTTL is the lifetime of issued keys unless Options.KeyTTL says otherwise.
const DefaultKeyTTL = 30 * 24 * time.Hour

// Fault makes the broker misbehave. The zero value is healthy. Unless
// Endpoint says otherwise a fault hits the exchange and rotate calls, not the
// start page.
type Fault struct {
	// Endpoint limits the fault to "start", "exchange" or "rotate"; empty
	// means exchange and rotate.
	Endpoint string `json:"endpoint,omitempty"`
	// Status is the status of the Detail and ErrorMessage answers; zero means
	// 500. Set alone, it answers {"detail": "<status text>"} with it.
	Status int `json:"status,omitempty"`
	// Detail answers {"detail": Detail}; any JSON value, as FastAPI sends
	// strings for HTTPException and lists for validation errors.
	Detail any `json:"detail,omitempty"`
	// ErrorMessage answers {"error": {"message": ErrorMessage}}.
	ErrorMessage string `json:"error_message,omitempty"`
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool `json:"garbage,omitempty"`
	// Hang sends nothing until the client gives up.
	Hang bool `json:"hang,omitempty"`
	// Delay answers normally after this long.
	Delay time.Duration `json:"delay,omitempty"`
	// RejectRefresh answers every rotation with 401, as for a revoked
	// refresh token.
	RejectRefresh bool `json:"reject_refresh,omitempty"`
	// SameKey answers every rotation with the key it was asked to replace,
	// neither revoking it nor issuing another: a key OpenRouter rejects
	// comes straight back.
	SameKey bool `json:"same_key,omitempty"`
	// DeadKeys issues keys and revokes them at once at the fake OpenRouter,
	// so every key the broker answers with (a rotation's, or a login's) is
	// rejected there.
	DeadKeys bool `json:"dead_keys,omitempty"`
}

func (f Fault) hits(endpoint string) bool {
	if f.Endpoint == "" {
		return endpoint == endpointExchange || endpoint == endpointRotate
	}
	return f.Endpoint == endpoint
}

const (
	endpointStart    = "start"
	endpointExchange = "exchange"
	endpointRotate   = "rotate"
)

// Request is one request the broker received.
type Request struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Header http.Header `json:"header"`
}

// Stats count the broker's work.
type Stats struct {
	StartCalls    int `json:"start_calls"`
	ExchangeCalls int `json:"exchange_calls"`
	RotateCalls   int `json:"rotate_calls"`
	// Requests are the most recent requests, oldest first.
	Requests []Request `json:"requests"`
	// CurrentKey is the key issued last, nil before the first.
	CurrentKey *openrouter.KeyInfo `json:"current_key,omitempty"`
}

// maxRecorded bounds the request log.
const maxRecorded = 1000

// codeLifetime is how long a start code can be exchanged, as OpenRouter's.
const codeLifetime = 10 * time.Minute

// Server is the fake broker. Serve Handler with httptest or http.Server.
type Server struct {
	opts         Options
	startHeaders [][2]string

	// rotateMu serialises issuing and revoking, so two concurrent rotations
	// with one refresh token behave like a broker with a database
	// transaction: the second sees the first's result.
	rotateMu sync.Mutex

	mu       sync.Mutex
	codes    map[string]time.Time
	sessions map[string]*session // by refresh token
	current  *openrouter.KeyInfo
	fault    Fault
	stats    Stats
	labelSeq int
}

type session struct {
	refresh string
	key     openrouter.KeyInfo
}

// New returns a fake broker. It fails on an Options.StartHeaders line that
// is not "Name: value".
func New(opts Options) (*Server, error) {
	if opts.Issuer == nil {
		return nil, errors.New("fakebroker: Options.Issuer is required")
	}
	if opts.MissingHeadersStatus == 0 {
		opts.MissingHeadersStatus = http.StatusForbidden
	}
	if opts.MissingHeadersStatus != http.StatusOK && opts.MissingHeadersStatus != http.StatusForbidden {
		return nil, fmt.Errorf("fakebroker: MissingHeadersStatus %d is not 200 or 403", opts.MissingHeadersStatus)
	}
	if opts.KeyTTL == 0 {
		opts.KeyTTL = DefaultKeyTTL
	}
	if opts.KeyLabel == "" {
		opts.KeyLabel = "orproxy-fake-broker"
	}
	s := &Server{opts: opts, codes: map[string]time.Time{}, sessions: map[string]*session{}}
	for _, line := range opts.StartHeaders {
		name, value, err := netaddr.ParseHeaderLine(line)
		if err != nil {
			return nil, fmt.Errorf("fakebroker: start header: %w", err)
		}
		s.startHeaders = append(s.startHeaders, [2]string{name, value})
	}
	return s, nil
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

// Stats returns a copy of the counters and the request log.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Requests = make([]Request, len(s.stats.Requests))
	for i, r := range s.stats.Requests {
		r.Header = r.Header.Clone()
		st.Requests[i] = r
	}
	if s.current != nil {
		k := *s.current
		st.CurrentKey = &k
	}
	return st
}

// Reset forgets counters, requests and the fault; codes, sessions and keys stay.
func (s *Server) Reset() {
	s.mu.Lock()
	s.stats = Stats{}
	s.fault = Fault{}
	s.mu.Unlock()
}

// RevokeCurrentKey revokes the key issued last at the fake OpenRouter, behind
// the broker's back, as when a key leaks and is revoked on OpenRouter's site.
// The broker still considers it current, so a rotation replaces it.
func (s *Server) RevokeCurrentKey(ctx context.Context) (openrouter.KeyInfo, error) {
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if cur == nil {
		return openrouter.KeyInfo{}, errors.New("no key issued yet")
	}
	if err := s.opts.Issuer.Revoke(ctx, cur.Key); err != nil {
		return openrouter.KeyInfo{}, fmt.Errorf("revoke current key: %w", err)
	}
	info := *cur
	info.Revoked = true
	return info, nil
}

func (s *Server) record(r *http.Request, endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch endpoint {
	case endpointStart:
		s.stats.StartCalls++
	case endpointExchange:
		s.stats.ExchangeCalls++
	case endpointRotate:
		s.stats.RotateCalls++
	}
	if len(s.stats.Requests) >= maxRecorded {
		s.stats.Requests = append(s.stats.Requests[:0], s.stats.Requests[1:]...)
	}
	s.stats.Requests = append(s.stats.Requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
}

func (s *Server) newCode() string {
	code := "bc-" + randomHex(24)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for c, exp := range s.codes { // keep the map small in a long demo
		if now.After(exp) {
			delete(s.codes, c)
		}
	}
	s.codes[code] = now.Add(codeLifetime)
	return code
}

// takeCode consumes a code: it is valid once.
func (s *Server) takeCode(code string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.codes[code]
	delete(s.codes, code)
	return ok && time.Now().Before(exp)
}

// issue mints a key at the fake OpenRouter. The caller holds rotateMu.
func (s *Server) issue(ctx context.Context) (openrouter.KeyInfo, error) {
	s.mu.Lock()
	s.labelSeq++
	label := s.opts.KeyLabel + " " + strconv.Itoa(s.labelSeq)
	s.mu.Unlock()
	var expires *time.Time
	if s.opts.KeyTTL > 0 {
		t := time.Now().Add(s.opts.KeyTTL).UTC().Truncate(time.Second)
		expires = &t
	}
	info, err := s.opts.Issuer.IssueKey(ctx, label, expires)
	if err != nil {
		return info, fmt.Errorf("issue key: %w", err)
	}
	s.mu.Lock()
	k := info
	s.current = &k
	s.mu.Unlock()
	return info, nil
}

// kill revokes info, a key just issued, at the fake OpenRouter: the
// DeadKeys fault. The caller holds rotateMu.
func (s *Server) kill(ctx context.Context, info *openrouter.KeyInfo) error {
	if err := s.opts.Issuer.Revoke(ctx, info.Key); err != nil {
		return fmt.Errorf("revoke the key just issued: %w", err)
	}
	info.Revoked = true
	s.mu.Lock()
	if s.current != nil && s.current.Key == info.Key {
		s.current.Revoked = true
	}
	s.mu.Unlock()
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
