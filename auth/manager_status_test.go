package auth

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/secret"
)

// The daemon's verdict on its key: /status says usable, or why not and what
// to run, so that `orproxy status` reads a field instead of words.
func TestStatusVerdict(t *testing.T) {
	key := secret.New("sk-or-v1-0000000000000000000000000000000000000000000000000000000000a1b2")
	other := secret.New("sk-or-v1-0000000000000000000000000000000000000000000000000000000000e5f6")
	earlier := time.Now().Add(-time.Minute)
	past := time.Now().Add(-time.Hour)
	manual := func() *Credential { return &Credential{Source: SourceManual, APIKey: key} }
	tests := []struct {
		name    string
		set     func(m *Manager)
		problem string // "" for usable
	}{
		{name: "nothing known", set: func(m *Manager) { m.cur = manual() }},
		{name: "validated", set: func(m *Manager) { m.cur, m.valid = manual(), validationRecord{at: earlier, result: "ok", key: key} }},
		{name: "validation could not tell", set: func(m *Manager) {
			m.cur, m.valid = manual(), validationRecord{at: earlier, result: "unknown: dial tcp: refused", key: key}
		}},
		{name: "rejected and replaced", set: func(m *Manager) {
			m.cur, m.valid = manual(), validationRecord{at: earlier, result: "rejected; replaced", key: key}
		}},
		{name: "rejected, no replacement", set: func(m *Manager) {
			m.cur, m.valid = manual(), validationRecord{at: earlier, result: "rejected; no replacement: cannot be rotated", key: key}
		}, problem: "the stored key sk-or-v1-…a1b2 is not usable: the daemon found that OpenRouter rejects it (rejected; no replacement: cannot be rotated); run `orproxy login`"},
		{name: "rejected, another key stored since", set: func(m *Manager) {
			// A rotation, or `orproxy login` in another process, brought
			// this key after the check at start rejected the one before.
			m.cur, m.valid = manual(), validationRecord{at: earlier, result: "rejected; no replacement: broker down", key: other}
		}},
		{name: "the broker's new key rejected too", set: func(m *Manager) {
			m.cur = manual()
			m.rotation.failures, m.rotation.dead, m.rotation.lastErr = 2, key, reasonDeadKey
		}, problem: "OpenRouter rejected it and the daemon could not replace it (" + reasonDeadKey + ")"},
		{name: "the rejected key handed back", set: func(m *Manager) {
			m.cur = manual()
			m.rotation.failures, m.rotation.lastErr = 1, "the broker returned the key OpenRouter had just rejected"
		}, problem: "could not replace it"},
		{name: "rotation failed before expiry, key still good", set: func(m *Manager) {
			m.cur = manual()
			m.rotation.failures, m.rotation.lastErr = 1, "broker: dial tcp: connection refused"
		}},
		{name: "expired", set: func(m *Manager) {
			m.cur = manual()
			m.cur.KeyExpiresAt = past
		}, problem: "the stored key sk-or-v1-…a1b2 expired 60 minutes ago; run `orproxy login`"},
		{name: "not logged in", problem: "not logged in: no credential is stored; run `orproxy login --method openrouter`"},
		{name: "unreadable file, no key", set: func(m *Manager) { m.fileErr = "credentials.json is not valid JSON" }, problem: "credentials.json is not valid JSON"},
		{name: "unreadable file, the last good key in use", set: func(m *Manager) {
			m.cur, m.fileErr = manual(), "credentials.json is not valid JSON"
		}},
		{name: "waiting for a login", set: func(m *Manager) { m.login.url = "https://broker.example/start?state=x" },
			problem: "the daemon has no usable key and waits for a login at https://broker.example/start?state=x; run `orproxy login`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(ManagerOptions{Store: NewStore(filepath.Join(t.TempDir(), "credentials.json"))})
			if tt.set != nil {
				tt.set(m)
			}
			m.mu.RLock()
			s := m.statusLocked()
			m.mu.RUnlock()
			if tt.problem == "" {
				assert.True(t, s.Usable)
				assert.Empty(t, s.Problem)
				return
			}
			assert.False(t, s.Usable)
			assert.Contains(t, s.Problem, tt.problem)
			assert.NotContains(t, s.Problem, key.Reveal())
		})
	}
}

// A key stored while the daemon is idle (`orproxy login` with the daemon
// running) shows in /status at once, as the next request would get it, not
// after the idle file check.
func TestStatusSeesTheFileAsItIsNow(t *testing.T) {
	store := NewStore(filepath.Join(t.TempDir(), "credentials.json"))
	m := NewManager(ManagerOptions{Store: store, IdleFileCheck: time.Hour})
	s := m.Status()
	assert.False(t, s.Usable)
	assert.Contains(t, s.Problem, "not logged in")

	key := secret.New("sk-or-v1-0000000000000000000000000000000000000000000000000000000000c3d4")
	require.NoError(t, store.Save(context.Background(), &Credential{Source: SourceManual, APIKey: key}))
	s = m.Status()
	assert.True(t, s.Usable, s.Problem)
	assert.Equal(t, key.String(), s.Key)
}

// The daemon's own calls (the key poller) never start an automatic login:
// with no credential UsableKey says so, and the login is not run; with one
// it is the key in use.
func TestUsableKeyNeverStartsALogin(t *testing.T) {
	store := NewStore(filepath.Join(t.TempDir(), "credentials.json"))
	logins := 0
	m := NewManager(ManagerOptions{Store: store, AutoLogin: func(context.Context, func(string)) error {
		logins++
		return nil
	}})
	_, err := m.UsableKey()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not logged in")
	assert.Zero(t, logins)

	key := secret.New("sk-or-v1-0000000000000000000000000000000000000000000000000000000000c3d4")
	require.NoError(t, store.Save(context.Background(), &Credential{Source: SourceManual, APIKey: key}))
	got, err := m.UsableKey()
	require.NoError(t, err)
	assert.Equal(t, key, got)
	assert.Zero(t, logins)
}
