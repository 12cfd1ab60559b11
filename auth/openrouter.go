package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/secret"
)

// httpCallTimeout bounds each call to OpenRouter, whatever client the
// caller passed.
const httpCallTimeout = 30 * time.Second

// ExchangePKCE trades the code and verifier of OpenRouter's PKCE login for a
// key, at {upstream}/auth/keys, bounded to 30 s. A nil hc is a default client.
func ExchangePKCE(ctx context.Context, hc *http.Client, upstream string, code, verifier secret.Secret) (secret.Secret, error) {
	if hc == nil {
		hc = &http.Client{Timeout: httpCallTimeout}
	}
	body, err := json.Marshal(map[string]string{
		"code":                  code.Reveal(),
		"code_verifier":         verifier.Reveal(),
		"code_challenge_method": "S256",
	})
	if err != nil {
		return secret.Secret{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, httpCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(upstream, "/")+"/auth/keys", bytes.NewReader(body))
	if err != nil {
		return secret.Secret{}, fmt.Errorf("exchange code with OpenRouter: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := noRedirects(hc).Do(req)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("exchange code with OpenRouter: %w", err)
	}
	defer resp.Body.Close()
	if isRedirect(resp) {
		return secret.Secret{}, fmt.Errorf("exchange code with OpenRouter: %w", redirectError(resp, "the code and verifier"))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	if err != nil {
		return secret.Secret{}, fmt.Errorf("exchange code with OpenRouter: read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := scrub(scrub(errorMessage(scrubBytes(scrubBytes(data, code), verifier)), code), verifier)
		return secret.Secret{}, fmt.Errorf("OpenRouter refused the code: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), msg)
	}
	var out struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(data, &out); err != nil || strings.TrimSpace(out.Key) == "" {
		return secret.Secret{}, errors.New("exchange code with OpenRouter: the answer carries no key")
	}
	return secret.New(strings.TrimSpace(out.Key)), nil
}

// noRedirects returns a copy of hc that does not follow redirects. Go's
// client would send a 307/308 the same body (the PKCE code and verifier)
// and keep Authorization (the key) for another port of the same host, so a
// redirecting upstream could collect either; the broker client refuses
// redirects for the same reason.
func noRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func isRedirect(resp *http.Response) bool {
	return resp.StatusCode >= 300 && resp.StatusCode <= 399
}

// redirectError says where a redirect that was not followed pointed: only
// the host, since the rest of the address is the server's to fill.
func redirectError(resp *http.Response, what string) error {
	where := "an address it did not give"
	if loc, err := resp.Location(); err == nil && loc.Host != "" {
		where = quoteBounded(loc.Host, 100)
	}
	return fmt.Errorf("OpenRouter answered with a redirect (%d %s) to %s, and orproxy does not follow it, so as not to send %s there; check `upstream`",
		resp.StatusCode, http.StatusText(resp.StatusCode), where, what)
}

// KeyHash is OpenRouter's key hash: hex SHA-256 of the key, which its site
// uses in links to the key and its logs.
func KeyHash(key secret.Secret) string {
	sum := sha256.Sum256([]byte(key.Reveal()))
	return hex.EncodeToString(sum[:])
}

// KeyInfo is what GET {upstream}/key tells about a key.
type KeyInfo struct {
	Label string
	// ExpiresAt is zero when the key does not expire.
	ExpiresAt time.Time
}

// KeyRejectedError is OpenRouter refusing a key (a 401 from /key).
type KeyRejectedError struct {
	Status  int
	Message string
}

// IsKeyRejected reports whether err is OpenRouter refusing a key.
func IsKeyRejected(err error) bool {
	var kr *KeyRejectedError
	return errors.As(err, &kr)
}

func (e *KeyRejectedError) Error() string {
	msg := fmt.Sprintf("OpenRouter rejected the key (%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg + ")"
}

// CheckKey asks OpenRouter about key with GET {upstream}/key, bounded to
// 30 s. A *KeyRejectedError means OpenRouter refused the key; any other error
// means the question could not be answered (network, 5xx), which is not a
// verdict on the key.
func CheckKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) (KeyInfo, error) {
	if hc == nil {
		hc = &http.Client{Timeout: httpCallTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, httpCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(upstream, "/")+"/key", nil)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("check key: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	resp, err := noRedirects(hc).Do(req)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("check key: %w", err)
	}
	defer resp.Body.Close()
	if isRedirect(resp) {
		// Not a verdict on the key: the question never reached OpenRouter.
		return KeyInfo{}, fmt.Errorf("check key: %w", redirectError(resp, "the key"))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("check key: read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		// Only a 401 condemns the key: a 403 may come from moderation or a
		// company proxy's block page, and rotating would not help.
		return KeyInfo{}, &KeyRejectedError{Status: resp.StatusCode, Message: scrub(errorMessage(scrubBytes(data, key)), key)}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return KeyInfo{}, fmt.Errorf("check key: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), scrub(errorMessage(scrubBytes(data, key)), key))
	}
	var out struct {
		Data struct {
			Label     string          `json:"label"`
			ExpiresAt json.RawMessage `json:"expires_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return KeyInfo{}, errors.New("check key: the answer is not JSON")
	}
	return KeyInfo{Label: out.Data.Label, ExpiresAt: parseLenientTime(out.Data.ExpiresAt)}, nil
}
