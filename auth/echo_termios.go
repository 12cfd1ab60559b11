//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auth

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// disableEcho switches the terminal's echo off until restore is called.
// term.ReadPassword does this too, but only once it runs: a key pasted right
// after the prompt appeared would already have been echoed, because the
// terminal echoes on arrival, not on read.
func disableEcho(fd int) (restore func(), err error) {
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, fmt.Errorf("read terminal settings: %w", err)
	}
	old := *t
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	t.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, t); err != nil {
		return nil, fmt.Errorf("turn off terminal echo: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, ioctlSetTermios, &old) }, nil
}
