//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package login

import (
	"bytes"
	"errors"
	"fmt"
	"io"

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

// readHiddenLine reads one line from the terminal, whose echo disableEcho
// has switched off already. It leaves the terminal settings alone:
// term.ReadPassword would save and set them again when its goroutine gets
// to run, which can be after a canceled login restored echo, and so switch
// echo off for good.
func readHiddenLine(fd int) ([]byte, error) {
	var line []byte
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		}
		line = append(line, buf[:n]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			return bytes.TrimSuffix(line[:i], []byte("\r")), nil
		}
		if len(line) > maxKeyLen+2 {
			return line, nil // too long to be a key; the caller says so
		}
	}
}
