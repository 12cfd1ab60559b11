package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// autoLogin runs the login that requests finding no credential ask for, one
// at a time: a request that comes while one runs joins it. Its
// loginRecord, for /status, is guarded by mu, the Manager's lock, so the
// status reads it with the rest.
type autoLogin struct {
	// run logs in and stores the credential; show gets the URL the user
	// must open. Nil: no automatic login.
	run     func(ctx context.Context, show func(url string)) error
	timeout time.Duration
	log     *zap.Logger
	// stop ends a login under way (the Manager closes).
	stop <-chan struct{}
	mu   *sync.RWMutex

	sf singleflight.Group
	loginRecord
}

type loginRecord struct {
	url     string // while a login waits for the user
	started time.Time
	lastErr string
}

func (a *autoLogin) enabled() bool { return a.run != nil }

// wait starts a login, or joins the one under way, and returns when it
// ends or ctx does; the login itself goes on for the others.
func (a *autoLogin) wait(ctx context.Context) error {
	ch := a.sf.DoChan("login", func() (any, error) { return nil, a.once() })
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *autoLogin) once() error {
	// Its own deadline: the request that started it may go away, the
	// others waiting on it must not lose it.
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	a.mu.Lock()
	a.loginRecord = loginRecord{started: time.Now()}
	a.mu.Unlock()
	err := a.run(ctx, func(url string) {
		a.mu.Lock()
		a.url = url
		a.mu.Unlock()
		a.log.Warn("no credential stored; open this URL to log in", zap.String("url", url))
	})
	a.mu.Lock()
	url := a.url
	a.url, a.lastErr = "", ""
	if err != nil {
		a.lastErr = err.Error()
	}
	a.mu.Unlock()
	if err == nil {
		return nil
	}
	a.log.Warn("automatic login did not finish", zap.Error(err))
	if url != "" {
		return fmt.Errorf("no credential is stored and nobody finished the login at %s (%v); run `orproxy login`", url, err)
	}
	return fmt.Errorf("no credential is stored and the automatic login failed (%v); run `orproxy login`", err)
}
