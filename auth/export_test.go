package auth

import (
	"context"
	"errors"
	"fmt"
)

// Update plays another orproxy process that changes the credential file: it
// re-reads the file under the lock (fn gets nil when there is none, and is
// not called for a corrupt one), and stores what fn returns unless that is
// nil. It returns the credential stored at the end.
func (s *Store) Update(ctx context.Context, fn func(cur *Credential) (*Credential, error)) (*Credential, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s.removeTempFiles()
	cur, err := s.Load()
	switch {
	case errors.Is(err, ErrNoCredential):
		cur = nil
	case err != nil:
		return nil, err
	}
	next, err := fn(cur.Clone())
	if err != nil {
		return nil, fmt.Errorf("update credential: %w", err)
	}
	if next == nil {
		return cur, nil
	}
	if _, err := s.saveLocked(next); err != nil {
		return nil, err
	}
	return s.Load()
}

// Lock holds the credential file's lock, as a process in a rotation does.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) { return s.lock(ctx) }

// LoginJoined is how many requests joined the automatic login under way
// after the one that started it; 0 when none runs.
func (m *Manager) LoginJoined() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.login.attempt == nil {
		return 0
	}
	return m.login.attempt.joined
}
