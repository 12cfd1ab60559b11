//go:build !windows

package service

import "context"

// onOwnReturn: on Unix kardianos' Run notices through RunWait that run
// returned, and the process exits with its error.
func onOwnReturn(context.Context, error) {}
