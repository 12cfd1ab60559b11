package auth

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// loop runs the manager's timed work until Close: the start-up validation,
// rotation ahead of expiry, and retries of a save the disk refused. Every
// wait is a timer recomputed after each change, so nothing spins.
func (m *Manager) loop() {
	defer m.wg.Done()
	if m.opts.ValidateOnStart {
		m.validate()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	idle := time.NewTicker(m.opts.IdleFileCheck)
	defer idle.Stop()
	for {
		next, ok := m.nextWake()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var fire <-chan time.Time
		if ok {
			timer.Reset(max(time.Until(next), 0))
			fire = timer.C
		}
		select {
		case <-m.stop:
			return
		case <-m.wake:
		case <-idle.C:
			// Requests check the file themselves; this covers quiet hours.
			// A change found here nudges wake, which recomputes the timer.
			m.syncWithFile()
		case <-fire:
			m.retrySave()
			m.rotateIfExpiring()
		}
	}
}

// nextWake is the earliest of the pending save retry and the expiry rotation.
func (m *Manager) nextWake() (time.Time, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var next time.Time
	if m.pending != nil {
		next = m.saveAt
	}
	if at, ok := m.expiryRotationAtLocked(); ok && (next.IsZero() || at.Before(next)) {
		next = at
	}
	return next, !next.IsZero()
}

// expiryRotationAtLocked is when the current key should be rotated ahead of
// its expiry, later if the last attempt failed.
func (m *Manager) expiryRotationAtLocked() (time.Time, bool) {
	c := m.cur
	if c == nil || c.Source != SourceBroker || c.RefreshToken.IsZero() || c.KeyExpiresAt.IsZero() {
		return time.Time{}, false
	}
	at := c.KeyExpiresAt.Add(-m.opts.RotateBeforeExpiry)
	if life, short := shortLived(c, m.opts.RotateBeforeExpiry); short {
		// The broker issues keys that live no longer than the window: each
		// would be due the moment it arrives, and rotating it would only
		// fetch another one like it, without end. Use it for half its life.
		at = c.UpdatedAt.Add(max(life/2, minShortLivedUse))
	}
	if m.expiry.at.After(at) {
		at = m.expiry.at
	}
	if m.rotation.notBefore.After(at) {
		at = m.rotation.notBefore
	}
	return at, true
}

// minShortLivedUse is the least time a short-lived key is used before it is
// rotated ahead of its expiry, so a broker that issues keys already expired
// is asked at most this often.
const minShortLivedUse = 30 * time.Second

// shortLived reports whether c's key was issued with no more life than the
// rotation window, and how much life it was issued with.
func shortLived(c *Credential, window time.Duration) (time.Duration, bool) {
	if c.UpdatedAt.IsZero() || c.KeyExpiresAt.IsZero() {
		return 0, false
	}
	life := c.KeyExpiresAt.Sub(c.UpdatedAt)
	return life, life <= window
}

func (m *Manager) rotateIfExpiring() {
	m.mu.RLock()
	at, ok := m.expiryRotationAtLocked()
	var key = m.cur
	m.mu.RUnlock()
	if !ok || time.Now().Before(at) {
		return
	}
	ch := m.sf.DoChan("rotate", func() (any, error) {
		return m.rotate(key.APIKey, "the key expires at "+key.KeyExpiresAt.Format(time.RFC3339))
	})
	var res = <-ch
	m.mu.Lock()
	defer m.mu.Unlock()
	if res.Err == nil {
		m.expiry = retryState{}
		return
	}
	m.expiry.failures++
	m.expiry.at = time.Now().Add(m.retryPolicy.Delay(m.expiry.failures - 1))
	m.log.Warn("rotation ahead of expiry failed; will try again", zap.Time("next_attempt", m.expiry.at), zap.Error(res.Err))
}

// retrySave stores a key the broker issued that an earlier save could not,
// unless another process has stored a newer credential since.
func (m *Manager) retrySave() {
	m.mu.RLock()
	pending, due := m.pending, !m.saveAt.After(time.Now())
	m.mu.RUnlock()
	if pending == nil || !due {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var saved fileStamp
	unlock, err := m.opts.Store.lock(ctx)
	if err == nil {
		defer unlock()
		disk, st, derr := m.opts.Store.loadStamped()
		m.mu.RLock()
		changed := derr == nil && !st.equal(m.stamp)
		m.mu.RUnlock()
		if changed {
			m.mu.Lock()
			adopted := m.adoptLocked(disk, st, "credential changed on disk while a save was pending")
			m.mu.Unlock()
			if adopted {
				return
			}
		}
		saved, err = m.opts.Store.saveLocked(pending)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending != pending {
		return
	}
	if err != nil {
		m.saveErr = err.Error()
		m.saveAt = time.Now().Add(m.retryPolicy.Delay(m.saveTry))
		m.saveTry++
		m.log.Warn("saving the new key failed again; it stays in memory", zap.Time("next_attempt", m.saveAt), zap.Error(err))
		return
	}
	m.stamp = saved
	m.pending, m.saveErr, m.saveTry, m.fileErr = nil, "", 0, ""
	m.log.Info("saved the key the broker issued earlier", zap.String("file", m.opts.Store.Path()))
}

// validate checks the stored key with OpenRouter once. A rejection starts a
// rotation; a network failure or a 5xx proves nothing and changes nothing.
func (m *Manager) validate() {
	m.mu.RLock()
	cur := m.cur
	m.mu.RUnlock()
	if cur == nil || m.opts.Check == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go func() {
		// Close must not wait for a slow OpenRouter.
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := m.opts.Check(ctx, cur.APIKey)
	result := "ok"
	switch {
	case err == nil:
		m.log.Info("stored key accepted by OpenRouter")
	case IsKeyRejected(err):
		result = "rejected"
		m.log.Warn("OpenRouter rejects the stored key; replacing it", zap.Error(err))
		next, rerr := m.Replace(ctx, cur.APIKey)
		switch {
		case rerr != nil:
			result = "rejected; no replacement: " + rerr.Error()
		case IsKeyRejected(m.opts.Check(ctx, next)):
			// Checked as a request's retry would be, so a broker handing
			// out dead keys is found at start, not by the first client.
			result = "rejected; the replacement was rejected too: " + m.Rejected(next).Error()
		default:
			result = "rejected; replaced"
		}
	default:
		result = "unknown: " + err.Error()
		m.log.Warn("could not check the stored key with OpenRouter; carrying on with it", zap.Error(err))
	}
	m.mu.Lock()
	m.valid = validationRecord{at: time.Now(), result: result}
	m.mu.Unlock()
}
