package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kardianos/service"
)

// A stop, from the inside out: the proxy lets open requests (streams
// included) finish for up to its drain timeout; RunServe waits stopMargin
// longer than that for run to return; the service manager waits
// managerMargin longer still (TimeoutStopSec, ExitTimeOut) before it kills
// the process, so a drain that overruns is reported by orproxy itself and
// a drain that does not is never cut short.
var stopMargin = 5 * time.Second

const managerMargin = 5 * time.Second

// defaultDrain is how long `orproxy serve` lets open requests finish after a
// stop request: the proxy's default, proxy.DefaultDrainTimeout. It is
// repeated rather than imported so that this package, which only installs,
// starts and stops the binary, does not depend on the HTTP proxy; a test
// keeps the two equal.
const defaultDrain = 30 * time.Second

// drainOrDefault is the drain timeout the proxy uses for d.
func drainOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultDrain
	}
	return d
}

// stopWait is how long a stop request waits for run to return.
func stopWait(drain time.Duration) time.Duration {
	return drainOrDefault(drain) + stopMargin
}

// managerStopTimeout is how long the service manager should wait after its
// stop request before it kills the process.
func managerStopTimeout(drain time.Duration) time.Duration {
	return stopWait(drain) + managerMargin
}

// interactive is a variable so tests can play a service manager.
var interactive = service.Interactive

// RunServe runs the proxy until ctx ends or the service manager asks it to
// stop. Started by a service manager (service.Interactive() false), run goes
// through kardianos' Run: a stop request (SIGTERM from systemd or launchd, a
// Stop control from the Windows service manager) cancels run's context and
// waits for run to return for drain (run's drain timeout; 0 means
// defaultDrain) plus a margin, so open streams finish as they
// do after SIGTERM in a terminal. Run from a terminal it simply calls
// run(ctx), and the caller handles SIGINT and SIGTERM.
//
// run must return once its context is cancelled; RunServe returns its error.
func RunServe(ctx context.Context, drain time.Duration, run func(ctx context.Context) error) error {
	if interactive() {
		return run(ctx)
	}
	rotateServiceLog(os.Stdout, os.Stderr)
	// Registered before run starts, so a stop that arrives at once is seen.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	p := &program{run: run, parent: ctx, stopWait: stopWait(drain), done: make(chan struct{})}
	svc, err := service.New(p, &service.Config{
		Name:        serviceName,
		Description: description,
		Option: service.KeyValue{
			// Replaces kardianos' own wait for a signal, which would not
			// notice run failing on its own (a port already taken) and keep
			// a dead proxy "running" instead of letting the manager restart it.
			"RunWait": func() { p.wait(sigs) },
		},
	})
	if err != nil {
		return fmt.Errorf("cannot run under the service manager: %w", err)
	}
	if err := svc.Run(); err != nil {
		return err
	}
	return p.err
}

// program adapts run to kardianos' Start/Stop interface.
type program struct {
	run    func(context.Context) error
	parent context.Context
	// stopWait bounds how long Stop waits for run to return.
	stopWait time.Duration

	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned; err is set by then
	err    error
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.err = p.run(ctx)
		onOwnReturn(ctx, p.err)
	}()
	return nil
}

// wait returns when the service should stop: a signal, the caller's context,
// or run having returned by itself.
func (p *program) wait(sigs <-chan os.Signal) {
	select {
	case <-sigs:
	case <-p.parent.Done():
	case <-p.done:
	}
}

func (p *program) Stop(service.Service) error {
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-time.After(p.stopWait):
		return fmt.Errorf("the proxy did not stop within %s of the stop request", p.stopWait)
	}
}
