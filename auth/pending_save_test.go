package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

func TestPendingSave(t *testing.T) {
	p := pendingSave{retry: backoff.Policy{Base: time.Second, Max: 3 * time.Second}}
	now := time.Now()
	_, ok := p.next()
	assert.False(t, ok, "nothing pending")
	assert.Nil(t, p.due(now))

	first := fullCredential()
	replaced := secret.New("sk-or-v1-the-key-the-rotation-replaced")
	p.keep(first, replaced, errors.New("disk full"), now)
	assert.Equal(t, "disk full", p.err)
	at, ok := p.next()
	assert.True(t, ok)
	assert.Equal(t, now.Add(time.Second), at)
	assert.Nil(t, p.due(now), "not due before the first retry")
	assert.Same(t, first, p.due(at))

	// Each failed retry waits twice as long, up to the cap.
	for _, want := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		p.failedAgain(errors.New("still full"), now)
		at, _ := p.next()
		assert.Equal(t, now.Add(want), at)
	}
	assert.Equal(t, "still full", p.err)
	p.retryNow(now)
	assert.Same(t, first, p.due(now))

	// A file that still holds the replaced key is older than the pending one;
	// a second rotation that also fails to save keeps that knowledge.
	second := first.Clone()
	second.APIKey = secret.New("sk-or-v1-the-second-unsaved-key")
	p.keep(second, first.APIKey, errors.New("disk full"), now)
	assert.True(t, p.olderOnDisk(&Credential{APIKey: replaced}))
	assert.False(t, p.olderOnDisk(&Credential{APIKey: first.APIKey}))
	assert.Equal(t, now.Add(time.Second), p.at, "a new key starts the pacing afresh")

	p.clear()
	_, ok = p.next()
	assert.False(t, ok)
	assert.Empty(t, p.err)
	assert.False(t, p.olderOnDisk(&Credential{APIKey: replaced}), "nothing pending, nothing is older")
}
