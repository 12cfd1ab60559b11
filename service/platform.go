package service

import (
	"context"

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
