package auth

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/orproxy/orproxy/internal/backoff"
)

// pathLocks serialises the goroutines of this process per lock file before
// they compete for the file lock, so they wait on a channel instead of
// polling. The file lock alone would also exclude them (each attempt opens
// its own file description), but only by polling.
var pathLocks = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

func pathLock(path string) chan struct{} {
	pathLocks.Lock()
	defer pathLocks.Unlock()
	ch, ok := pathLocks.m[path]
	if !ok {
		ch = make(chan struct{}, 1)
		pathLocks.m[path] = ch
	}
	return ch
}

// lock takes the advisory lock that guards read-modify-write cycles on the
// credential file, waiting until ctx is done. It excludes other goroutines of
// this process as well as other processes. The lock lives on <path>.lock, not
// on the credential file itself: on Windows the lock is mandatory and would
// block lock-free readers, and the credential file is replaced by every save.
// The lock file is never removed, because removing it would let two
// processes hold "the" lock on two different files.
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	// select picks at random among ready cases; a done ctx must not win
	// the lock by chance.
	if ctx.Err() != nil {
		return nil, fmt.Errorf("lock credential file: %w", context.Cause(ctx))
	}
	sem := pathLock(s.lockPath())
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("lock credential file: %w", context.Cause(ctx))
	}
	release := func() { <-sem }
	if err := privateDir(filepath.Dir(s.path)); err != nil {
		release()
		return nil, fmt.Errorf("lock credential file: %w", err)
	}
	fl := flock.New(s.lockPath(), flock.SetPermissions(0o600))
	if err := tryLock(ctx, fl); err != nil {
		release()
		return nil, fmt.Errorf("lock credential file %s: %w", s.lockPath(), err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// Unlock also closes the descriptor; the kernel drops the lock
			// with it even if Unlock reports an error.
			_ = fl.Unlock()
			release()
		})
	}, nil
}

// lockPoll paces tryLock: short first waits keep an uncontended handover
// fast, the cap keeps a long wait cheap.
var lockPoll = backoff.Policy{Base: time.Millisecond, Max: 32 * time.Millisecond}

// tryLock polls the non-blocking lock: a blocking flock(2) cannot be
// abandoned when ctx ends.
func tryLock(ctx context.Context, fl *flock.Flock) error {
	for try := 0; ; try++ {
		ok, err := fl.TryLock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		t := time.NewTimer(lockPoll.Delay(try))
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
