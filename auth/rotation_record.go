package auth

import (
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

// FailuresBeforeBackoff is how many rotations in a row may fail before
// further attempts wait: a broker that keeps failing is not hammered.
const FailuresBeforeBackoff = 3

// rotationRecord counts the daemon's rotations for /status and holds the
// backoff: after FailuresBeforeBackoff failures in a row, attempts wait as
// backoff says. The Manager's mu guards it.
type rotationRecord struct {
	backoff backoff.Policy

	count   int
	lastAt  time.Time
	lastErr string
	// lastKind is the kind of the last failure (ErrBrokerFailed,
	// ErrRefreshRejected, …): a backoff after a refused refresh token is
	// still a case for a login, not a broker to wait for.
	lastKind  error
	failures  int       // in a row
	notBefore time.Time // while backing off
	// issued is the key the last rotation brought, until OpenRouter rejects
	// it; before is failures as they stood before that rotation. A success
	// clears failures at once, as the key usually works; should OpenRouter
	// reject it, the rotation failed after all and counts on top of before,
	// so a broker handing out dead keys reaches the backoff.
	issued secret.Secret
	before int
	// dead is the last issued key that OpenRouter rejected.
	dead secret.Secret
}

// issue records a rotation that brought key.
func (r *rotationRecord) issue(key secret.Secret) {
	r.lastErr, r.lastKind = "", nil
	r.before, r.issued = r.failures, key
	r.failures, r.notBefore = 0, time.Time{}
}

// done counts a rotation once its key is saved or its save failed, so
// /status never runs ahead of the file.
func (r *rotationRecord) done(now time.Time) {
	r.count++
	r.lastAt = now
}

// fail records a failed rotation and returns how long attempts wait now.
func (r *rotationRecord) fail(what string, kind error, now time.Time) time.Duration {
	r.failures++
	r.lastErr, r.lastKind = what, kind
	r.backOff(now)
	return r.wait(now)
}

func (r *rotationRecord) backOff(now time.Time) {
	if r.failures >= FailuresBeforeBackoff {
		r.notBefore = now.Add(r.backoff.Delay(r.failures - FailuresBeforeBackoff))
	}
}

// rejected records that OpenRouter rejected key, and reports whether that
// made the rotation that issued it a failure; it does so once per key.
func (r *rotationRecord) rejected(key secret.Secret, now time.Time) bool {
	if key.IsZero() || key != r.issued {
		return false
	}
	r.failures = r.before + 1
	r.lastErr = reasonDeadKey
	r.issued, r.dead = secret.Secret{}, key
	r.backOff(now)
	return true
}

// isDead reports whether key is the last one the broker issued that
// OpenRouter rejected, and that is still why rotations back off.
func (r *rotationRecord) isDead(key secret.Secret) bool {
	return !key.IsZero() && key == r.dead && r.lastErr == reasonDeadKey
}

// accept ends key's probation: it has worked, so a later 401 for it is no
// verdict on the rotation that brought it.
func (r *rotationRecord) accept(key secret.Secret) {
	if !key.IsZero() && key == r.issued {
		r.issued, r.before = secret.Secret{}, 0
	}
}

// wait is how long rotation attempts must still wait.
func (r *rotationRecord) wait(now time.Time) time.Duration { return r.notBefore.Sub(now) }

// reset gives a credential that came from elsewhere fresh attempts.
func (r *rotationRecord) reset() {
	r.failures, r.notBefore = 0, time.Time{}
	r.issued, r.before = secret.Secret{}, 0
}
