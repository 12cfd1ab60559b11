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
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kardianos/service"
)

type launchdPlatform struct {
	// attrs reads the binary's extended attributes; nil means the file
	// system's own (xattrs).
	attrs attrReader
	// wait bounds how long a stop waits for launchd to let the job go;
	// 0 means the plist's ExitTimeOut plus launchdWaitMargin.
	wait time.Duration
	// poll is the pause between two looks at the job; 0 means 200 ms.
	poll time.Duration
}

// homeDir is the one home directory the launchd platform writes the plist
// and the log in and looks for them: the home the user database gives the
// user, which is where launchd loads LaunchAgents from at login, whatever
// $HOME says. A variable so that tests can move it.
var homeDir = func() (string, error) {
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir, nil
	}
	return os.UserHomeDir()
}

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

// definitionFile is where install writes the plist and every command looks
// for it: <label>.plist.
func (launchdPlatform) definitionFile(sc scope) (string, error) {
	if sc.system {
		return "/Library/LaunchDaemons/" + launchdLabel + ".plist", nil
	}
	home, err := homeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "LaunchAgents", launchdLabel+".plist"), nil
}

func (launchdPlatform) logDir(sc scope) (string, error) {
	if sc.system {
		return "/Library/Logs/orproxy", nil
	}
	home, err := homeDir()
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

// config is kardianos' view of the service; since every action goes
// through launchctl (see service), it only carries the rendered plist, which
// also checks the definition.
func (launchdPlatform) config(def Definition, sc scope) (*service.Config, error) {
	plist, err := RenderLaunchdPlist(def)
	if err != nil {
		return nil, err
	}
	return &service.Config{
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

// service drives launchctl for every action (see launchctl).
func (p launchdPlatform) service(def Definition, sc scope) service.Service {
	// The error is that of a missing home directory, which every
	// command has already met in definition (logDir).
	file, _ := p.definitionFile(sc)
	wait := p.wait
	if wait == 0 {
		wait = managerStopTimeout(def.DrainTimeout) + launchdWaitMargin
	}
	poll := p.poll
	if poll == 0 {
		poll = 200 * time.Millisecond
	}
	return &launchdService{def: def, l: &launchctl{
		sc: sc, uid: os.Getuid(), label: launchdLabel, plist: file,
		wait: wait, poll: poll, logs: p.logs(sc),
	}}
}

// prepare creates the log directory: launchd opens the log file but does not
// create its directory, and the job fails to start without it.
func (launchdPlatform) prepare(def Definition) error {
	if err := os.MkdirAll(def.LogDir, 0o755); err != nil {
		return newError(ErrInvalid, err, fmt.Sprintf("cannot create the log directory %s: %v", def.LogDir, err))
	}
	return nil
}

// install writes the plist, private from the start, where kardianos
// creates it 0644 (before umask). Loading it is the start.
func (launchdPlatform) install(_ context.Context, sc scope, def Definition, _ service.Service, file string) error {
	return writePlist(sc, file, def)
}

func writePlist(sc scope, file string, def Definition) error {
	plist, err := RenderLaunchdPlist(def)
	if err != nil {
		return newError(ErrInvalid, err, fmt.Sprintf("cannot set up the service definition: %v", err))
	}
	if err := writeDefinition(file, []byte(plist), definitionDirPerm(sc)); err != nil {
		return definitionWriteError(sc, file, err, darwinPermissionHint(sc, "install"))
	}
	return nil
}

// explain: the launchd service's errors are explained where they happen
// (see launchctl); what is left is a file error.
func (launchdPlatform) explain(_ context.Context, sc scope, action string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, fs.ErrPermission) {
		return newError(ErrPermission, err, fmt.Sprintf("cannot %s the orproxy %s: %v: %s", action, sc.kind(), err, darwinPermissionHint(sc, action)))
	}
	return newError(ErrManager, err, fmt.Sprintf("cannot %s the orproxy %s: %v", action, sc.kind(), oneLine(err.Error())))
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
