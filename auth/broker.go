package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/secret"
)

// DefaultBrokerTimeout bounds a broker call when NewBrokerClient gets none.
const DefaultBrokerTimeout = 10 * time.Second

// maxAnswerSize bounds what is read of a broker answer; a credential answer
// is well under a kilobyte.
const maxAnswerSize = 1 << 20

// BrokerCredential is what the broker answers to a code exchange or a
// rotation.
type BrokerCredential struct {
	APIKey       secret.Secret
	RefreshToken secret.Secret
	KeyHash      string
	KeyLabel     string
	// KeyExpiresAt is zero when the broker did not say.
	KeyExpiresAt time.Time
}

// Credential turns the broker's answer into what the store keeps.
func (b *BrokerCredential) Credential(brokerURL string) *Credential {
	return &Credential{
		Source:       SourceBroker,
		APIKey:       b.APIKey,
		RefreshToken: b.RefreshToken,
		KeyHash:      b.KeyHash,
		KeyLabel:     b.KeyLabel,
		KeyExpiresAt: b.KeyExpiresAt,
		BrokerURL:    brokerURL,
		UpdatedAt:    time.Now().UTC().Truncate(time.Second),
	}
}

// BrokerClient talks to the company's credential broker.
type BrokerClient struct {
	base         string // without a trailing slash
	startHeaders http.Header
	timeout      time.Duration
	http         *http.Client
}

// NewBrokerClient checks the broker URL and the start header lines ("Name:
// value") and returns a client whose every call is bounded by timeout
// (DefaultBrokerTimeout when zero). transport nil means http.DefaultTransport.
// The client never follows redirects: the refresh token must not reach a host
// the configuration did not name.
func NewBrokerClient(baseURL string, startHeaders []string, timeout time.Duration, transport http.RoundTripper) (*BrokerClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("broker URL %s is not an absolute http(s) URL without query or user info", quoteBounded(baseURL, 200))
	}
	h := http.Header{}
	for _, line := range startHeaders {
		name, value, err := netaddr.ParseHeaderLine(line)
		if err != nil {
			return nil, fmt.Errorf("broker start header: %w", err)
		}
		h.Add(name, value)
	}
	if timeout <= 0 {
		timeout = DefaultBrokerTimeout
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &BrokerClient{
		base:         strings.TrimRight(baseURL, "/"),
		startHeaders: h,
		timeout:      timeout,
		http: &http.Client{
			Transport:     transport,
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// BaseURL is the broker's URL as configured, without a trailing slash; it is
// what a broker credential records as its BrokerURL.
func (b *BrokerClient) BaseURL() string { return b.base }

// BrokerError is a failed broker call.
type BrokerError struct {
	// Op is the call: "start", "exchange code" or "rotate".
	Op string
	// Status is the HTTP status; 0 when no answer arrived.
	Status int
	// Message is the broker's own explanation, bounded and stripped of
	// control characters; it may be empty.
	Message string
	// Err is the underlying transport or decoding error, if any.
	Err error
}

func (e *BrokerError) Error() string {
	var b strings.Builder
	b.WriteString("broker ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *BrokerError) Unwrap() error { return e.Err }

// IsRefreshRejected reports whether err is the broker refusing a refresh
// token: 401 or 403 from rotate, or 400, which is how an OAuth-style server
// answers a refresh token it no longer knows (invalid_grant). Only a new
// login helps then; any other failure is transient and the current key
// should be kept.
func IsRefreshRejected(err error) bool {
	var be *BrokerError
	if !errors.As(err, &be) || be.Op != opRotate {
		return false
	}
	switch be.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

const (
	opStart    = "start"
	opExchange = "exchange code"
	opRotate   = "rotate"
)

// StartURL returns the address where the browser begins the broker login,
// with returnTo as the address the broker sends the code back to. Without
// start headers this only builds the URL. With them, the broker expects
// identity headers the browser cannot add, so orproxy sends the request
// itself and returns where the broker redirects to.
func (b *BrokerClient) StartURL(ctx context.Context, returnTo string) (string, error) {
	start := b.base + "/auth/openrouter/start?return_to=" + url.QueryEscape(returnTo)
	if len(b.startHeaders) == 0 {
		return start, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return "", &BrokerError{Op: opStart, Err: err}
	}
	for name, values := range b.startHeaders {
		req.Header[name] = values
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return "", &BrokerError{Op: opStart, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := errorMessage(body)
		if msg == "" {
			msg = "expected a redirect to the login page"
		}
		return "", &BrokerError{Op: opStart, Status: resp.StatusCode, Message: msg}
	}
	loc, err := resp.Location()
	if err != nil {
		return "", &BrokerError{Op: opStart, Status: resp.StatusCode, Message: "redirect without a usable Location"}
	}
	// The browser opener hands the URL to the desktop; only web URLs belong there.
	if (loc.Scheme != "https" && loc.Scheme != "http") || loc.Host == "" {
		return "", &BrokerError{Op: opStart, Status: resp.StatusCode, Message: "redirect to a non-web address " + quoteBounded(loc.Scheme+":", 20)}
	}
	return loc.String(), nil
}

// Probe asks the broker for u, one of its own pages (the start page), as the
// browser would but without following a redirect, within the broker
// timeout, and returns the status of whatever answer came: any answer means
// the broker is up. An error means none came (refused, unresolvable, too
// slow); it is the transport's cause, without the address, which holds the
// login's state.
func (b *BrokerClient) Probe(ctx context.Context, u string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Timeout is what bounds each broker call (broker.timeout).
func (b *BrokerClient) Timeout() time.Duration { return b.timeout }

// Exchange trades the code the broker sent to the callback for a credential.
func (b *BrokerClient) Exchange(ctx context.Context, code secret.Secret) (*BrokerCredential, error) {
	body, err := json.Marshal(map[string]string{"code": code.Reveal()})
	if err != nil {
		return nil, &BrokerError{Op: opExchange, Err: err}
	}
	data, err := b.post(ctx, opExchange, "/auth/openrouter/credential", body, "", code)
	if err != nil {
		return nil, err
	}
	bc, err := decodeBrokerAnswer(data)
	if err != nil {
		return nil, &BrokerError{Op: opExchange, Status: http.StatusOK, Err: err}
	}
	return bc, nil
}

// Rotate asks the broker for a new key. The broker revokes the old one. When
// the answer carries no new refresh token, the old one stays valid and is
// returned in the result, so a caller can store the result as is.
func (b *BrokerClient) Rotate(ctx context.Context, refresh secret.Secret) (*BrokerCredential, error) {
	if refresh.IsZero() {
		return nil, &BrokerError{Op: opRotate, Err: errors.New("no refresh token stored; run `orproxy login`")}
	}
	data, err := b.post(ctx, opRotate, "/credentials/rotate", nil, refresh.Reveal(), refresh)
	if err != nil {
		return nil, err
	}
	bc, err := decodeBrokerAnswer(data)
	if err != nil {
		return nil, &BrokerError{Op: opRotate, Status: http.StatusOK, Err: err}
	}
	if bc.RefreshToken.IsZero() {
		bc.RefreshToken = refresh
	}
	return bc, nil
}

// post sends one broker call and returns the body of a 2xx answer. sent is
// the secret that went out, scrubbed from any message a broker echoes back.
func (b *BrokerClient) post(ctx context.Context, op, path string, body []byte, bearer string, sent secret.Secret) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+path, rd)
	if err != nil {
		return nil, &BrokerError{Op: op, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, &BrokerError{Op: op, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize+1))
	if err != nil {
		return nil, &BrokerError{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("read answer: %w", err)}
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		// Following would replay the code or the refresh token to wherever
		// the redirect points.
		return nil, &BrokerError{Op: op, Status: resp.StatusCode,
			Message: "redirect to " + quoteBounded(redactLocation(resp.Header.Get("Location")), 200) + " not followed; check broker.url"}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, &BrokerError{Op: op, Status: resp.StatusCode, Message: scrub(errorMessage(scrubBytes(data, sent)), sent)}
	case len(data) > maxAnswerSize:
		return nil, &BrokerError{Op: op, Status: resp.StatusCode, Err: errors.New("answer larger than 1 MiB")}
	}
	return data, nil
}

// redactLocation keeps the scheme, host and path of a redirect target for the
// error message; its query could carry anything.
func redactLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "(unparsable address)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// decodeBrokerAnswer is strict about the key and lenient about the rest: a
// rotation has already revoked the old key by the time the answer arrives,
// so rejecting an answer over a cosmetic field would lose the new key too.
func decodeBrokerAnswer(data []byte) (*BrokerCredential, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return nil, errors.New("answer is not a JSON object")
	}
	key, ok := jsonString(raw["openrouter_api_key"])
	if !ok || strings.TrimSpace(key) == "" {
		return nil, errors.New("answer has no openrouter_api_key")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return nil, errors.New("answer's openrouter_api_key contains spaces or control characters")
	}
	bc := &BrokerCredential{APIKey: secret.New(key)}
	if v, ok := jsonString(raw["broker_refresh_token"]); ok {
		bc.RefreshToken = secret.New(v)
	}
	bc.KeyHash, _ = jsonString(raw["openrouter_key_hash"])
	bc.KeyLabel, _ = jsonString(raw["openrouter_key_label"])
	bc.KeyExpiresAt = parseLenientTime(raw["openrouter_key_expires_at"])
	return bc, nil
}

// jsonString returns a JSON string's value; null, absent or another type
// report false.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// parseLenientTime reads an expiry as RFC 3339, the few near misses that
// web frameworks produce, or Unix seconds. Anything else is "unknown" (zero):
// the key still works, only the early rotation before expiry is lost.
func parseLenientTime(raw json.RawMessage) time.Time {
	var t time.Time
	if s, ok := jsonString(raw); ok {
		s = strings.TrimSpace(s)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if p, err := time.Parse(layout, s); err == nil {
				t = p
				break
			}
		}
	} else if n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && n > 0 {
		t = time.Unix(n, 0)
	}
	if t.IsZero() || t.UTC().Year() < 1970 || t.UTC().Year() > 9999 {
		return time.Time{}
	}
	return t.UTC()
}

// maxMessageLen bounds a message taken from a remote answer: enough for an
// explanation, not enough to flood a terminal or a log line.
const maxMessageLen = 300

// errorMessage extracts the explanation from an error body in the shapes
// FastAPI-style brokers and OpenRouter use: {"detail": …} (a string or any
// JSON), {"error": {"message": …}}, {"error": "…"} or {"message": …}. A body
// in none of these shapes is shown by its start.
func errorMessage(body []byte) string {
	var shape struct {
		Detail  json.RawMessage `json:"detail"`
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(body, &shape) == nil {
		if len(shape.Detail) > 0 && string(shape.Detail) != "null" {
			if s, ok := jsonString(shape.Detail); ok {
				return Sanitize(s)
			}
			return Sanitize(compactJSON(shape.Detail))
		}
		if len(shape.Error) > 0 {
			var inner struct {
				Message json.RawMessage `json:"message"`
			}
			if s, ok := jsonString(shape.Error); ok {
				return Sanitize(s)
			}
			if json.Unmarshal(shape.Error, &inner) == nil {
				if s, ok := jsonString(inner.Message); ok {
					return Sanitize(s)
				}
			}
		}
		if s, ok := jsonString(shape.Message); ok {
			return Sanitize(s)
		}
	}
	return Sanitize(string(body))
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// Sanitize makes remote text safe to print on one terminal line: invalid
// UTF-8 and control characters (escape sequences included) become spaces or
// U+FFFD, runs of space collapse, and the length is bounded.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxMessageLen {
			b.WriteString("…")
			return b.String()
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func scrubBytes(data []byte, sent secret.Secret) []byte {
	if v := sent.Reveal(); len(v) >= 4 {
		data = bytes.ReplaceAll(data, []byte(v), []byte(sent.String()))
	}
	return data
}

// scrub replaces a secret a remote party echoed back with its redacted form.
func scrub(msg string, sent secret.Secret) string {
	if v := sent.Reveal(); len(v) >= 4 && utf8.ValidString(v) {
		msg = strings.ReplaceAll(msg, v, sent.String())
	}
	return msg
}
