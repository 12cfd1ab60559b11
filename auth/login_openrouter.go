package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/secret"
)

// pkce is one PKCE (RFC 7636) pair; the verifier never leaves the process
// except in the code exchange.
type pkce struct {
	verifier  secret.Secret
	challenge string
}

func newPKCE() (pkce, error) {
	v, err := randomToken() // 32 random bytes, base64url without padding: 43 characters
	if err != nil {
		return pkce{}, err
	}
	return pkce{verifier: secret.New(v), challenge: s256(v)}, nil
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authPageURL is OpenRouter's consent page; an empty callback asks for
// headless mode, where the page shows the code instead of redirecting.
func authPageURL(upstream, callback string, p pkce) (string, error) {
	o, err := origin(upstream)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	if callback != "" {
		q.Set("callback_url", callback)
	}
	q.Set("code_challenge", p.challenge)
	q.Set("code_challenge_method", "S256")
	return o + "/auth?" + q.Encode(), nil
}

// openRouter runs OpenRouter's own OAuth PKCE login with a callback.
func (l *login) openRouter(ctx context.Context) (*Credential, error) {
	p, err := newPKCE()
	if err != nil {
		return nil, err
	}
	state, err := randomToken()
	if err != nil {
		return nil, err
	}
	if _, err := origin(l.opts.Upstream); err != nil {
		return nil, err
	}
	g := newGate()
	cs, err := startCallbackServer(l.opts.CallbackPort, state, g, l.log)
	if err != nil {
		return nil, err
	}
	defer cs.close()
	authURL, err := authPageURL(l.opts.Upstream, cs.URL(), p)
	if err != nil {
		return nil, err
	}
	l.showURL("Open this address in a browser to log in with your OpenRouter account:", authURL)
	l.say("Waiting up to %v for the browser to come back to %s ...", l.opts.Timeout, callbackPath)
	if l.acceptsPaste() {
		l.say("If the browser runs on another machine, paste the address it ends on (http://127.0.0.1:…/callback?…) here and press Enter.")
		l.readPastedCallbacks(state, g)
	}
	a, err := l.wait(ctx, g)
	if err != nil {
		return nil, err
	}
	c, err := l.openRouterExchange(ctx, a, p)
	if a.outcome != nil {
		a.outcome <- err
	}
	return c, err
}

// openRouterHeadless runs OpenRouter's headless mode: the consent page shows
// a code and the user pastes it here. There is no callback, so no state;
// PKCE alone ties the code to this login.
func (l *login) openRouterHeadless(ctx context.Context) (*Credential, error) {
	p, err := newPKCE()
	if err != nil {
		return nil, err
	}
	authURL, err := authPageURL(l.opts.Upstream, "", p)
	if err != nil {
		return nil, err
	}
	l.showURL("Open this address in a browser, approve, and paste the code the page shows:", authURL)
	l.say("Code (waiting up to %v): ", l.opts.Timeout)
	lines := l.stdinLines()
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	for {
		line, ok := lines.next(ctx)
		if !ok {
			if ctx.Err() == context.DeadlineExceeded {
				return nil, fmt.Errorf("no code pasted within %v; run `orproxy login --method openrouter --headless` again", l.opts.Timeout)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("login canceled: %w", context.Cause(ctx))
			}
			return nil, errors.New("input ended before a code was pasted")
		}
		code, err := parsePastedCode(line)
		if err != nil {
			if strings.TrimSpace(line) != "" {
				l.say("%v; paste the code the page shows.", err)
			}
			continue
		}
		return l.openRouterExchange(ctx, arrival{code: code}, p)
	}
}

// parsePastedCode accepts the code itself or, forgivingly, an address that
// carries it as code=….
func parsePastedCode(line string) (secret.Secret, error) {
	s := strings.Trim(strings.TrimSpace(line), `<>"'`)
	if s == "" {
		return secret.Secret{}, errors.New("nothing was pasted")
	}
	if strings.Contains(s, "code=") {
		q := s
		if _, after, ok := strings.Cut(s, "?"); ok {
			q = after
		}
		if v, err := url.ParseQuery(strings.ReplaceAll(q, "?", "&")); err == nil && v.Get("code") != "" {
			s = v.Get("code")
		}
	}
	if len(s) > maxCodeLen || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return secret.Secret{}, errors.New("that does not look like a code (it has spaces or is too long)")
	}
	return secret.New(s), nil
}

func (l *login) openRouterExchange(ctx context.Context, a arrival, p pkce) (*Credential, error) {
	if a.refused != nil {
		return nil, a.refused
	}
	l.say("Got the code; asking OpenRouter for a key ...")
	key, err := exchangePKCE(ctx, l.opts.HTTP, l.opts.Upstream, a.code, p.verifier)
	if err != nil {
		return nil, err
	}
	c := &Credential{Source: SourceOpenRouterOAuth, APIKey: key, KeyHash: keyHash(key)}
	if info, err := checkKey(ctx, l.opts.HTTP, l.opts.Upstream, key); err == nil {
		c.KeyLabel, c.KeyExpiresAt = info.label, info.expiresAt
	} else {
		// The key was just issued; details are a nicety.
		l.log.Debug("could not read the new key's details", zap.Error(err))
	}
	return l.finish(ctx, c, "with OpenRouter")
}

// exchangePKCE trades the code and verifier for a key at {upstream}/auth/keys.
func exchangePKCE(ctx context.Context, hc *http.Client, upstream string, code, verifier secret.Secret) (secret.Secret, error) {
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
	resp, err := hc.Do(req)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("exchange code with OpenRouter: %w", err)
	}
	defer resp.Body.Close()
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

// keyHash is OpenRouter's key hash: hex SHA-256 of the key, which its site
// uses in links to the key and its logs.
func keyHash(key secret.Secret) string {
	sum := sha256.Sum256([]byte(key.Reveal()))
	return hex.EncodeToString(sum[:])
}

// keyInfo is what GET {upstream}/key tells about a key.
type keyInfo struct {
	label     string
	expiresAt time.Time
}

// KeyRejectedError is OpenRouter refusing a key (401 or 403 from /key).
type KeyRejectedError struct {
	Status  int
	Message string
}

func (e *KeyRejectedError) Error() string {
	msg := fmt.Sprintf("OpenRouter rejected the key (%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg + ")"
}

// checkKey asks OpenRouter about key. A *KeyRejectedError means the key is
// no good; any other error means the question could not be answered.
func checkKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) (keyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, httpCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(upstream, "/")+"/key", nil)
	if err != nil {
		return keyInfo{}, fmt.Errorf("check key: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	resp, err := hc.Do(req)
	if err != nil {
		return keyInfo{}, fmt.Errorf("check key: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	if err != nil {
		return keyInfo{}, fmt.Errorf("check key: read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return keyInfo{}, &KeyRejectedError{Status: resp.StatusCode, Message: scrub(errorMessage(scrubBytes(data, key)), key)}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return keyInfo{}, fmt.Errorf("check key: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), scrub(errorMessage(scrubBytes(data, key)), key))
	}
	var out struct {
		Data struct {
			Label     string          `json:"label"`
			ExpiresAt json.RawMessage `json:"expires_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return keyInfo{}, errors.New("check key: the answer is not JSON")
	}
	return keyInfo{label: out.Data.Label, expiresAt: parseLenientTime(out.Data.ExpiresAt)}, nil
}
