//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package login

import "golang.org/x/term"

// disableEcho leaves the work to term.ReadPassword where termios is not
// available; only what is typed before the read starts can be echoed there.
func disableEcho(fd int) (restore func(), err error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	return func() { _ = term.Restore(fd, state) }, nil
}

func readHiddenLine(fd int) ([]byte, error) { return term.ReadPassword(fd) }
