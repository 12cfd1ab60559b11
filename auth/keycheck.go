package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/secret"
)

// ErrKeyRejected means OpenRouter answered 401 to a key.
var ErrKeyRejected = errors.New("OpenRouter rejected the key")

// KeyInfo is what GET {upstream}/key says about a key.
type KeyInfo struct {
	Label     string
	ExpiresAt string
}

// CheckKey asks OpenRouter about key with GET {upstream}/key. A 401 is
// ErrKeyRejected (wrapped, with OpenRouter's message); any other failure
// (network, 5xx) is a plain error, which callers treat as "unknown", not as
// a rejection.
func CheckKey(ctx context.Context, client *http.Client, upstream string, key secret.Secret) (*KeyInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(upstream, "/")+"/key", nil)
	if err != nil {
		return nil, fmt.Errorf("check key: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("check key with OpenRouter: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.ToValidUTF8(gjson.GetBytes(body, "error.message").String(), "?")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		if msg == "" {
			msg = "401 Unauthorized"
		}
		return nil, fmt.Errorf("%w: %s", ErrKeyRejected, msg)
	case resp.StatusCode != http.StatusOK:
		if msg == "" {
			msg = resp.Status
		}
		return nil, fmt.Errorf("check key with OpenRouter: %d: %s", resp.StatusCode, msg)
	}
	data := gjson.GetBytes(body, "data")
	return &KeyInfo{Label: data.Get("label").String(), ExpiresAt: data.Get("expires_at").String()}, nil
}
