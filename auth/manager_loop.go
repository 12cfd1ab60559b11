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
	next, ok := m.save.next()
	if at, due := m.expiryRotationAtLocked(); due && (!ok || at.Before(next)) {
		next, ok = at, true
	}
	return next, ok
}

// expiryRotationAtLocked is when the current key should be rotated ahead of
// its expiry: when the timer says, but not while rotations back off.
func (m *Manager) expiryRotationAtLocked() (time.Time, bool) {
	at, ok := m.expiry.due(m.cur)
	if ok && m.rotation.notBefore.After(at) {
		at = m.rotation.notBefore
	}
	return at, ok
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
		m.expiry.reset()
		return
	}
	next := m.expiry.failed(time.Now())
	m.log.Warn("rotation ahead of expiry failed; will try again", zap.Time("next_attempt", next), zap.Error(res.Err))
}

// retrySave stores a key the broker issued that an earlier save could not,
// unless another process has stored a newer credential since.
func (m *Manager) retrySave() {
	m.mu.RLock()
	pending := m.save.due(time.Now())
	m.mu.RUnlock()
	if pending == nil {
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
	if m.save.cred != pending {
		return
	}
	if err != nil {
		m.save.failedAgain(err, time.Now())
		m.log.Warn("saving the new key failed again; it stays in memory", zap.Time("next_attempt", m.save.at), zap.Error(err))
		return
	}
	m.stamp, m.fileErr = saved, ""
	m.save.clear()
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
		// Not Replace: only a client's request may start a login; the
		// first one to meet the rejection does, and learns its URL.
		next, rerr := m.replace(ctx, cur.APIKey)
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
	m.valid = validationRecord{at: time.Now(), result: result, key: cur.APIKey}
	m.mu.Unlock()
}
