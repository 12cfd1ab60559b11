//go:build linux

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

const unitName = serviceName + ".service"

type systemdPlatform struct{}

func currentPlatform() platform { return systemdPlatform{} }

func (systemdPlatform) check() error {
	switch p := service.Platform(); p {
	case "linux-systemd":
		return nil
	case "unix-systemv":
		// kardianos falls back to System V init whenever systemd is not PID 1,
		// which is also what a container without systemd looks like.
		return newError(ErrUnsupported, nil, "orproxy's service commands need systemd, and systemd is not running this system (it is not PID 1, as in most containers): run `orproxy serve` in the foreground or under your own supervisor")
	default:
		return newError(ErrUnsupported, nil, fmt.Sprintf("orproxy's service commands need systemd, and this system uses %s: run `orproxy serve` in the foreground or under your own supervisor", p))
	}
}

func (systemdPlatform) manager() string { return "systemd" }
func (systemdPlatform) name() string    { return unitName }

// systemctl runs systemctl with the arguments in the order kardianos uses
// (verb, then --user, then the rest), so its calls and ours read alike.
func systemctl(ctx context.Context, sc scope, args ...string) cmdResult {
	full := []string{args[0]}
	if !sc.system {
		full = append(full, "--user")
	}
	full = append(full, args[1:]...)
	timeout := actionTimeout
	if args[0] == "show-environment" {
		timeout = queryTimeout
	}
	return runCmd(ctx, timeout, "systemctl", full...)
}

// commandLine spells a systemctl call the way a user would type it.
func commandLine(sc scope, args ...string) string {
	c := "systemctl "
	if !sc.system {
		c += "--user "
	}
	return c + strings.Join(args, " ")
}

func (systemdPlatform) preflight(ctx context.Context, sc scope) error {
	res := systemctl(ctx, sc, "show-environment")
	if res.err == nil {
		return nil
	}
	if errors.Is(res.err, exec.ErrNotFound) {
		return newError(ErrUnsupported, res.err, "systemctl is not installed: run `orproxy serve` in the foreground or under your own supervisor")
	}
	if sc.system {
		return newError(ErrNoServiceManager, res.err, fmt.Sprintf(
			"systemd cannot be reached (%s: %s): run `orproxy serve` in the foreground or under your own supervisor",
			commandLine(sc, "show-environment"), res.reason()))
	}
	return newError(ErrNoServiceManager, res.err, fmt.Sprintf(
		"no systemd user manager is reachable for %[1]s (%[2]s: %[3]s): log in with a desktop or SSH session of %[1]s (su and sudo do not start one), or run `loginctl enable-linger %[1]s` and log in again; or run `orproxy serve` in the foreground",
		sc.user, commandLine(sc, "show-environment"), res.reason()))
}

// definitionFile is where install writes the unit. It is where kardianos
// looks for it too (its Uninstall removes it there), and kardianos always
// uses ~/.config/systemd/user for user units, whatever XDG_CONFIG_HOME says.
func (systemdPlatform) definitionFile(sc scope) (string, error) {
	if sc.system {
		return "/etc/systemd/system/" + unitName, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "systemd", "user", unitName), nil
}

func (systemdPlatform) logDir(scope) (string, error) { return "", nil }

func (systemdPlatform) logs(sc scope) string {
	if sc.system {
		return "journalctl -u " + unitName + " -e"
	}
	return "journalctl --user -u " + unitName + " -e"
}

func (systemdPlatform) config(def Definition, sc scope) (*service.Config, error) {
	unit, err := RenderSystemdUnit(def)
	if err != nil {
		return nil, err
	}
	return &service.Config{
		Name:        serviceName,
		Description: description,
		Executable:  def.Executable,
		Arguments:   def.Args(),
		Option: service.KeyValue{
			"UserService":   !sc.system,
			"SystemdScript": unit,
		},
	}, nil
}

func (systemdPlatform) prepare(Definition) error { return nil }

// install does what kardianos' Install does (write the unit, enable it,
// reload), but writes the unit private from the start, where kardianos
// creates it 0644, and runs systemctl itself to keep its error output.
func (systemdPlatform) install(ctx context.Context, sc scope, def Definition, _ service.Service, file string) error {
	unit, err := RenderSystemdUnit(def)
	if err != nil {
		return newError(ErrInvalid, err, fmt.Sprintf("cannot set up the service definition: %v", err))
	}
	if err := writeDefinition(file, []byte(unit), definitionDirPerm(sc)); err != nil {
		return definitionWriteError(sc, file, err, permissionHint(sc, "install"))
	}
	for _, step := range [][]string{{"enable", unitName}, {"daemon-reload"}} {
		if res := systemctl(ctx, sc, step...); res.err != nil {
			return managerError(sc, "install", step, res)
		}
	}
	return nil
}

func (p systemdPlatform) explain(ctx context.Context, sc scope, action string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return newError(ErrPermission, err, fmt.Sprintf("cannot %s the orproxy %s: %v: %s", action, sc.kind(), err, permissionHint(sc, action)))
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return newError(ErrManager, err, fmt.Sprintf("cannot %s the orproxy %s: %v", action, sc.kind(), err))
	}
	// kardianos discards systemctl's stderr and reports only "exit status
	// 1". Every step it takes is idempotent, so run the steps again to get
	// systemd's own words; if they all succeed now, so did the action.
	file, ferr := p.definitionFile(sc)
	if ferr != nil {
		return newError(ErrManager, err, fmt.Sprintf("cannot %s the orproxy %s: %v", action, sc.kind(), err))
	}
	var steps [][]string
	switch action {
	case "uninstall":
		if _, err := os.Stat(file); err == nil {
			steps = append(steps, []string{"disable", unitName})
		}
		steps = append(steps, []string{"daemon-reload"})
	default:
		steps = [][]string{{action, unitName}}
	}
	for _, step := range steps {
		if step[0] == "daemon-reload" && action == "uninstall" {
			if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return newError(ErrManager, err, fmt.Sprintf("cannot remove %s: %v", file, err))
			}
		}
		if res := systemctl(ctx, sc, step...); res.err != nil {
			return managerError(sc, action, step, res)
		}
	}
	return nil
}

func permissionHint(sc scope, action string) string {
	if sc.system {
		return fmt.Sprintf("run `sudo orproxy service %s --system`", action)
	}
	return "check that your home directory and ~/.config belong to you"
}

// managerError classifies what systemctl said, keeping its words.
func managerError(sc scope, action string, step []string, res cmdResult) error {
	said := res.reason()
	msg := fmt.Sprintf("`%s` failed: %s", commandLine(sc, step...), said)
	low := strings.ToLower(said)
	switch {
	case strings.Contains(low, "access denied"), strings.Contains(low, "interactive authentication required"), strings.Contains(low, "permission denied"):
		return newError(ErrPermission, res.err, msg+"; "+permissionHint(sc, action))
	case strings.Contains(low, "failed to connect to bus"), strings.Contains(low, "no medium found"):
		return newError(ErrNoServiceManager, res.err, msg+fmt.Sprintf(
			"; no systemd manager is reachable: log in with a real session, or run `loginctl enable-linger %s`, or run `orproxy serve` in the foreground", sc.user))
	case strings.Contains(low, "not found"), strings.Contains(low, "does not exist"), strings.Contains(low, "not loaded"):
		return newError(ErrNotInstalled, res.err, msg+fmt.Sprintf("; run `%s`", sc.command("install")))
	case action == "start" || action == "restart":
		return newError(ErrManager, res.err, msg+"; see `"+systemdPlatform{}.logs(sc)+"`")
	default:
		return newError(ErrManager, res.err, msg)
	}
}

func (p systemdPlatform) rollback(ctx context.Context, sc scope, file string) {
	// Best effort: the user is already being told why the install failed,
	// and a leftover unit would make the next install say "already installed".
	_ = systemctl(ctx, sc, "disable", unitName)
	_ = os.Remove(file)
	_ = systemctl(ctx, sc, "daemon-reload")
}

// afterInstall warns that a user unit stops at logout unless lingering is on.
func (systemdPlatform) afterInstall(ctx context.Context, sc scope) []string {
	if sc.system || sc.user == "" {
		return nil
	}
	res := runCmd(ctx, queryTimeout, "loginctl", "show-user", sc.user, "-p", "Linger")
	if res.err != nil || strings.TrimSpace(res.stdout) != "Linger=no" {
		return nil
	}
	return []string{fmt.Sprintf(
		"Lingering is off for %[1]s: the proxy stops when you log out and starts again at your next login. To keep it running: loginctl enable-linger %[1]s",
		sc.user)}
}
