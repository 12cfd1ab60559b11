//go:build !windows

// The launchd platform builds on every Unix, so its tests run on Linux too;
// only macOS picks it (platform_darwin.go).

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kardianos/service"
)

type launchdPlatform struct{}

func (launchdPlatform) check() error    { return nil }
func (launchdPlatform) manager() string { return "launchd" }
func (launchdPlatform) name() string    { return launchdLabel }

// preflight: a LaunchAgent lives in the user's GUI session; from an SSH-only
// login there is none to load it into.
func (launchdPlatform) preflight(ctx context.Context, sc scope) error {
	if sc.system {
		return nil
	}
	domain := "gui/" + strconv.Itoa(os.Getuid())
	res := runCmd(ctx, queryTimeout, "launchctl", "print", domain)
	if res.err == nil {
		return nil
	}
	if errors.Is(res.err, exec.ErrNotFound) {
		return newError(ErrUnsupported, res.err, "launchctl is not on PATH: run `orproxy serve` in the foreground")
	}
	return newError(ErrNoServiceManager, res.err, fmt.Sprintf(
		"launchd has no login session for %s (`launchctl print %s`: %s): log in at the Mac's desktop, where LaunchAgents run, or use `sudo orproxy service install --system`, or run `orproxy serve` in the foreground",
		sc.user, domain, res.reason()))
}

// definitionFile is where install writes the plist and kardianos looks for
// it: <Name>.plist, and Name is the label (see launchdLabel).
func (launchdPlatform) definitionFile(sc scope) (string, error) {
	if sc.system {
		return "/Library/LaunchDaemons/" + launchdLabel + ".plist", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "LaunchAgents", launchdLabel+".plist"), nil
}

func (launchdPlatform) logDir(sc scope) (string, error) {
	if sc.system {
		return "/Library/Logs/orproxy", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Logs", "orproxy"), nil
}

func (p launchdPlatform) logs(sc scope) string {
	dir, err := p.logDir(sc)
	if err != nil {
		return "the orproxy.log file in ~/Library/Logs/orproxy"
	}
	return filepath.Join(dir, "orproxy.log")
}

func (launchdPlatform) config(def Definition, sc scope) (*service.Config, error) {
	plist, err := RenderLaunchdPlist(def)
	if err != nil {
		return nil, err
	}
	return &service.Config{
		// The label, not "orproxy": kardianos uses Name as the label, the
		// plist file name and the `launchctl list` argument.
		Name:        launchdLabel,
		Description: description,
		Executable:  def.Executable,
		Arguments:   def.Args(),
		Option: service.KeyValue{
			"UserService":   !sc.system,
			"LaunchdConfig": plist,
		},
	}, nil
}

// prepare creates the log directory: launchd opens the log file but does not
// create its directory, and the job fails to start without it.
func (launchdPlatform) prepare(def Definition) error {
	if err := os.MkdirAll(def.LogDir, 0o755); err != nil {
		return newError(ErrInvalid, err, fmt.Sprintf("cannot create the log directory %s: %v", def.LogDir, err))
	}
	return nil
}

// install writes the plist, which is all kardianos' Install does, but
// private from the start, where kardianos creates it 0644 (before umask).
// Loading it is the start.
func (launchdPlatform) install(_ context.Context, sc scope, def Definition, _ service.Service, file string) error {
	plist, err := RenderLaunchdPlist(def)
	if err != nil {
		return newError(ErrInvalid, err, fmt.Sprintf("cannot set up the service definition: %v", err))
	}
	if err := writeDefinition(file, []byte(plist), definitionDirPerm(sc)); err != nil {
		return definitionWriteError(sc, file, err, darwinPermissionHint(sc, "install"))
	}
	return nil
}

// explain: kardianos already puts launchctl's stderr into its errors
// (launchctl may fail with exit status 0, so it reads stderr itself).
func (launchdPlatform) explain(_ context.Context, sc scope, action string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return newError(ErrPermission, err, fmt.Sprintf("cannot %s the orproxy %s: %v: %s", action, sc.kind(), err, darwinPermissionHint(sc, action)))
	}
	msg := strings.TrimPrefix(err.Error(), `"launchctl" failed with stderr: `)
	msg = oneLine(msg)
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "permission denied"), strings.Contains(low, "operation not permitted"):
		return newError(ErrPermission, err, fmt.Sprintf("launchctl could not %s the orproxy %s: %s: %s", action, sc.kind(), msg, darwinPermissionHint(sc, action)))
	case action == "start" && strings.Contains(low, "already loaded"), action == "start" && strings.Contains(low, "input/output error"):
		// launchctl's answer to loading a job that is loaded already.
		return newError(ErrAlreadyRunning, err, fmt.Sprintf("launchctl could not start the orproxy %s: %s: it is probably loaded already; use `%s`", sc.kind(), msg, sc.command("restart")))
	default:
		return newError(ErrManager, err, fmt.Sprintf("launchctl could not %s the orproxy %s: %s", action, sc.kind(), msg))
	}
}

func darwinPermissionHint(sc scope, action string) string {
	if sc.system {
		return fmt.Sprintf("run `sudo orproxy service %s --system`", action)
	}
	return "check that ~/Library/LaunchAgents belongs to you"
}

func (p launchdPlatform) rollback(_ context.Context, _ scope, file string) {
	// install only writes the file.
	_ = os.Remove(file)
}

func (launchdPlatform) afterInstall(context.Context, scope) []string { return nil }
