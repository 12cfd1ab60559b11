// The browser login tests stand in for xdg-open, which orproxy uses on Linux only.

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// The browser login tests run `orproxy login` as on a desktop: the command
// opens the login page with xdg-open, here a shim that hands the address to
// a headless Chromium, which follows the redirects to the login's callback
// and ends on the page the callback server writes.

// The callback server's page for a login that worked.
const (
	loggedInTitle = "<title>orproxy: Logged in</title>"
	loggedInText  = "orproxy is logged in. You can close this tab."
)

func TestBrowserLoginBroker(t *testing.T) {
	b := newBrowser(t)
	s := newStack(t)
	run := s.browserLogin(b)

	assert.Contains(t, run.stdout, "Logged in through the broker")
	stats, err := s.broker.Stats(s.ctx())
	require.NoError(t, err)
	require.NotNil(t, stats.CurrentKey, "the broker issued no key")
	assert.Equal(t, stats.CurrentKey.Key, s.storedKey(), "the key stored is the one the broker issued")
	b.requireEndedOnCallback(run.loginURL, "return_to")
}

func TestBrowserLoginOpenRouter(t *testing.T) {
	b := newBrowser(t)
	s := newStack(t)
	run := s.browserLogin(b, "--method", "openrouter")

	assert.Contains(t, run.stdout, "Logged in with OpenRouter")
	keys, err := s.openrouter.Keys(s.ctx())
	require.NoError(t, err)
	require.Len(t, keys, 1, "OpenRouter issued one key, for the code")
	assert.Equal(t, keys[0].Key, s.storedKey(), "the key stored is the one OpenRouter issued")
	b.requireEndedOnCallback(run.loginURL, "callback_url")
}

// browserRun is what a browser login showed: the address it opened and the
// command's output.
type browserRun struct{ loginURL, stdout, stderr string }

// browserLogin runs `orproxy login` with args, opening the login page in b,
// and requires it to succeed.
func (s *stack) browserLogin(b *browser, args ...string) browserRun {
	s.t.Helper()
	cfg, err := os.ReadFile(s.configFile)
	require.NoError(s.t, err)
	on := bytes.Replace(cfg, []byte("open_browser: false"), []byte("open_browser: true"), 1)
	require.NotEqual(s.t, cfg, on, "the stack's config no longer sets login.open_browser")
	require.NoError(s.t, os.WriteFile(s.configFile, on, 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "orproxy"),
		append([]string{"--config", s.configFile, "login", "--timeout", "30s"}, args...)...)
	cmd.Env = b.desktopEnv(s.env)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	require.NoError(s.t, err, "login failed:\n%s%s\nChromium:\n%s", out.String(), errOut.String(), b.log())
	s.t.Logf("login with the browser took %v", time.Since(start).Round(time.Millisecond))

	run := browserRun{stdout: out.String(), stderr: errOut.String()}
	for _, line := range strings.Split(run.stdout, "\n") {
		if strings.HasPrefix(line, "http://") || strings.HasPrefix(line, "https://") {
			run.loginURL = strings.TrimSpace(line)
			break
		}
	}
	require.NotEmpty(s.t, run.loginURL, "login printed no address to open:\n%s", run.stdout)
	assert.NotContains(s.t, run.stderr, "Could not open a browser")
	return run
}

// browser is a headless Chromium that an xdg-open shim starts, once per
// address it is given. Each start leaves in dir the page the browser ended
// on (page.html, complete once the browser has exited), a log of its
// network requests (netlog.json) and its own messages (chromium.log).
type browser struct {
	t      *testing.T
	dir    string
	shimIn string // the directory holding xdg-open
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := findChromium()
	if chromium == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("Chromium is not installed, and CI must run the browser login tests: install the chromium package (.ci/run does)")
		}
		t.Skip("Chromium is not installed (Debian: apt-get install --no-install-recommends chromium); skipping the browser login tests")
	}
	b := &browser{t: t, dir: t.TempDir(), shimIn: t.TempDir()}
	// Flags: no sandbox (it cannot start as root, nor in most containers),
	// no GPU, no first-run dialogs, a profile of its own; --dump-dom loads
	// the page, follows its redirects, prints the final document and exits.
	// The resolver rule keeps it off the internet: it finds 127.0.0.1 only.
	flags := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--no-pings",
		"--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir=" + filepath.Join(b.dir, "profile"),
		"--log-net-log=" + filepath.Join(b.dir, "netlog.json"),
		"--dump-dom",
	}
	var quoted []string
	for _, f := range append([]string{chromium}, flags...) {
		quoted = append(quoted, shellQuote(f))
	}
	// Like a desktop's xdg-open it returns at once and leaves the browser
	// running, in a session of its own so that the test can end it. The
	// page is renamed into place only when the browser has exited.
	shim := fmt.Sprintf(`#!/bin/sh
dir=%s
setsid sh -c 'echo $$ >"$0/pid"; "$@" >"$0/page.part" 2>"$0/chromium.log"; echo $? >"$0/exit"; mv "$0/page.part" "$0/page.html"' "$dir" %s "$1" </dev/null >/dev/null 2>&1 &
`, shellQuote(b.dir), strings.Join(quoted, " "))
	require.NoError(t, os.WriteFile(filepath.Join(b.shimIn, "xdg-open"), []byte(shim), 0o755))
	t.Cleanup(b.stop)
	return b
}

// findChromium returns the Chromium binary to run, or "" when there is none.
// Debian's /usr/bin/chromium is a shell wrapper that adds its own flags and
// extensions; the binary behind it starts alone.
func findChromium() string {
	if fi, err := os.Stat("/usr/lib/chromium/chromium"); err == nil && fi.Mode()&0o111 != 0 {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// desktopEnv is env as a desktop session would have it for the login: a
// display (for orproxy's check only; headless Chromium needs none), the shim
// first in PATH, and no ORPROXY_NO_BROWSER.
func (b *browser) desktopEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "ORPROXY_NO_BROWSER="):
		case strings.HasPrefix(kv, "PATH="):
			out = append(out, "PATH="+b.shimIn+string(os.PathListSeparator)+strings.TrimPrefix(kv, "PATH="))
		default:
			out = append(out, kv)
		}
	}
	return append(out, "DISPLAY=:0")
}

// page waits for the browser to exit and returns the document it ended on.
func (b *browser) page() string {
	b.t.Helper()
	path := filepath.Join(b.dir, "page.html")
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := os.ReadFile(path)
		if err == nil {
			code, _ := os.ReadFile(filepath.Join(b.dir, "exit"))
			require.Equal(b.t, "0", strings.TrimSpace(string(code)), "Chromium failed:\n%s", b.log())
			return string(page)
		}
		require.True(b.t, errors.Is(err, os.ErrNotExist), "%v", err)
		if time.Now().After(deadline) {
			require.FailNow(b.t, "Chromium did not finish within 30s", "%s", b.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireEndedOnCallback requires that the browser opened loginURL, was sent
// on to the login's callback (named by loginURL's query parameter param)
// with a code, and ended on the callback server's page for a login that
// worked.
func (b *browser) requireEndedOnCallback(loginURL, param string) {
	b.t.Helper()
	page := b.page()
	assert.Contains(b.t, page, loggedInTitle, "the page the browser ended on")
	assert.Contains(b.t, page, loggedInText, "the page the browser ended on")

	opened, err := url.Parse(loginURL)
	require.NoError(b.t, err)
	callback, err := url.Parse(opened.Query().Get(param))
	require.NoError(b.t, err, "the login address has no %s", param)
	require.Equal(b.t, "127.0.0.1", callback.Hostname(), "%s", param)

	netlog, err := os.ReadFile(filepath.Join(b.dir, "netlog.json"))
	require.NoError(b.t, err)
	var sawLogin, sawCallback bool
	var seen []string
	for _, r := range gjson.GetBytes(netlog, "events.#.params.url").Array() {
		u, err := url.Parse(r.String())
		if err != nil || u.Scheme != "http" {
			continue
		}
		if where := u.Scheme + "://" + u.Host + u.Path; len(seen) == 0 || seen[len(seen)-1] != where {
			seen = append(seen, where)
		}
		switch {
		case u.Host == opened.Host && u.Path == opened.Path:
			sawLogin = true
		case u.Host == callback.Host && u.Path == callback.Path:
			q := u.Query()
			sawCallback = sawCallback || (q.Get("state") == callback.Query().Get("state") && q.Get("code") != "")
		}
	}
	assert.True(b.t, sawLogin, "the browser did not open the login address; it requested %v", seen)
	assert.True(b.t, sawCallback, "the browser did not reach the callback with the login's state and a code; it requested %v", seen)
}

// log is the end of Chromium's own messages, for a failure.
func (b *browser) log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "chromium.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// stop ends a browser that is still running, with the processes it started.
func (b *browser) stop() {
	if _, err := os.Stat(filepath.Join(b.dir, "exit")); err == nil {
		return
	}
	data, err := os.ReadFile(filepath.Join(b.dir, "pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
