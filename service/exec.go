//go:build !windows

package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Bounds for the commands this package runs itself. kardianos/service runs
// its own systemctl/launchctl calls without a timeout; those wait only for
// jobs that the unit bounds (TimeoutStopSec) and never for a password
// prompt, because the system scope is refused up front without root.
const (
	queryTimeout  = 10 * time.Second
	actionTimeout = 60 * time.Second
)

type cmdResult struct {
	stdout, stderr string
	err            error
}

// runCmd runs a command with a deadline and keeps its stderr, which is what
// the user needs to see when a service manager refuses something.
func runCmd(ctx context.Context, timeout time.Duration, name string, args ...string) cmdResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that leaves a grandchild holding the pipes must not keep us
	// waiting past the deadline.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s did not finish within %s", name, timeout)
	}
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// reason is the best one-line account of a failed command: its stderr, else
// its stdout, else the error itself.
func (r cmdResult) reason() string {
	if s := oneLine(r.stderr); s != "" {
		return s
	}
	if s := oneLine(r.stdout); s != "" {
		return s
	}
	if r.err != nil {
		return r.err.Error()
	}
	return ""
}

// oneLine squeezes a service manager's stderr into a single line of bounded
// length, so it fits the "one line on stderr" rule of the command line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	out := strings.Join(parts, " / ")
	const limit = 400
	if len(out) > limit {
		cut := limit
		for cut > 0 && !isRuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
