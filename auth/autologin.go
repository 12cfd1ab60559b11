package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/humantime"
)

// autoLogin runs the login that requests finding no usable credential ask
// for, one at a time: a request that comes while one runs joins it. Its
// attempt and loginRecord, for /status, are guarded by mu, the Manager's
// lock, so the status reads them with the rest.
type autoLogin struct {
	// run logs in and stores the credential; show gets the URL the user
	// must open. Nil: no automatic login.
	run     func(ctx context.Context, show func(url string)) error
	timeout time.Duration
	// command is the login a failure tells the user to run.
	command string
	log     *zap.Logger
	// stop ends a login under way (the Manager closes); it is closed with
	// mu held, so no attempt starts after it.
	stop <-chan struct{}
	mu   *sync.RWMutex
	// wg counts the attempts' goroutines, for Close.
	wg sync.WaitGroup

	attempt *loginAttempt // the login under way, if any
	loginRecord
}

type loginRecord struct {
	url     string // while a login waits for the user
	started time.Time
	lastErr string
}

// loginAttempt is one automatic login, shared by every request that waits
// for it.
type loginAttempt struct {
	// why the login runs, for its failure message: "no credential is
	// stored", or why the stored key is of no use.
	why string
	// shown is closed once the login shows its URL, which url then holds.
	shown chan struct{}
	url   string
	// done is closed once the login ends, err then holding its failure as
	// clients read it, nil when a credential was stored.
	done chan struct{}
	err  error
	// cancel ends the login early; superseded says a credential stored
	// meanwhile did, so the login's end is no failure. Both under mu.
	cancel     context.CancelFunc
	superseded bool
	// joined counts the requests that joined it after the one that started
	// it; under mu. Tests wait on it instead of sleeping.
	joined int
}

func (a *autoLogin) enabled() bool { return a.run != nil }

// join returns the login under way, or starts one for why.
func (a *autoLogin) join(why string) *loginAttempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.attempt != nil {
		a.attempt.joined++
		return a.attempt
	}
	at := &loginAttempt{why: why, shown: make(chan struct{}), done: make(chan struct{})}
	select {
	case <-a.stop:
		at.err = fmt.Errorf("%s and orproxy is shutting down; run %s", why, a.command)
		close(at.done)
		return at
	default:
	}
	// Its own deadline: the request that started it may go away, the
	// others waiting on it must not lose it.
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	at.cancel = cancel
	a.attempt = at
	a.loginRecord = loginRecord{started: time.Now()}
	a.wg.Add(1)
	go a.runAttempt(ctx, at)
	return at
}

// supersedeLocked ends the login under way, if any, because a usable
// credential has been stored by other means (a login in another process);
// its waiters then take that credential. mu must be held.
func (a *autoLogin) supersedeLocked() {
	if at := a.attempt; at != nil && !at.superseded {
		at.superseded = true
		at.cancel()
	}
}

func (a *autoLogin) runAttempt(ctx context.Context, at *loginAttempt) {
	defer a.wg.Done()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-a.stop:
			at.cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		at.cancel()
		<-watched
	}()
	var once sync.Once
	err := a.run(ctx, func(url string) {
		once.Do(func() {
			a.mu.Lock()
			a.url, at.url = url, url
			a.mu.Unlock()
			a.log.Warn("no usable credential; open this URL to log in", zap.String("url", url), zap.String("reason", at.why))
			close(at.shown)
		})
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	url := a.url
	a.url, a.lastErr = "", ""
	if at.superseded && err != nil {
		a.log.Info("a credential stored meanwhile ended the automatic login")
		err = nil
	}
	if err != nil {
		a.lastErr = err.Error()
		a.log.Warn("automatic login did not finish", zap.Error(err))
		if url != "" {
			at.err = fmt.Errorf("%s and nobody finished the login at %s (%v); run %s", at.why, url, err, a.command)
		} else {
			at.err = fmt.Errorf("%s and the automatic login failed (%v); run %s", at.why, err, a.command)
		}
	}
	// A request that comes after this starts a new login.
	a.attempt = nil
	close(at.done)
}

// close waits for the login under way, which the closed stop channel ends.
func (a *autoLogin) close() { a.wg.Wait() }

// LoginStartedError answers the request whose key OpenRouter rejected when
// no rotation can replace it: the daemon has started a login instead, and
// the client learns where to finish it rather than waiting minutes for a
// browser. errors.Is matches it to its cause, ErrNeedsLogin among others.
type LoginStartedError struct {
	// URL is the address the user must open.
	URL string
	// Cause says why the key cannot be replaced.
	Cause error
	// Timeout is how long the login, and the requests that wait for it, wait.
	Timeout time.Duration
	// Command is the login to run by hand instead.
	Command string
}

func (e *LoginStartedError) Error() string {
	what := e.Cause.Error()
	var re *RotationError
	if errors.As(e.Cause, &re) && re.What != "" {
		what = re.What
	}
	return fmt.Sprintf("%s; orproxy started a login: open %s to log in (new requests wait up to %s for it), or run %s",
		what, e.URL, humantime.Duration(e.Timeout), e.Command)
}

func (e *LoginStartedError) Unwrap() error { return e.Cause }
