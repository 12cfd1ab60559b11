//go:build !linux && !darwin && !windows

package service

import (
	"context"
	"runtime"

	"github.com/kardianos/service"
)

// unsupportedPlatform refuses every command: the unit and plist renderers
// cover systemd and launchd only.
type unsupportedPlatform struct{}

func currentPlatform() platform { return unsupportedPlatform{} }

func (unsupportedPlatform) check() error {
	return newError(ErrUnsupported, nil, "orproxy's service commands support Linux (systemd), macOS and Windows, not "+runtime.GOOS+": run `orproxy serve` under your own supervisor")
}
func (unsupportedPlatform) manager() string                              { return runtime.GOOS }
func (unsupportedPlatform) name() string                                 { return serviceName }
func (unsupportedPlatform) preflight(context.Context, scope) error       { return nil }
func (unsupportedPlatform) definitionFile(scope) (string, error)         { return "", nil }
func (unsupportedPlatform) logDir(scope) (string, error)                 { return "", nil }
func (unsupportedPlatform) logs(scope) string                            { return "" }
func (unsupportedPlatform) prepare(Definition) error                     { return nil }
func (unsupportedPlatform) rollback(context.Context, scope, string)      {}
func (unsupportedPlatform) afterInstall(context.Context, scope) []string { return nil }
func (unsupportedPlatform) config(Definition, scope) (*service.Config, error) {
	return nil, unsupportedPlatform{}.check()
}
func (unsupportedPlatform) install(context.Context, scope, Definition, service.Service, string) error {
	return unsupportedPlatform{}.check()
}
func (unsupportedPlatform) explain(_ context.Context, _ scope, _ string, err error) error {
	return err
}
