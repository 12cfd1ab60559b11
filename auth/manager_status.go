package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/humantime"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// Status describes the manager's credential and rotation record for
// /status, with the verdict on its key: Usable, or the Problem that keeps it
// from being used. It holds no secret: the key appears only redacted.
func (m *Manager) Status() statusdoc.Credential {
	// The status speaks for the key the next request would get: a key
	// stored since the last request counts already.
	m.syncWithFile()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.statusLocked()
}

// statusLocked is Status from what the manager holds; m.mu must be held.
func (m *Manager) statusLocked() statusdoc.Credential {
	s := statusdoc.Credential{
		File:              m.opts.Store.Path(),
		FileError:         m.fileErr,
		RotationCount:     m.rotation.count,
		LastRotationAt:    timePtr(m.rotation.lastAt),
		LastRotationError: m.rotation.lastErr,
		RotationFailures:  m.rotation.failures,
		SaveError:         m.save.err,
		LoginURL:          m.login.url,
		LastLoginError:    m.login.lastErr,
	}
	if m.login.url != "" {
		s.LoginStartedAt = timePtr(m.login.started)
	}
	if time.Now().Before(m.rotation.notBefore) {
		s.RotationWaitUntil = timePtr(m.rotation.notBefore)
	}
	if c := m.cur; c != nil {
		describe(&s, c)
		s.CanRotate = canRotate(c, m.opts.BrokerURL) && m.opts.Broker != nil
	}
	if !m.valid.at.IsZero() {
		s.LastValidation = &statusdoc.Validation{At: m.valid.at, Result: m.valid.result}
	}
	s.Problem = m.problemLocked(&s)
	s.Usable = s.Problem == ""
	return s
}

// problemLocked says why the daemon cannot use its key, or "": what the file
// says (fileProblem), then what the daemon learned from OpenRouter and the
// broker since. m.mu must be held.
func (m *Manager) problemLocked(s *statusdoc.Credential) string {
	if m.cur == nil && m.login.url != "" {
		return "the daemon has no usable key and waits for a login at " + m.login.url + "; run `orproxy login`"
	}
	if p := fileProblem(s, m.opts.BrokerURL); p != "" {
		return p
	}
	why := ""
	switch v, r := m.valid, m.rotation; {
	case !m.stuck.key.IsZero() && m.stuck.key == m.cur.APIKey:
		why = "OpenRouter rejected it and no rotation can replace it (" + m.stuck.what() + ")"
		if m.login.url != "" {
			why += "; the daemon waits for a login at " + m.login.url
		}
	case strings.HasPrefix(v.result, "rejected") && v.result != "rejected; replaced" && v.key == m.cur.APIKey:
		// The check at start found this very key rejected: no rotation
		// or login has brought another since.
		why = "the daemon found that OpenRouter rejects it (" + v.result + ")"
	case r.failures > 0 && (m.cur.APIKey == r.dead || strings.Contains(r.lastErr, "rejected")):
		// The last rotation failed over a rejected key: one the broker
		// issued and OpenRouter refused, or the rejected key handed back,
		// which is on record only in the error's words.
		why = "OpenRouter rejected it and the daemon could not replace it (" + r.lastErr + ")"
	case m.login.url != "":
		why = "the daemon has no usable key and waits for a login at " + m.login.url
	default:
		return ""
	}
	return fmt.Sprintf("the stored key %s is not usable: %s; run %s", s.Key, why, s.Renewal())
}

// fileProblem says why the credential s describes cannot be used judging by
// the file alone: unreadable, absent or expired; "" when it can. brokerURL
// is the configured broker, which decides the login to suggest.
func fileProblem(s *statusdoc.Credential, brokerURL string) string {
	switch {
	case !s.LoggedIn && s.FileError != "":
		return s.FileError
	case !s.LoggedIn:
		return "not logged in: no credential is stored; run " + LoginCommand(brokerURL)
	case s.ExpiresAt != nil && !s.ExpiresAt.After(time.Now()):
		return fmt.Sprintf("the stored key %s expired %s; run %s", s.Key, humantime.Relative(*s.ExpiresAt, time.Now()), s.Renewal())
	}
	return ""
}

// describe fills the credential fields of a status.
func describe(s *statusdoc.Credential, c *Credential) {
	s.LoggedIn = true
	s.Source = string(c.Source)
	s.Key = c.APIKey.String()
	s.Label = c.KeyLabel
	s.Hash = c.KeyHash
	s.ExpiresAt = timePtr(c.KeyExpiresAt)
	s.UpdatedAt = timePtr(c.UpdatedAt)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// canRotate reports whether c can be rotated through a broker: its own, or
// the configured one at configURL.
func canRotate(c *Credential, configURL string) bool {
	return c.Source == SourceBroker && !c.RefreshToken.IsZero() && (c.BrokerURL != "" || configURL != "")
}

// Describe reads the credential file for `orproxy status`, without a daemon;
// configURL is the configured broker. Its verdict goes by the file alone:
// whether OpenRouter accepts the key is for the caller to ask.
func Describe(store *Store, configURL string) statusdoc.Credential {
	s := statusdoc.Credential{File: store.Path()}
	c, err := store.Load()
	switch {
	case errors.Is(err, ErrNoCredential):
	case err != nil:
		s.FileError = err.Error()
	default:
		describe(&s, c)
		s.CanRotate = canRotate(c, configURL)
	}
	s.Problem = fileProblem(&s, configURL)
	s.Usable = s.Problem == ""
	return s
}
