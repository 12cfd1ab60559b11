//go:build !windows

package service

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// launchctl drives launchd for the orproxy job with launchctl's domain
// commands (bootstrap, bootout, enable, print), naming the domain in every
// call: gui/<uid> for the LaunchAgent, system for the LaunchDaemon.
// kardianos/service uses the legacy load/unload instead, which guess the
// domain, and restarts with unload, 50 ms of sleep and load. An unload only
// starts the job's exit, which may take the whole drain of open streams
// (the plist's ExitTimeOut), and a load meanwhile fails with "Input/output
// error", leaving the service unloaded. Here a stop waits until launchd has
// let the job go before anything loads it again.
type launchctl struct {
	sc    scope
	uid   int
	label string
	// plist is the job's definition file, which bootstrap loads.
	plist string
	// wait bounds how long a stop waits for launchd to let the job go: the
	// plist's ExitTimeOut and a margin.
	wait time.Duration
	// poll is the pause between two looks at the job while waiting.
	poll time.Duration
	// logs says where the proxy's own log is, for messages.
	logs string
}

// launchdWaitMargin is how much longer than the plist's ExitTimeOut a stop
// waits for the job to leave launchd's domain, for launchd's own work after
// the process ended.
const launchdWaitMargin = 10 * time.Second

func (l *launchctl) domain() string {
	if l.sc.system {
		return "system"
	}
	return "gui/" + strconv.Itoa(l.uid)
}

func (l *launchctl) target() string { return l.domain() + "/" + l.label }

func (l *launchctl) run(ctx context.Context, timeout time.Duration, args ...string) cmdResult {
	return runCmd(ctx, timeout, "launchctl", args...)
}

// jobState is what `launchctl print <domain>/<label>` says about the job.
type jobState struct {
	// loaded: the job is in the domain (bootstrapped and not yet booted out).
	loaded bool
	// state is launchd's word for it: running, not running, spawn scheduled…
	state string
	pid   int
	// exitCode is the last exit code, when the job has exited (exited).
	exitCode int
	exited   bool
	// signal is the last terminating signal, when a signal ended the job.
	signal string
}

func (s jobState) running() bool { return s.state == "running" || s.pid > 0 }

// failed: the job is loaded but not running and its last run ended with an
// error, so launchd is waiting to respawn it (KeepAlive) after
// ThrottleInterval, again and again.
func (s jobState) failed() bool {
	return s.loaded && !s.running() && ((s.exited && s.exitCode != 0) || s.signal != "")
}

func (s jobState) describe() string {
	switch {
	case s.signal != "":
		return "its last run ended by the signal " + s.signal
	case s.exited:
		return "its last run exited with code " + strconv.Itoa(s.exitCode)
	}
	return "it has not run yet"
}

// parsePrint reads the service block of `launchctl print`. Only the block's
// own lines count: nested blocks (the domain, endpoints, the environment)
// have keys of the same names.
func parsePrint(out string) jobState {
	st := jobState{loaded: true}
	depth := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "}") {
			depth--
			continue
		}
		opens := strings.HasSuffix(line, "{")
		if depth == 1 {
			if k, v, ok := strings.Cut(line, " = "); ok && !opens {
				switch k {
				case "state":
					st.state = v
				case "pid":
					st.pid, _ = strconv.Atoi(v)
				case "last exit code":
					// "1", "78: EX_CONFIG" or "(never exited)".
					num, _, _ := strings.Cut(v, ":")
					if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil {
						st.exitCode, st.exited = n, true
					}
				case "last terminating signal":
					st.signal = v
				}
			}
		}
		if opens {
			depth++
		}
	}
	return st
}

// exitCode is launchctl's exit status, which is the error number it also
// prints ("Bootstrap failed: 5: Input/output error"), or -1.
func (r cmdResult) exitCode() int {
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (r cmdResult) says(words ...string) bool {
	low := strings.ToLower(r.stderr + "\n" + r.stdout)
	for _, w := range words {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

// notLoaded: launchd does not know the job (print's 113, bootout's 3).
func (r cmdResult) notLoaded() bool {
	return r.says("could not find service", "no such process") || r.exitCode() == 113
}

// noDomain: the domain is missing, as gui/<uid> is for a user who is not
// logged in at the Mac's screen (an SSH session alone has none).
func (r cmdResult) noDomain() bool {
	return r.says("domain does not support specified action", "could not find domain", ": 125:") || r.exitCode() == 125
}

func (r cmdResult) denied() bool {
	return r.says("operation not permitted", "permission denied", "not privileged")
}

// status asks launchd for the job. A job launchd does not know is not
// loaded, which is not an error.
func (l *launchctl) status(ctx context.Context) (jobState, error) {
	args := []string{"print", l.target()}
	res := l.run(ctx, queryTimeout, args...)
	switch {
	case res.err == nil:
		return parsePrint(res.stdout), nil
	case errors.Is(res.err, exec.ErrNotFound):
		return jobState{}, newError(ErrUnsupported, res.err, "launchctl is not on PATH: run `orproxy serve` in the foreground")
	case res.noDomain():
		return jobState{}, l.noGUI("query", args, res)
	case res.notLoaded():
		return jobState{}, nil
	default:
		return jobState{}, l.failure("query", args, res)
	}
}

// disabled reports whether launchd keeps the job from loading: `launchctl
// disable`, or the switch under System Settings → General → Login Items →
// Allow in the Background, which a `launchctl enable` does not undo.
func (l *launchctl) disabled(ctx context.Context) bool {
	res := l.run(ctx, queryTimeout, "print-disabled", l.domain())
	if res.err != nil {
		return false
	}
	quoted := `"` + l.label + `"`
	for _, line := range strings.Split(res.stdout, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=>")
		if !ok || strings.TrimSpace(k) != quoted {
			continue
		}
		// "disabled" since macOS 14, "true" before.
		v = strings.TrimSpace(v)
		return v == "disabled" || v == "true"
	}
	return false
}

// stop boots the job out and waits until launchd has let it go, so that a
// bootstrap right after it finds the domain free. A job that is not loaded
// is stopped already.
func (l *launchctl) stop(ctx context.Context, action string) error {
	args := []string{"bootout", l.target()}
	res := l.run(ctx, actionTimeout, args...)
	if res.err != nil {
		if errors.Is(res.err, exec.ErrNotFound) {
			return newError(ErrUnsupported, res.err, "launchctl is not on PATH: run `orproxy serve` in the foreground")
		}
		if res.notLoaded() {
			return nil
		}
		if res.denied() || res.noDomain() {
			return l.failure(action, args, res)
		}
		// Anything else ("Operation now in progress", an I/O error) may be
		// launchd still busy with an earlier bootout: the job going away
		// is what counts.
	}
	return l.waitGone(ctx, action, args, res)
}

// waitGone polls until the job has left the domain, for at most l.wait.
func (l *launchctl) waitGone(ctx context.Context, action string, args []string, bootout cmdResult) error {
	ctx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	tick := time.NewTicker(l.poll)
	defer tick.Stop()
	for {
		st, err := l.status(ctx)
		if err != nil {
			if ctx.Err() == nil {
				return err
			}
		} else if !st.loaded {
			return nil
		}
		select {
		case <-ctx.Done():
			said := ""
			if bootout.err != nil {
				said = fmt.Sprintf(" (`launchctl %s`: %s)", strings.Join(args, " "), bootout.reason())
			}
			return newError(ErrManager, ctx.Err(), fmt.Sprintf(
				"launchd did not let the orproxy %s go within %s of `launchctl %s`%s: open streams may still be finishing; see `launchctl print %s` and %s, then run `%s` again",
				l.sc.kind(), l.wait.Round(time.Second), strings.Join(args, " "), said, l.target(), l.logs, l.sc.command(action)))
		case <-tick.C:
		}
	}
}

// start enables the job and bootstraps it. launchctl answers most refusals
// with the same "Input/output error", so a failed bootstrap is looked into
// before the user is told: the domain missing (SSH), the job disabled (Login
// Items), or the job still in the domain (an earlier bootout not finished,
// or a job loaded without orproxy), which is waited out and retried once.
func (l *launchctl) start(ctx context.Context, action string) error {
	enable := []string{"enable", l.target()}
	if res := l.run(ctx, actionTimeout, enable...); res.err != nil {
		if errors.Is(res.err, exec.ErrNotFound) {
			return newError(ErrUnsupported, res.err, "launchctl is not on PATH: run `orproxy serve` in the foreground")
		}
		if res.noDomain() {
			return l.noGUI(action, enable, res)
		}
		return l.failure(action, enable, res)
	}
	args := []string{"bootstrap", l.domain(), l.plist}
	res := l.run(ctx, actionTimeout, args...)
	if res.err == nil {
		return nil
	}
	if err := l.diagnose(ctx, action, args, res); err != nil {
		return err
	}
	st, err := l.status(ctx)
	if err != nil {
		return err
	}
	if st.loaded {
		if err := l.stop(ctx, action); err != nil {
			return err
		}
	}
	if res = l.run(ctx, actionTimeout, args...); res.err == nil {
		return nil
	}
	if err := l.diagnose(ctx, action, args, res); err != nil {
		return err
	}
	return l.failure(action, args, res)
}

// diagnose names the causes of a failed bootstrap that waiting does not
// cure; nil means none of them.
func (l *launchctl) diagnose(ctx context.Context, action string, args []string, res cmdResult) error {
	switch {
	case res.noDomain():
		return l.noGUI(action, args, res)
	case l.disabled(ctx):
		return newError(ErrPermission, res.err, fmt.Sprintf(
			"macOS does not let the orproxy %s run: it is switched off under System Settings → General → Login Items → Allow in the Background (`launchctl print-disabled %s` lists %s as disabled; `launchctl %s`: %s): switch orproxy on there, then run `%s`",
			l.sc.kind(), l.domain(), l.label, strings.Join(args, " "), res.reason(), l.sc.command(action)))
	case res.denied():
		return l.failure(action, args, res)
	}
	return nil
}

// noGUI explains a missing gui/<uid> domain.
func (l *launchctl) noGUI(action string, args []string, res cmdResult) error {
	if l.sc.system {
		return l.failure(action, args, res)
	}
	return newError(ErrNoServiceManager, res.err, fmt.Sprintf(
		"launchd has no desktop session for %s to run the orproxy user service in (`launchctl %s`: %s): a LaunchAgent runs only while you are logged in at the Mac's screen, and an SSH session alone has none; log in there (or through Screen Sharing) and run `%s` again, or install a system service with `sudo orproxy service install --system`, or run `orproxy serve` in the foreground",
		l.sc.user, strings.Join(args, " "), res.reason(), l.sc.command(action)))
}

// failure reports a launchctl call that failed for a reason orproxy cannot
// name, with launchctl's words and where to look further.
func (l *launchctl) failure(action string, args []string, res cmdResult) error {
	call := "`launchctl " + strings.Join(args, " ") + "`"
	if res.denied() {
		return newError(ErrPermission, res.err, fmt.Sprintf("%s failed: %s: %s", call, res.reason(), darwinPermissionHint(l.sc, action)))
	}
	hint := ""
	if args[0] == "bootstrap" {
		hint = fmt.Sprintf("; launchctl gives no more reason: check the plist with `plutil -lint %s`, and see launchd's log with `log show --last 5m --predicate 'process == \"launchd\"'` and %s", l.plist, l.logs)
	}
	return newError(ErrManager, res.err, fmt.Sprintf("%s failed: %s%s", call, res.reason(), hint))
}
