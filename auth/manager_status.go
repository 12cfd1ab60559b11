package auth

import (
	"errors"
	"time"
)

// Status is the credential part of /status and `orproxy status`. It holds no
// secret: the key appears only in its redacted form.
type Status struct {
	LoggedIn          bool       `json:"logged_in"`
	File              string     `json:"file"`
	FileError         string     `json:"file_error,omitempty"`
	Source            Source     `json:"source,omitempty"`
	Key               string     `json:"key,omitempty"`
	Label             string     `json:"label,omitempty"`
	Hash              string     `json:"hash,omitempty"`
	ExpiresAt         *time.Time `json:"expires_at,omitempty"`
	UpdatedAt         *time.Time `json:"updated_at,omitempty"`
	CanRotate         bool       `json:"can_rotate"`
	RotationCount     int        `json:"rotation_count"`
	LastRotationAt    *time.Time `json:"last_rotation_at,omitempty"`
	LastRotationError string     `json:"last_rotation_error,omitempty"`
	RotationFailures  int        `json:"rotation_failures_in_a_row,omitempty"`
	RotationWaitUntil *time.Time `json:"rotation_backoff_until,omitempty"`
	SaveError         string     `json:"save_error,omitempty"`
	// LoginURL is the address to open while an automatic login waits.
	LoginURL       string     `json:"login_url,omitempty"`
	LoginStartedAt *time.Time `json:"login_started_at,omitempty"`
	LastLoginError string     `json:"last_login_error,omitempty"`
	LastValidation *struct {
		At     time.Time `json:"at"`
		Result string    `json:"result"`
	} `json:"last_validation,omitempty"`
}

// Status describes the manager's credential and rotation record.
func (m *Manager) Status() any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := Status{
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
		s.LastValidation = &struct {
			At     time.Time `json:"at"`
			Result string    `json:"result"`
		}{m.valid.at, m.valid.result}
	}
	return s
}

// describe fills the credential fields of a Status.
func describe(s *Status, c *Credential) {
	s.LoggedIn = true
	s.Source = c.Source
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
func Describe(store *Store, configURL string) Status {
	s := Status{File: store.Path()}
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
