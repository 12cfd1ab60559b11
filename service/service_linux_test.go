//go:build linux

package service

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kardianos/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/configs"
)

// fakeManager is a shell script standing in for systemctl and loginctl. It
// records every call, keeps the unit's active state in a file, and fails a
// chosen verb with a chosen stderr.
const fakeManager = `#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
# What the manager would find in the unit directory, with each file's mode.
if [ -n "$FAKE_MODES" ]; then
	for f in "$HOME"/.config/systemd/user/* "$HOME"/.config/systemd/user/.[!.]*; do
		[ -e "$f" ] && echo "$1 $(stat -c %a "$f") $(basename "$f")" >> "$FAKE_MODES"
	done
fi
case " $FAKE_FAIL " in *" $1 "*)
	printf '%s\n' "$FAKE_STDERR" >&2
	exit 1
esac
case "$(basename "$0") $1" in
"systemctl show-environment") echo "HOME=$HOME" ;;
"systemctl is-active")
	# The state file holds active, inactive or failed (the unit exited
	# with an error and systemd gave up restarting it).
	state=$(cat "$FAKE_STATE" 2>/dev/null || echo inactive)
	case "$state" in
	active) echo active ;;
	failed) echo failed; exit 3 ;;
	*) echo inactive; exit 3 ;;
	esac ;;
"systemctl list-unit-files")
	if [ -e "$HOME/.config/systemd/user/orproxy.service" ]; then
		echo "orproxy.service enabled enabled"
	fi ;;
"systemctl start"|"systemctl restart") echo active > "$FAKE_STATE" ;;
"systemctl stop") echo inactive > "$FAKE_STATE" ;;
"loginctl show-user") echo "Linger=${FAKE_LINGER:-no}" ;;
esac
exit 0
`

type harness struct {
	t      *testing.T
	home   string
	log    string
	state  string
	exe    string
	config string
	listen string
	opts   Options
}

// forced makes kardianos pick its systemd System although systemd is not
// PID 1 here; service.ChooseSystem re-runs Detect, hence the override.
type forced struct{ service.System }

func (forced) Detect() bool { return true }

func forceSystemd(t *testing.T) {
	saved := service.AvailableSystems()
	t.Cleanup(func() { service.ChooseSystem(saved...) })
	for _, s := range saved {
		if s.String() == "linux-systemd" {
			service.ChooseSystem(forced{s})
			require.Equal(t, "linux-systemd", service.Platform())
			return
		}
	}
	t.Fatal("kardianos has no linux-systemd System")
}

func newHarness(t *testing.T) *harness {
	forceSystemd(t)
	dir := t.TempDir()
	h := &harness{
		t:     t,
		home:  filepath.Join(dir, "home"),
		log:   filepath.Join(dir, "calls.log"),
		state: filepath.Join(dir, "state"),
	}
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(h.home, 0o755))
	for _, name := range []string{"systemctl", "loginctl"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(fakeManager), 0o755))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("HOME", h.home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("FAKE_LOG", h.log)
	t.Setenv("FAKE_STATE", h.state)
	t.Setenv("FAKE_FAIL", "")
	t.Setenv("FAKE_STDERR", "")
	t.Setenv("FAKE_LINGER", "no")
	t.Setenv("FAKE_MODES", "")

	exeDir := filepath.Join(dir, "opt", "or proxy 50%")
	require.NoError(t, os.MkdirAll(exeDir, 0o755))
	h.exe = filepath.Join(exeDir, "orproxy")
	copyExecutable(t, "/bin/true", h.exe)
	h.config = filepath.Join(h.home, ".config", "orproxy", "con fig.yaml")
	h.listen = freeAddr(t)

	h.opts = Options{
		ConfigFile: h.config,
		Executable: h.exe,
		Listen:     h.listen,
		// The proxy "answers" while the fake unit is active.
		HTTPClient:    &http.Client{Transport: roundTrip(h.fakeProxy), Timeout: time.Second},
		HealthTimeout: 2 * time.Second,
		LookupEnv: lookupMap(map[string]string{
			"HTTPS_PROXY": "http://user:s3cret%40@proxy.example:3128",
			"NO_PROXY":    "localhost,.intra",
			"HOME":        "/not/carried",
		}),
		// None of the ORPROXY_* variables of whoever runs the tests.
		Environ: func() []string { return nil },
	}
	return h
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (h *harness) fakeProxy(r *http.Request) (*http.Response, error) {
	state, _ := os.ReadFile(h.state)
	if strings.TrimSpace(string(state)) != "active" || r.URL.Path != "/healthz" {
		return nil, errors.New("connection refused")
	}
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusOK)
	return rec.Result(), nil
}

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func (h *harness) unitFile() string {
	return filepath.Join(h.home, ".config", "systemd", "user", "orproxy.service")
}

// calls returns the recorded calls and forgets them.
func (h *harness) calls() []string {
	data, err := os.ReadFile(h.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(h.t, err)
	require.NoError(h.t, os.Remove(h.log))
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func (h *harness) fail(verbs, stderr string) {
	h.t.Setenv("FAKE_FAIL", verbs)
	h.t.Setenv("FAKE_STDERR", stderr)
}

func TestLifecycleThroughKardianos(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	res, err := Install(ctx, h.opts)
	require.NoError(t, err)

	// The unit on disk is our rendered text, byte for byte.
	want, err := RenderSystemdUnit(Definition{
		Executable: h.exe,
		ConfigFile: h.config,
		Env:        []EnvVar{{"HTTPS_PROXY", "http://user:s3cret%40@proxy.example:3128"}, {"NO_PROXY", "localhost,.intra"}},
	})
	require.NoError(t, err)
	got, err := os.ReadFile(h.unitFile())
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	fi, err := os.Stat(h.unitFile())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the unit holds a proxy URL that may carry a password")

	user := currentUser()
	assert.Equal(t, []string{
		"systemctl show-environment --user",
		"systemctl enable --user orproxy.service",
		"systemctl daemon-reload --user",
		"systemctl start --user orproxy.service",
		"loginctl show-user " + user + " -p Linger",
	}, h.calls())

	// The default config was written from the embedded example.
	cfg, err := os.ReadFile(h.config)
	require.NoError(t, err)
	assert.Equal(t, configs.Example(), cfg)
	assert.True(t, res.ConfigCreated)
	assert.Equal(t, h.unitFile(), res.File)
	assert.Equal(t, []string{"HTTPS_PROXY", "NO_PROXY"}, res.CarriedEnv)
	assert.Equal(t, "http://"+h.listen+"/healthz", res.HealthURL)
	out := res.String()
	assert.Contains(t, out, "HTTPS_PROXY, NO_PROXY")
	assert.NotContains(t, out, "s3cret", "values of carried variables are never shown")
	assert.Contains(t, out, "loginctl enable-linger "+user)
	assert.Contains(t, out, "journalctl --user -u orproxy.service")
	assert.Contains(t, out, h.config)

	// A second install refuses and says what to do.
	_, err = Install(ctx, h.opts)
	assert.ErrorIs(t, err, ErrAlreadyInstalled)
	assert.ErrorContains(t, err, h.unitFile())
	assert.ErrorContains(t, err, "orproxy service restart")

	st, err := Status(ctx, h.opts)
	require.NoError(t, err)
	assert.True(t, st.Installed)
	assert.Equal(t, StateRunning, st.State)
	assert.True(t, st.Healthy)
	assert.Contains(t, st.String(), "running")
	h.calls()

	_, err = Start(ctx, h.opts)
	assert.ErrorIs(t, err, ErrAlreadyRunning)
	assert.ErrorContains(t, err, "orproxy service restart")

	stopped, err := Stop(ctx, h.opts)
	require.NoError(t, err)
	assert.Contains(t, stopped.String(), "Stopped")
	assert.Contains(t, h.calls(), "systemctl stop --user orproxy.service")

	_, err = Stop(ctx, h.opts)
	assert.ErrorIs(t, err, ErrNotRunning)

	st, err = Status(ctx, h.opts)
	require.NoError(t, err)
	assert.Equal(t, StateStopped, st.State)
	assert.False(t, st.Healthy)
	assert.Contains(t, st.String(), "does not answer")

	started, err := Start(ctx, h.opts)
	require.NoError(t, err)
	assert.Contains(t, h.calls(), "systemctl start --user orproxy.service")
	assert.Equal(t, "http://"+h.listen+"/healthz", started.HealthURL)

	_, err = Restart(ctx, h.opts)
	require.NoError(t, err)
	assert.Contains(t, h.calls(), "systemctl restart --user orproxy.service")

	gone, err := Uninstall(ctx, h.opts)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"systemctl show-environment --user",
		"systemctl is-active orproxy.service --user",
		"systemctl stop --user orproxy.service",
		"systemctl disable --user orproxy.service",
		"systemctl daemon-reload --user",
	}, h.calls(), "uninstall stops first, then disables, removes and reloads")
	assert.NoFileExists(t, h.unitFile())
	assert.FileExists(t, h.config, "uninstall keeps the config")
	assert.Contains(t, gone.String(), h.unitFile())

	for name, f := range map[string]func(context.Context, Options) (*Result, error){
		"uninstall": Uninstall, "start": Start, "stop": Stop, "restart": Restart,
	} {
		_, err = f(ctx, h.opts)
		assert.ErrorIs(t, err, ErrNotInstalled, name)
		assert.ErrorContains(t, err, "orproxy service install", name)
	}
	st, err = Status(ctx, h.opts)
	require.NoError(t, err)
	assert.False(t, st.Installed)
	assert.Contains(t, st.String(), "not installed")
}

func TestStatusOfAFailedUnit(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := Install(ctx, h.opts)
	require.NoError(t, err)
	// Restart=on-failure gave up after StartLimitBurst failed starts.
	require.NoError(t, os.WriteFile(h.state, []byte("failed\n"), 0o644))

	st, err := Status(ctx, h.opts)
	require.NoError(t, err)
	assert.True(t, st.Installed)
	assert.Equal(t, StateFailed, st.State)
	assert.Contains(t, st.StateDetail, "see the logs")
	assert.False(t, st.Healthy)
	out := st.String()
	assert.Contains(t, out, ", failed (")
	assert.Contains(t, out, "logs: journalctl --user -u orproxy.service")

	// A failed unit is not running: start is allowed, stop is refused.
	_, err = Stop(ctx, h.opts)
	assert.ErrorIs(t, err, ErrNotRunning)
	_, err = Start(ctx, h.opts)
	assert.NoError(t, err)
}

func TestFailingSystemctlShowsItsStderr(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := Install(ctx, h.opts)
	require.NoError(t, err)
	_, err = Stop(ctx, h.opts)
	require.NoError(t, err)

	const why = "Job for orproxy.service failed because the control process exited with error code."
	h.fail("start", why)
	_, err = Start(ctx, h.opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrManager)
	assert.ErrorContains(t, err, why)
	assert.ErrorContains(t, err, "systemctl --user start orproxy.service")
	assert.ErrorContains(t, err, "journalctl --user -u orproxy.service")
	assert.NotContains(t, err.Error(), "exit status 1")
	assert.NotContains(t, err.Error(), "\n", "one line for the command line to print")

	h.fail("restart", "Unit orproxy.service not found.")
	_, err = Restart(ctx, h.opts)
	assert.ErrorIs(t, err, ErrNotInstalled)
	assert.ErrorContains(t, err, "Unit orproxy.service not found.")

	h.fail("stop", "Failed to stop orproxy.service: Access denied")
	h.t.Setenv("FAKE_STATE", h.state)
	require.NoError(t, os.WriteFile(h.state, []byte("active\n"), 0o644))
	_, err = Stop(ctx, h.opts)
	assert.ErrorIs(t, err, ErrPermission)
	assert.ErrorContains(t, err, "Access denied")
}

func TestInstallFailureRollsBack(t *testing.T) {
	h := newHarness(t)
	const why = "Failed to connect to bus: No medium found"
	// show-environment succeeds, so the preflight passes; the reload fails.
	h.fail("daemon-reload", why)
	_, err := Install(context.Background(), h.opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoServiceManager)
	assert.ErrorContains(t, err, why)
	assert.ErrorContains(t, err, "systemctl --user daemon-reload")
	assert.NotContains(t, err.Error(), "exit status")
	assert.NoFileExists(t, h.unitFile(), "a failed install leaves no unit behind")
	assert.NoFileExists(t, h.config, "nor a config file the user did not have")
	calls := h.calls()
	assert.Contains(t, calls, "systemctl disable --user orproxy.service")
	assert.NotContains(t, calls, "systemctl start --user orproxy.service")

	// The next attempt is not blocked by leftovers.
	h.fail("", "")
	_, err = Install(context.Background(), h.opts)
	assert.NoError(t, err)
}

// A failure once the unit is in place keeps it, and the config it runs
// with, so that the user fixes the cause and starts it instead of
// installing again.
func TestInstallKeepsTheServiceWhenTheStartFails(t *testing.T) {
	h := newHarness(t)
	const why = "Job for orproxy.service failed because the control process exited with error code."
	h.fail("start", why)
	_, err := Install(context.Background(), h.opts)
	require.Error(t, err)
	assert.ErrorContains(t, err, why)
	assert.ErrorContains(t, err, "was installed as a")
	assert.ErrorContains(t, err, "orproxy service start")
	assert.FileExists(t, h.unitFile())
	assert.FileExists(t, h.config)
	assert.NotContains(t, h.calls(), "systemctl disable --user orproxy.service")
}

// A listen address without a fixed port is refused before anything is
// installed, and the config written for the install goes again.
func TestInstallRefusesAListenAddressWithoutAPort(t *testing.T) {
	h := newHarness(t)
	opts := h.opts
	opts.Listen = "127.0.0.1:0"
	_, err := Install(context.Background(), opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBadConfig)
	assert.ErrorContains(t, err, "port 0")
	assert.NoFileExists(t, h.unitFile())
	assert.NoFileExists(t, h.config, "the default config written for the install is removed again")
}

func TestNoUserManager(t *testing.T) {
	h := newHarness(t)
	h.fail("show-environment", "Failed to connect to bus: No medium found")
	_, err := Install(context.Background(), h.opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoServiceManager)
	msg := err.Error()
	assert.Contains(t, msg, "No medium found")
	assert.Contains(t, msg, "loginctl enable-linger")
	assert.Contains(t, msg, "orproxy serve")
	assert.NoFileExists(t, h.unitFile())
	assert.Equal(t, []string{"systemctl show-environment --user"}, h.calls())

	// status still answers, with the state unknown and the reason.
	h.fail("", "")
	_, err = Install(context.Background(), h.opts)
	require.NoError(t, err)
	h.fail("show-environment", "Failed to connect to bus: No medium found")
	st, err := Status(context.Background(), h.opts)
	require.NoError(t, err)
	assert.True(t, st.Installed)
	assert.Equal(t, StateUnknown, st.State)
	assert.Contains(t, st.StateDetail, "No medium found")
}

func TestSystemScopeNeedsRoot(t *testing.T) {
	h := newHarness(t)
	saved := geteuid
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = saved })
	opts := h.opts
	opts.System = true
	for name, f := range map[string]func() error{
		"install":   func() error { _, err := Install(context.Background(), opts); return err },
		"uninstall": func() error { _, err := Uninstall(context.Background(), opts); return err },
		"start":     func() error { _, err := Start(context.Background(), opts); return err },
		"stop":      func() error { _, err := Stop(context.Background(), opts); return err },
		"restart":   func() error { _, err := Restart(context.Background(), opts); return err },
	} {
		err := f()
		assert.ErrorIs(t, err, ErrPermission, name)
		assert.ErrorContains(t, err, "sudo orproxy service "+name+" --system", name)
	}
	assert.Empty(t, h.calls(), "nothing reaches systemctl")
}

func TestInstallRefusesAPortTakenByAnotherProgram(t *testing.T) {
	h := newHarness(t)
	var authorization atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Authorization"); v != "" {
			authorization.Store(v)
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(other.Close)
	opts := h.opts
	opts.Listen = other.Listener.Addr().String()
	opts.HTTPClient = other.Client()
	// The service's access token must not reach another program.
	opts.Environ = func() []string { return []string{"ORPROXY_ACCESS_TOKEN=local-token-0123456789abcdef"} }
	_, err := Install(context.Background(), opts)
	assert.Nil(t, authorization.Load(), "the probe sent the access token to another program")
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPortInUse)
	assert.ErrorContains(t, err, opts.Listen)
	assert.ErrorContains(t, err, "listen:")
	assert.NoFileExists(t, h.unitFile())
	assert.NoFileExists(t, h.config)
}

func TestInstallRefusesAPortHeldByARunningOrproxy(t *testing.T) {
	// The health check after the start would get its answer from this old
	// process and report the new, restart-looping service as healthy.
	h := newHarness(t)
	ours := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(ours.Close)
	opts := h.opts
	opts.Listen = ours.Listener.Addr().String()
	opts.HTTPClient = ours.Client()
	_, err := Install(context.Background(), opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPortInUse)
	assert.ErrorContains(t, err, "an orproxy already answers at "+opts.Listen)
	assert.ErrorContains(t, err, "`orproxy service stop`")
	assert.ErrorContains(t, err, "`orproxy serve`")
	assert.ErrorContains(t, err, "listen:")
	assert.NotContains(t, err.Error(), "\n")
	assert.NoFileExists(t, h.unitFile())
	assert.NoFileExists(t, h.config, "the default config written for the install is removed again")
	assert.Equal(t, []string{"systemctl show-environment --user"}, h.calls(), "nothing is installed or started")
}

func TestInstallReportsAProxyThatNeverAnswers(t *testing.T) {
	h := newHarness(t)
	opts := h.opts
	opts.HTTPClient = &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	})}
	opts.HealthTimeout = 300 * time.Millisecond
	_, err := Install(context.Background(), opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNotHealthy)
	assert.ErrorContains(t, err, "journalctl --user -u orproxy.service")
	assert.FileExists(t, h.unitFile(), "the service stays installed so its logs can be read")
}

func TestInstallRefusesABadConfig(t *testing.T) {
	h := newHarness(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(h.config), 0o700))
	require.NoError(t, os.WriteFile(h.config, []byte("listen: 127.0.0.1:8765\nweb_search: {engine: bing}\n"), 0o600))
	opts := h.opts
	opts.Listen = ""
	_, err := Install(context.Background(), opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBadConfig)
	assert.ErrorContains(t, err, "web_search.engine")
	assert.NoFileExists(t, h.unitFile())
	assert.FileExists(t, h.config, "an existing config is never removed")
}

func TestInstallReadsListenFromTheConfigAndDefaultsItsPath(t *testing.T) {
	h := newHarness(t)
	xdg := filepath.Join(h.home, "xdg")
	t.Setenv("XDG_CONFIG_HOME", xdg)
	path := filepath.Join(xdg, "orproxy", "config.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte("listen: "+h.listen+"\n"), 0o600))
	opts := h.opts
	opts.ConfigFile, opts.Listen, opts.LookupEnv = "", "", lookupMap(nil)
	res, err := Install(context.Background(), opts)
	require.NoError(t, err)
	assert.Equal(t, path, res.ConfigFile)
	assert.False(t, res.ConfigCreated)
	assert.Equal(t, "http://"+h.listen+"/healthz", res.HealthURL)
	assert.Empty(t, res.CarriedEnv)
	unit, err := os.ReadFile(h.unitFile())
	require.NoError(t, err)
	assert.Contains(t, string(unit), `"--config" "`+path+`"`)
	fi, err := os.Stat(h.unitFile())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "private whether or not anything secret is carried")
}

func TestInstallChecksTheExecutable(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "orproxy")
	require.NoError(t, os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644))
	goRun := filepath.Join(dir, "go-build1234", "b001", "exe", "orproxy")
	require.NoError(t, os.MkdirAll(filepath.Dir(goRun), 0o755))
	copyExecutable(t, "/bin/true", goRun)
	for exe, want := range map[string]string{
		plain:                          "not an executable file",
		goRun:                          "go run",
		filepath.Join(dir, "nope"):     "no such file",
		filepath.Join(dir, `a"b`, "x"): "no such file",
	} {
		opts := h.opts
		opts.Executable = exe
		_, err := Install(context.Background(), opts)
		assert.ErrorIs(t, err, ErrInvalid, exe)
		assert.ErrorContains(t, err, want, exe)
	}
	assert.Empty(t, h.calls())
}

func TestLingerOnIsNotMentioned(t *testing.T) {
	h := newHarness(t)
	t.Setenv("FAKE_LINGER", "yes")
	res, err := Install(context.Background(), h.opts)
	require.NoError(t, err)
	assert.NotContains(t, res.String(), "Lingering")
}

func TestUnsupportedInitSystem(t *testing.T) {
	if service.Platform() == "linux-systemd" {
		t.Skip("this machine runs systemd; the refusal cannot be observed")
	}
	_, err := Status(context.Background(), Options{})
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.ErrorContains(t, err, "orproxy serve")
	if msg := err.Error(); strings.Contains(msg, " (it is not PID 1") {
		assert.Contains(t, readme(t), "`"+strings.Split(msg, " (it is not PID 1")[0]+" …`", "README's troubleshooting quotes the message")
	}
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	return string(b)
}

// TestReadmeQuotesTheServiceMessages keeps the troubleshooting table in step
// with what the commands print, so a user can find their message there.
func TestReadmeQuotesTheServiceMessages(t *testing.T) {
	h := newHarness(t)
	doc := readme(t)
	user := currentUser()

	h.fail("show-environment", "Failed to connect to bus: No medium found")
	_, err := Install(context.Background(), h.opts)
	require.ErrorIs(t, err, ErrNoServiceManager)
	msg := err.Error()
	head := msg[:strings.Index(msg, ": Failed to connect")]
	quoted := strings.Replace(head, " for "+user+" (", " for USER (", 1)
	require.NotEqual(t, head, quoted, "the message names the user: %s", msg)
	assert.Contains(t, doc, "`"+quoted+": ")

	h.fail("", "")
	ours := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(ours.Close)
	opts := h.opts
	opts.Listen = ours.Listener.Addr().String()
	opts.HTTPClient = ours.Client()
	_, err = Install(context.Background(), opts)
	require.ErrorIs(t, err, ErrPortInUse)
	msg = strings.Replace(err.Error(), opts.Listen, "127.0.0.1:8765", 1)
	assert.Contains(t, doc, "`"+msg[:strings.Index(msg, ": stop it first")]+"`")
}
