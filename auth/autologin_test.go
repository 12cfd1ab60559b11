package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// scriptedLogin is a login the test finishes: it shows its URL, then waits
// for finish (or its context) and returns what finish says.
type scriptedLogin struct {
	runs     atomic.Int32
	shown    chan struct{}
	finish   chan error
	canceled chan error
}

func newScriptedLogin() *scriptedLogin {
	return &scriptedLogin{shown: make(chan struct{}, 10), finish: make(chan error, 1), canceled: make(chan error, 1)}
}

func (s *scriptedLogin) run(ctx context.Context, show func(string)) error {
	s.runs.Add(1)
	show("https://broker.example/start?state=s")
	s.shown <- struct{}{}
	select {
	case err := <-s.finish:
		return err
	case <-ctx.Done():
		s.canceled <- ctx.Err()
		return ctx.Err()
	}
}

const noCred = "no credential is stored"

func newAutoLogin(s *scriptedLogin, stop <-chan struct{}) *autoLogin {
	return &autoLogin{run: s.run, timeout: 10 * time.Second, command: "`orproxy login`", log: zap.NewNop(), stop: stop, mu: &sync.RWMutex{}}
}

func (a *autoLogin) record() loginRecord {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.loginRecord
}

func TestAutoLoginIsSharedByTheRequestsThatWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScriptedLogin()
		a := newAutoLogin(s, nil)
		assert.True(t, a.enabled())

		const n = 10
		errs := make(chan error, n)
		for range n {
			go func() { errs <- a.wait(context.Background(), noCred) }()
		}
		synctest.Wait() // every request waits: one in the login, the rest on it
		<-s.shown
		rec := a.record()
		assert.Equal(t, "https://broker.example/start?state=s", rec.url, "the URL is on show while the login waits")
		assert.False(t, rec.started.IsZero())

		// A request that gives up stops waiting; the login goes on for the rest.
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, a.wait(gone, noCred), context.Canceled)

		s.finish <- nil
		for range n {
			assert.NoError(t, <-errs)
		}
		assert.EqualValues(t, 1, s.runs.Load(), "one login for all")
		assert.Equal(t, loginRecord{started: rec.started}, a.record(), "no URL once done, no error")
	})
}

func TestAutoLoginFailureSaysWhereTheLoginWaited(t *testing.T) {
	s := newScriptedLogin()
	a := newAutoLogin(s, nil)
	s.finish <- errors.New("no answer from the browser within 5m0s")
	err := a.wait(testCtx(t), noCred)
	require.EqualError(t, err, "no credential is stored and nobody finished the login at https://broker.example/start?state=s (no answer from the browser within 5m0s); run `orproxy login`")
	assert.Equal(t, "no answer from the browser within 5m0s", a.record().lastErr)
	assert.Empty(t, a.record().url)

	// The next request starts a new login.
	s.finish <- nil
	require.NoError(t, a.wait(testCtx(t), noCred))
	assert.EqualValues(t, 2, s.runs.Load())
	assert.Empty(t, a.record().lastErr)

	failing := &autoLogin{run: func(context.Context, func(string)) error { return errors.New("broker unreachable") },
		timeout: time.Second, command: "`orproxy login`", log: zap.NewNop(), mu: &sync.RWMutex{}}
	assert.EqualError(t, failing.wait(testCtx(t), noCred), "no credential is stored and the automatic login failed (broker unreachable); run `orproxy login`")
}

func TestAutoLoginEndsWhenTheManagerStops(t *testing.T) {
	s := newScriptedLogin()
	stop := make(chan struct{})
	a := newAutoLogin(s, stop)
	done := make(chan error, 1)
	go func() { done <- a.wait(context.Background(), noCred) }()
	<-s.shown
	close(stop)
	assert.ErrorIs(t, <-s.canceled, context.Canceled)
	assert.ErrorContains(t, <-done, "nobody finished the login")

	bounded := newAutoLogin(newScriptedLogin(), nil)
	bounded.timeout = 50 * time.Millisecond
	assert.ErrorContains(t, bounded.wait(testCtx(t), noCred), context.DeadlineExceeded.Error(), "bounded by its own timeout")
}

func TestNoAutoLogin(t *testing.T) {
	var a autoLogin
	assert.False(t, a.enabled())
}

// wait starts a login for why, or joins the one under way, and returns when
// it ends or ctx does; the login itself goes on for the others.
func (a *autoLogin) wait(ctx context.Context, why string) error {
	at := a.join(why)
	select {
	case <-at.done:
		return at.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
