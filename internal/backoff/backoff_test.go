package backoff

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDelay(t *testing.T) {
	p := Policy{Base: time.Second, Max: 30 * time.Second}
	for _, tc := range []struct {
		policy Policy
		n      int
		want   time.Duration
	}{
		{p, -1, time.Second},
		{p, 0, time.Second},
		{p, 1, 2 * time.Second},
		{p, 4, 16 * time.Second},
		{p, 5, 30 * time.Second},
		{p, 1000, 30 * time.Second},
		{Policy{Base: 5 * time.Second, Max: 5 * time.Minute}, 6, 5 * time.Minute},
		{Policy{Base: time.Millisecond, Max: 32 * time.Millisecond}, 5, 32 * time.Millisecond},
		{Policy{Base: 300 * time.Millisecond, Max: 300 * time.Millisecond}, 3, 300 * time.Millisecond},
		{Policy{Base: time.Second, Max: time.Millisecond}, 0, time.Millisecond},
		{Policy{Base: time.Second, Max: math.MaxInt64}, 100, math.MaxInt64},
	} {
		assert.Equal(t, tc.want, tc.policy.Delay(tc.n), "%+v after %d failures", tc.policy, tc.n)
	}
}
