package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/orproxy/orproxy/internal/secret"
)

// maxKeyAnswer bounds what is read of a GET /key answer. A real one is under
// 1 KB; more is a login page or some other server's answer.
const maxKeyAnswer = 64 << 10

// KeyAnswer is all that GET {upstream}/key tells about a key that this
// program uses: its name and expiry (KeyInfo) for the credential, and its
// limit and spend for /status.
type KeyAnswer struct {
	KeyInfo
	// Limit is the key's spending limit in dollars; nil when it has none.
	Limit *float64
	// LimitRemaining is what is left of Limit; nil when there is no limit.
	LimitRemaining *float64
	// LimitReset is the limit's period as OpenRouter names it ("daily",
	// "monthly"), made printable; empty when the limit never resets.
	LimitReset string
	// Usage is the key's spend in dollars, all time and in the current
	// day, week and month.
	Usage, UsageDaily, UsageWeekly, UsageMonthly float64
	IsFreeTier                                   bool
}

// GetKey asks OpenRouter about key with GET {upstream}/key, bounded to 30 s
// or less when ctx or hc says so. A nil hc is a default client. Redirects
// are not followed, since the request carries the key. A *KeyRejectedError
// means OpenRouter refused the key (401); any other error means the
// question could not be answered (network, 5xx, a redirect, an answer that
// is not OpenRouter's), which is not a verdict on the key. No error shows
// the key, even when the answer echoes it.
func GetKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) (KeyAnswer, error) {
	ans, err := getKey(ctx, hc, upstream, key)
	if err != nil && !IsKeyRejected(err) {
		return KeyAnswer{}, fmt.Errorf("GET /key: %w", err)
	}
	return ans, err
}

func getKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) (KeyAnswer, error) {
	if hc == nil {
		hc = &http.Client{Timeout: httpCallTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, httpCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(upstream, "/")+"/key", nil)
	if err != nil {
		return KeyAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := noRedirects(hc).Do(req)
	if err != nil {
		return KeyAnswer{}, err
	}
	defer resp.Body.Close()
	if isRedirect(resp) {
		// Not a verdict on the key: the question never reached OpenRouter.
		return KeyAnswer{}, redirectError(resp, "the key")
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyAnswer+1))
	if err != nil {
		return KeyAnswer{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The status text is Go's, not the server's reason phrase, which is
		// remote text like the body.
		msg := scrub(errorMessage(scrubBytes(data, key)), key)
		if resp.StatusCode == http.StatusUnauthorized {
			// Only a 401 condemns the key: a 403 may come from moderation
			// or a company proxy's block page, and rotating would not help.
			return KeyAnswer{}, &KeyRejectedError{Status: resp.StatusCode, Message: msg}
		}
		status := fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		if msg == "" {
			return KeyAnswer{}, errors.New(status)
		}
		return KeyAnswer{}, fmt.Errorf("%s: %s", status, msg)
	}
	if len(data) > maxKeyAnswer {
		return KeyAnswer{}, fmt.Errorf("the answer is larger than %d KiB, so not OpenRouter's key answer; check `upstream`", maxKeyAnswer>>10)
	}
	return decodeKeyAnswer(data)
}

// decodeKeyAnswer reads GET /key's answer. The name and expiry are read
// leniently (an odd expiry is no expiry); the amounts strictly, since a
// limit misread as none would be worse than no reading. Fields this program
// does not use are ignored; a null limit is no limit.
func decodeKeyAnswer(data []byte) (KeyAnswer, error) {
	var ans struct {
		Data *struct {
			Label          string          `json:"label"`
			ExpiresAt      json.RawMessage `json:"expires_at"`
			Limit          *float64        `json:"limit"`
			LimitRemaining *float64        `json:"limit_remaining"`
			LimitReset     *string         `json:"limit_reset"`
			Usage          float64         `json:"usage"`
			UsageDaily     float64         `json:"usage_daily"`
			UsageWeekly    float64         `json:"usage_weekly"`
			UsageMonthly   float64         `json:"usage_monthly"`
			IsFreeTier     bool            `json:"is_free_tier"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &ans); err != nil {
		// Go's decoding errors name a field, a type, a number or one
		// character, never a string's text, so they cannot carry the key.
		return KeyAnswer{}, fmt.Errorf("the answer is not OpenRouter's key answer (%s); check `upstream`", Sanitize(err.Error()))
	}
	d := ans.Data
	if d == nil {
		return KeyAnswer{}, errors.New(`the answer is not OpenRouter's key answer (no "data"); check ` + "`upstream`")
	}
	a := KeyAnswer{
		KeyInfo: KeyInfo{Label: d.Label, ExpiresAt: parseLenientTime(d.ExpiresAt)},
		Limit:   d.Limit, LimitRemaining: d.LimitRemaining,
		Usage: d.Usage, UsageDaily: d.UsageDaily, UsageWeekly: d.UsageWeekly, UsageMonthly: d.UsageMonthly,
		IsFreeTier: d.IsFreeTier,
	}
	if d.LimitReset != nil {
		a.LimitReset = Sanitize(*d.LimitReset)
	}
	return a, nil
}
