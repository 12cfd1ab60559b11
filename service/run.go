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

// stopTimeout bounds how long a stop request waits for run to return. It is
// below the unit's TimeoutStopSec (20 s), so the process reports the overrun
// itself before systemd kills it.
var stopTimeout = 15 * time.Second

// interactive is a variable so tests can play a service manager.
var interactive = service.Interactive

// RunServe runs the proxy until ctx ends or the service manager asks it to
// stop. Started by a service manager (service.Interactive() false), run goes
// through kardianos' Run: a stop request (SIGTERM from systemd or launchd, a
// Stop control from the Windows service manager) cancels run's context and
// waits up to 15 s for run to return. Run from a terminal it simply calls
// run(ctx), and the caller handles SIGINT and SIGTERM.
//
// run must return once its context is cancelled; RunServe returns its error.
func RunServe(ctx context.Context, run func(ctx context.Context) error) error {
	if interactive() {
		return run(ctx)
	}
	// Registered before run starts, so a stop that arrives at once is seen.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	p := &program{run: run, parent: ctx, done: make(chan struct{})}
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
	case <-time.After(stopTimeout):
		return fmt.Errorf("the proxy did not stop within %s of the stop request", stopTimeout)
	}
}
