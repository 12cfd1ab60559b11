package login

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"unicode"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/humantime"
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
// label is the key's name in the user's OpenRouter settings: the page's
// key_label parameter, which OpenRouter's OAuth guide shows on its consent
// page URL.
func authPageURL(upstream, callback string, p pkce, label string) (string, error) {
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
	if label != "" {
		q.Set("key_label", label)
	}
	return o + "/auth?" + q.Encode(), nil
}

// maxKeyLabel is the longest key_label OpenRouter takes.
const maxKeyLabel = 100

// DefaultKeyLabel names the keys OpenRouter's login issues: "orproxy on
// <host name>", so that the user can tell this machine's key from others in
// OpenRouter's settings.
func DefaultKeyLabel() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "orproxy"
	}
	return keyLabel("orproxy on " + host)
}

// keyLabel is s without control characters, cut to maxKeyLabel characters.
func keyLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > maxKeyLabel {
		s = string(r[:maxKeyLabel])
	}
	return strings.TrimSpace(s)
}

// label is the key_label this login sends.
func (l *flow) label() string {
	if l.opts.KeyLabel != "" {
		return keyLabel(l.opts.KeyLabel)
	}
	return DefaultKeyLabel()
}

// openRouter runs OpenRouter's own OAuth PKCE login with a callback.
func (l *flow) openRouter(ctx context.Context) (*auth.Credential, error) {
	if _, err := origin(l.opts.Upstream); err != nil {
		return nil, err
	}
	p, err := newPKCE()
	if err != nil {
		return nil, err
	}
	label := l.label()
	return l.browserFlow(ctx, "Open this address in a browser to log in with your OpenRouter account:", true,
		func(callback string) (string, error) { return authPageURL(l.opts.Upstream, callback, p, label) },
		func(ctx context.Context, a arrival) (*auth.Credential, error) {
			return l.openRouterExchange(ctx, a, p, label)
		})
}

// openRouterHeadless runs OpenRouter's headless mode: the consent page shows
// a code and the user pastes it here. There is no callback, so no state;
// PKCE alone ties the code to this login.
func (l *flow) openRouterHeadless(ctx context.Context) (*auth.Credential, error) {
	p, err := newPKCE()
	if err != nil {
		return nil, err
	}
	label := l.label()
	authURL, err := authPageURL(l.opts.Upstream, "", p, label)
	if err != nil {
		return nil, err
	}
	l.showURL("Open this address in a browser, approve, and paste the code the page shows:", authURL)
	l.say("Code (waiting up to %s): ", humantime.Duration(l.opts.Timeout))
	lines := l.stdinLines()
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	for {
		line, ok := lines.next(ctx)
		if !ok {
			if ctx.Err() == context.DeadlineExceeded {
				return nil, fmt.Errorf("no code pasted within %s; run `orproxy login --method openrouter --headless` again", humantime.Duration(l.opts.Timeout))
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
		return l.openRouterExchange(ctx, arrival{code: code}, p, label)
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

// openRouterExchange trades the code for a key and stores it under label,
// the name the consent page was asked to give it: the label GET /key
// reports is, in OpenRouter's documentation, the masked key, not that name.
func (l *flow) openRouterExchange(ctx context.Context, a arrival, p pkce, label string) (*auth.Credential, error) {
	l.say("Got the code; asking OpenRouter for a key ...")
	key, err := auth.ExchangePKCE(ctx, l.opts.HTTP, l.opts.Upstream, a.code, p.verifier)
	if err != nil {
		return nil, err
	}
	c := &auth.Credential{Source: auth.SourceOpenRouterOAuth, APIKey: key, KeyHash: auth.KeyHash(key), KeyLabel: label}
	if info, err := auth.CheckKey(ctx, l.opts.HTTP, l.opts.Upstream, key); err == nil {
		c.KeyExpiresAt = info.ExpiresAt
	} else {
		// The key was just issued; details are a nicety.
		l.log.Debug("could not read the new key's details", zap.Error(err))
	}
	return l.finish(ctx, c, "with OpenRouter")
}
