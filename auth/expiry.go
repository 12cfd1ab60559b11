package auth

import (
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
)

// minShortLivedUse is the least time a short-lived key is used before it is
// rotated ahead of its expiry, so a broker that issues keys already expired
// is asked at most this often.
const minShortLivedUse = 30 * time.Second

// expiryTimer says when a broker key is due for rotation ahead of its
// expiry, and puts the next attempt off, paced by retry, after one failed.
// The Manager's mu guards it.
type expiryTimer struct {
	// window is how long before its expiry a key is rotated
	// (credentials.rotate_before_expiry).
	window time.Duration
	retry  backoff.Policy

	failures int
	retryAt  time.Time
}

// due is when c should be rotated; false for a key that does not expire or
// cannot be rotated.
func (e *expiryTimer) due(c *Credential) (time.Time, bool) {
	if c == nil || c.Source != SourceBroker || c.RefreshToken.IsZero() || c.KeyExpiresAt.IsZero() {
		return time.Time{}, false
	}
	at := c.KeyExpiresAt.Add(-e.window)
	if life, short := e.shortLived(c); short {
		// Each such key would be due the moment it arrives, and rotating it
		// would only fetch another like it, without end: use it for half
		// its life.
		at = c.UpdatedAt.Add(max(life/2, minShortLivedUse))
	}
	if e.retryAt.After(at) {
		at = e.retryAt
	}
	return at, true
}

// shortLived reports whether c's key was issued with no more life than the
// window, and how much life it was issued with.
func (e *expiryTimer) shortLived(c *Credential) (time.Duration, bool) {
	if c.UpdatedAt.IsZero() || c.KeyExpiresAt.IsZero() {
		return 0, false
	}
	life := c.KeyExpiresAt.Sub(c.UpdatedAt)
	return life, life <= e.window
}

// failed puts the next attempt off and returns when it is.
func (e *expiryTimer) failed(now time.Time) time.Time {
	e.failures++
	e.retryAt = now.Add(e.retry.Delay(e.failures - 1))
	return e.retryAt
}

// reset clears the retry state, for a new key.
func (e *expiryTimer) reset() { e.failures, e.retryAt = 0, time.Time{} }
