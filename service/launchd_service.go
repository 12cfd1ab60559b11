//go:build !windows

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kardianos/service"
)

// launchdService is the kardianos Service of the launchd platform: every
// action goes through launchctl (see launchctl) rather than kardianos'
// load/unload. Its errors are *Error already.
type launchdService struct {
	l   *launchctl
	def Definition
}

// failedStateWords are kardianos' words for a failed service, which Status
// (service.go) reports as "failed".
const failedStateWords = "service in failed state"

func (s *launchdService) Start() error { return s.l.start(context.Background(), "start") }

func (s *launchdService) Stop() error { return s.l.stop(context.Background(), "stop") }

// Restart boots the job out, waits until launchd has let it go, and loads
// it again. A stopped service is not loaded, so the bootout has nothing to
// do and the restart starts it.
func (s *launchdService) Restart() error {
	ctx := context.Background()
	if err := s.l.stop(ctx, "restart"); err != nil {
		return err
	}
	return s.l.start(ctx, "restart")
}

// Install writes the plist; loading it is Start.
func (s *launchdService) Install() error { return writePlist(s.l.sc, s.l.plist, s.def) }

// Uninstall takes the job out of launchd (waiting until it is gone, so a
// new install can load it at once) and removes the plist.
func (s *launchdService) Uninstall() error {
	if err := s.l.stop(context.Background(), "uninstall"); err != nil {
		return err
	}
	if err := os.Remove(s.l.plist); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return newError(ErrManager, err, fmt.Sprintf("cannot remove %s: %v: %s", s.l.plist, err, darwinPermissionHint(s.l.sc, "uninstall")))
	}
	return nil
}

// Status: running, stopped (not loaded, or loaded and ended cleanly), or
// failed: loaded, not running, and its last run ended with an error.
func (s *launchdService) Status() (service.Status, error) {
	st, err := s.l.status(context.Background())
	switch {
	case err != nil:
		return service.StatusUnknown, err
	case st.running():
		return service.StatusRunning, nil
	case st.failed():
		return service.StatusUnknown, fmt.Errorf("%s: %s, and launchd starts it again every %d s", failedStateWords, st.describe(), launchdThrottleSeconds)
	default:
		return service.StatusStopped, nil
	}
}

// Run is never called: the control commands only manage the job, and
// `orproxy serve` runs under kardianos' own darwin Service (RunServe).
func (s *launchdService) Run() error {
	return errors.New("the launchd controller does not run the proxy; `orproxy serve` does")
}

func (s *launchdService) Logger(chan<- error) (service.Logger, error) {
	return nil, errors.New("the launchd controller has no logger")
}

func (s *launchdService) SystemLogger(chan<- error) (service.Logger, error) {
	return nil, errors.New("the launchd controller has no logger")
}

func (s *launchdService) String() string   { return s.l.label }
func (s *launchdService) Platform() string { return "darwin-launchd" }
