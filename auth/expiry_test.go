package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

func TestExpiryTimerDue(t *testing.T) {
	issued := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	broker := func(life time.Duration) *Credential {
		return &Credential{Source: SourceBroker, APIKey: secret.New(testKey), RefreshToken: secret.New(testRefresh),
			UpdatedAt: issued, KeyExpiresAt: issued.Add(life)}
	}
	manual := broker(time.Hour)
	manual.Source, manual.RefreshToken = SourceManual, secret.Secret{}
	noToken := broker(time.Hour)
	noToken.RefreshToken = secret.Secret{}
	forever := broker(0)
	forever.KeyExpiresAt = time.Time{}

	e := expiryTimer{window: 2 * time.Hour}
	for _, tc := range []struct {
		name string
		c    *Credential
		want time.Time // zero: never due
	}{
		{"logged out", nil, time.Time{}},
		{"a pasted key", manual, time.Time{}},
		{"no refresh token", noToken, time.Time{}},
		{"does not expire", forever, time.Time{}},
		{"window before expiry", broker(30 * 24 * time.Hour), issued.Add(30*24*time.Hour - 2*time.Hour)},
		{"short-lived: half its life", broker(time.Hour), issued.Add(30 * time.Minute)},
		{"issued nearly expired: 30 s at least", broker(10 * time.Second), issued.Add(30 * time.Second)},
	} {
		at, ok := e.due(tc.c)
		assert.Equal(t, !tc.want.IsZero(), ok, tc.name)
		assert.Equal(t, tc.want, at, tc.name)
	}
}

func TestExpiryTimerBacksOffAfterFailures(t *testing.T) {
	now := time.Now()
	c := &Credential{Source: SourceBroker, APIKey: secret.New(testKey), RefreshToken: secret.New(testRefresh),
		UpdatedAt: now.Add(-time.Hour), KeyExpiresAt: now.Add(time.Minute)}
	e := expiryTimer{window: 2 * time.Minute, retry: backoff.Policy{Base: time.Second, Max: 4 * time.Second}}
	at, _ := e.due(c)
	assert.Equal(t, now.Add(-time.Minute), at, "due already")
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		assert.Equal(t, now.Add(want), e.failed(now))
		at, _ := e.due(c)
		assert.Equal(t, now.Add(want), at, "no sooner than the retry")
	}
	e.reset()
	at, _ = e.due(c)
	assert.Equal(t, now.Add(-time.Minute), at)
}
