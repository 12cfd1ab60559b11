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

// CheckKey is GetKey for the callers that need only the key's name and
// expiry, with the same errors.
func CheckKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) (KeyInfo, error) {
	a, err := GetKey(ctx, hc, upstream, key)
	return a.KeyInfo, err
}
