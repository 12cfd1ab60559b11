package login

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"time"
)

// browserOpenTimeout bounds the opener command; xdg-open and friends return
// as soon as they have handed the URL over.
const browserOpenTimeout = 10 * time.Second

// OpenBrowser asks the desktop to open url in the default browser. The
// opener's output is discarded: it must not garble the terminal the login
// prints to.
func OpenBrowser(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, browserOpenTimeout)
	defer cancel()
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.CommandContext(ctx, "open", url)
	case "windows":
		cmd = exec.CommandContext(ctx, "rundll32", "url.dll,FileProtocolHandler", url)
	default:
		// www-browser is left out: it is often a text browser that would take
		// over the terminal the login is waiting in.
		for _, name := range []string{"xdg-open", "x-www-browser", "wslview"} {
			if path, err := exec.LookPath(name); err == nil {
				cmd = exec.CommandContext(ctx, path, url)
				break
			}
		}
		if cmd == nil {
			return errors.New("no browser opener found (xdg-open, x-www-browser, wslview)")
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	return cmd.Run()
}

// canOpenBrowser reports whether a browser could appear in front of the user:
// not over SSH (it would open on the remote machine, if at all) and not on a
// Linux box without a display.
func canOpenBrowser(getenv func(string) string) bool {
	if getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "" {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	if getenv("WSL_DISTRO_NAME") != "" {
		return true
	}
	return getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != ""
}
