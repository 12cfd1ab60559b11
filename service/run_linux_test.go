//go:build linux

package service

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func playServiceManager(t *testing.T) {
	forceSystemd(t)
	saved := interactive
	interactive = func() bool { return false }
	t.Cleanup(func() { interactive = saved })
}

// blockingRun runs until its context ends and reports that it started.
func blockingRun(started chan<- struct{}, result error) func(context.Context) error {
	return func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return result
	}
}

func runAsync(ctx context.Context, run func(context.Context) error) <-chan error {
	return runAsyncDrain(ctx, 0, run)
}

func runAsyncDrain(ctx context.Context, drain time.Duration, run func(context.Context) error) <-chan error {
	out := make(chan error, 1)
	go func() { out <- RunServe(ctx, drain, run) }()
	return out
}

func within(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("RunServe did not return")
		return nil
	}
}

func TestRunServeInteractiveCallsRunDirectly(t *testing.T) {
	saved := interactive
	interactive = func() bool { return true }
	t.Cleanup(func() { interactive = saved })
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "mine")
	want := errors.New("bind: address already in use")
	err := RunServe(ctx, 0, func(got context.Context) error {
		assert.Equal(t, "mine", got.Value(key{}))
		return want
	})
	assert.Same(t, want, err)
}

func TestRunServeStopsOnSIGTERM(t *testing.T) {
	playServiceManager(t)
	started := make(chan struct{})
	done := runAsync(context.Background(), blockingRun(started, nil))
	<-started
	// What systemd and launchd send for `stop`. RunServe has registered for
	// it, so it does not kill the test binary.
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	assert.NoError(t, within(t, done))
}

func TestRunServeStopsWhenTheCallerCancels(t *testing.T) {
	playServiceManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	want := errors.New("drained with errors")
	done := runAsync(ctx, blockingRun(started, want))
	<-started
	cancel()
	assert.Same(t, want, within(t, done))
}

func TestRunServeReturnsWhenRunFailsByItself(t *testing.T) {
	// Without this the process would sit in kardianos' signal wait with a
	// dead proxy, and systemd would never restart it.
	playServiceManager(t)
	want := errors.New("listen tcp 127.0.0.1:8765: bind: address already in use")
	done := runAsync(context.Background(), func(context.Context) error { return want })
	assert.Same(t, want, within(t, done))
}

func TestRunServeBoundsAStuckStop(t *testing.T) {
	playServiceManager(t)
	saved := stopMargin
	stopMargin = 100 * time.Millisecond
	t.Cleanup(func() { stopMargin = saved })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // lets the stuck run end with the test
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := runAsyncDrain(ctx, 100*time.Millisecond, func(context.Context) error {
		close(started)
		<-release // ignores its context
		return nil
	})
	<-started
	cancel()
	err := within(t, done)
	assert.ErrorContains(t, err, "did not stop within")
}
