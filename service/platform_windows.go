//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/kardianos/service"
)

type windowsPlatform struct{}

func currentPlatform() platform { return windowsPlatform{} }

func (windowsPlatform) check() error    { return nil }
func (windowsPlatform) manager() string { return "Windows service manager" }
func (windowsPlatform) name() string    { return serviceName }

func (windowsPlatform) preflight(context.Context, scope) error { return nil }

// definitionFile: the service lives in the registry, not in a file.
func (windowsPlatform) definitionFile(scope) (string, error) { return "", nil }

// logDir: the proxy logs to stderr, which the Windows service manager drops;
// the service's events go to the Application event log.
func (windowsPlatform) logDir(scope) (string, error) { return "", nil }

func (windowsPlatform) logs(scope) string {
	return "the Application log in Event Viewer (source orproxy)"
}

// config: kardianos ignores UserService on Windows; every service is a
// system service run as LocalSystem (see prepare in service.go).
//
// Nothing is rendered here: kardianos quotes the command line for the
// service manager itself and puts EnvVars in the registry, so Definition's
// Unix-path and template checks do not apply.
func (windowsPlatform) config(def Definition, _ scope) (*service.Config, error) {
	env := map[string]string{}
	for _, e := range def.Env {
		env[e.Name] = e.Value
	}
	return &service.Config{
		Name:        serviceName,
		DisplayName: "orproxy",
		Description: description,
		Executable:  def.Executable,
		Arguments:   def.Args(),
		EnvVars:     env,
		Option: service.KeyValue{
			"StartType":              "automatic",
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "2s",
		},
	}, nil
}

func (windowsPlatform) prepare(Definition) error { return nil }

// install: the service lives in the registry, which kardianos writes.
func (p windowsPlatform) install(ctx context.Context, sc scope, _ Definition, svc service.Service, _ string) error {
	if err := svc.Install(); err != nil {
		return p.explain(ctx, sc, "install", err)
	}
	return nil
}

func (windowsPlatform) explain(_ context.Context, _ scope, action string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return newError(ErrPermission, err, fmt.Sprintf(
			"cannot %s the orproxy service: %v: run `orproxy service %s` from a terminal started with \"Run as administrator\"", action, err, action))
	}
	return newError(ErrManager, err, fmt.Sprintf("the Windows service manager could not %s the orproxy service: %v", action, err))
}

func (windowsPlatform) rollback(context.Context, scope, string) {}

func (windowsPlatform) afterInstall(context.Context, scope) []string { return nil }
