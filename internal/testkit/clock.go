package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Clock is a clock a test sets by hand, safe for the goroutines that read it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads at.
func NewClock(at time.Time) *Clock { return &Clock{now: at} }

// Now is the time last set; pass it where code takes a func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Background runs run on a context of its own and returns stop, which
// cancels that context and fails the test unless run returns within 10 s.
// stop also runs at the end of the test; calling it twice is harmless.
func Background(t testing.TB, run func(ctx context.Context)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("a background Run did not return within 10 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
