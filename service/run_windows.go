//go:build windows

package service

import (
	"context"
	"os"
)

// onOwnReturn: the Windows service manager calls back only for its own stop
// requests (kardianos ignores RunWait there), so a proxy that fails by itself
// would be shown as running forever. Exiting lets the manager see the failure
// and apply the restart-on-failure recovery action set at install.
func onOwnReturn(ctx context.Context, err error) {
	if ctx.Err() != nil || interactive() {
		return
	}
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}
