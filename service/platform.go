package service

import (
	"context"
	"errors"
	"strings"

	"github.com/kardianos/service"
)

// platform is what differs between service managers. Each operating system
// supplies one (platform_<goos>.go).
type platform interface {
	// check refuses a system whose service manager is not supported.
	check() error
	// manager names the service manager for messages.
	manager() string
	// name is the unit name, launchd label or Windows service name.
	name() string
	// preflight makes sure the service manager can be reached for sc and
	// says what to do if not.
	preflight(ctx context.Context, sc scope) error
	// definitionFile is the unit or plist path, or "" when the platform keeps
	// no file (Windows).
	definitionFile(sc scope) (string, error)
	// logDir is where the service's output files go, or "" when the service
	// manager keeps the logs itself.
	logDir(sc scope) (string, error)
	// logs tells the user where to read the logs.
	logs(sc scope) string
	// config is the kardianos configuration carrying the definition.
	config(def Definition, sc scope) (*service.Config, error)
	// prepare creates what the definition needs before it is installed.
	prepare(def Definition) error
	// install writes the definition to file (where the platform keeps one)
	// and registers it with the service manager, returning an *Error for
	// the user. svc is the kardianos service, for platforms that leave the
	// writing to it.
	install(ctx context.Context, sc scope, def Definition, svc service.Service, file string) error
	// explain turns a failed kardianos call into an error with the service
	// manager's own words. It returns nil when the action turns out to have
	// succeeded after all.
	explain(ctx context.Context, sc scope, action string, err error) error
	// rollback removes what a failed install left behind.
	rollback(ctx context.Context, sc scope, file string)
	// afterInstall returns notes for the user about the installed service.
	afterInstall(ctx context.Context, sc scope) []string
}

// platformFor is the platform the commands use: this system's, or in tests
// another one, so that the launchd platform can be tried out on Linux.
var platformFor = currentPlatform

// driver is a platform that drives its service manager itself for every
// action (start, stop, restart, uninstall, status) instead of through
// kardianos' Service, because kardianos' way loses errors or state.
type driver interface {
	service(def Definition, sc scope) service.Service
}

// warner is a platform that knows what, in a definition it is about to
// install, would keep the service from starting or from surviving an
// upgrade.
type warner interface {
	warnings(def Definition, sc scope) []string
}

// installWarnings are p's warnings about def, if p has any.
func installWarnings(p platform, def Definition, sc scope) []string {
	if w, ok := p.(warner); ok {
		return w.warnings(def, sc)
	}
	return nil
}

// withWarnings adds warnings to the message of an install that failed after
// writing the definition: they may well be why.
func withWarnings(err error, warnings []string) error {
	var e *Error
	if len(warnings) == 0 || !errors.As(err, &e) {
		return err
	}
	trimmed := make([]string, len(warnings))
	for i, w := range warnings {
		trimmed[i] = strings.TrimSuffix(w, ".")
	}
	return &Error{Kind: e.Kind, Err: e.Err, Msg: e.Msg + " (" + strings.Join(trimmed, "; ") + ")"}
}
