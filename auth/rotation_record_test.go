package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

func TestRotationRecordBacksOffAfterFailuresInARow(t *testing.T) {
	r := rotationRecord{backoff: backoff.Policy{Base: time.Second, Max: 4 * time.Second}}
	now := time.Now()
	for i, want := range []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		wait := r.fail("broker down", ErrBrokerFailed, now)
		if want == 0 {
			assert.LessOrEqual(t, wait, time.Duration(0), "failure %d: no backoff before %d", i+1, FailuresBeforeBackoff)
			continue
		}
		assert.Equal(t, want, wait, "failure %d", i+1)
	}
	assert.Equal(t, 6, r.failures)
	assert.Equal(t, "broker down", r.lastErr)

	r.issue(secret.New("sk-or-v1-new"))
	assert.Zero(t, r.failures, "a success clears the failures at once")
	assert.LessOrEqual(t, r.wait(now), time.Duration(0))
	assert.Empty(t, r.lastErr)
	r.done(now)
	assert.Equal(t, 1, r.count)
	assert.Equal(t, now, r.lastAt)
}

// A key the broker issued that OpenRouter rejects makes its rotation a
// failure after all, counted on top of the failures before it, once.
func TestRotationRecordDeadKey(t *testing.T) {
	r := rotationRecord{backoff: backoff.Policy{Base: time.Second, Max: 4 * time.Second}}
	now := time.Now()
	r.fail("x", ErrBrokerFailed, now)
	r.fail("y", ErrBrokerFailed, now)
	dead := secret.New("sk-or-v1-dead")
	r.issue(dead)

	assert.False(t, r.isDead(dead))
	assert.True(t, r.rejected(dead, now))
	assert.Equal(t, FailuresBeforeBackoff, r.failures, "two before it, and this one")
	assert.Equal(t, time.Second, r.wait(now))
	assert.Equal(t, reasonDeadKey, r.lastErr)
	assert.True(t, r.isDead(dead))
	assert.False(t, r.rejected(dead, now), "counted once")
	assert.Equal(t, FailuresBeforeBackoff, r.failures)
	assert.False(t, r.rejected(secret.New("sk-or-v1-never-issued"), now))

	r.reset()
	assert.Zero(t, r.failures)
	assert.LessOrEqual(t, r.wait(now), time.Duration(0))
	assert.False(t, r.rejected(dead, now), "after a reset the key is no longer the one a rotation just brought")
}
