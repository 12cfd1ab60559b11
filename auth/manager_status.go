package auth

import (
	"errors"
	"time"

	"github.com/orproxy/orproxy/internal/statusdoc"
)

// Status describes the manager's credential and rotation record for
// /status. It holds no secret: the key appears only in its redacted form.
func (m *Manager) Status() statusdoc.Credential {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := statusdoc.Credential{
		File:              m.opts.Store.Path(),
		FileError:         m.fileErr,
		RotationCount:     m.rotation.count,
		LastRotationAt:    timePtr(m.rotation.lastAt),
		LastRotationError: m.rotation.lastErr,
		RotationFailures:  m.rotation.failures,
		SaveError:         m.saveErr,
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
	return s
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
// configURL is the configured broker.
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
	return s
}
