//go:build !windows

package service

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLaunchctl stands in for launchctl and behaves like launchd for the
// one job: it records every call, keeps the job in $FAKE_DIR/job ("running
// <last exit>" or "stopped <last exit>"), lets a bootout finish only
// $FAKE_BOOTOUT_S seconds later (the job drains meanwhile, and bootstrap
// fails with error 5 as launchd's does), keeps a disabled job disabled
// despite `enable` when $FAKE_BTM is set (the Login Items switch), has no
// domain at all with $FAKE_NO_DOMAIN (SSH without a desktop session), starts
// a job that exits with $FAKE_EXIT, and refuses any call that does not name
// $FAKE_DOMAIN, and every legacy subcommand.
const fakeLaunchctl = `#!/bin/sh
d="$FAKE_DIR"
echo "launchctl $*" >> "$d/calls"
now=$(date +%s)
if [ -f "$d/gone_at" ] && [ "$now" -ge "$(cat "$d/gone_at")" ]; then
	rm -f "$d/job" "$d/gone_at"
fi
target="$FAKE_DOMAIN/$FAKE_LABEL"
nodomain() {
	echo "Bad request." >&2
	echo "Could not find domain for port identifier: 0x0" >&2
	exit 113
}
refused() {
	echo "Bootstrap failed: 5: Input/output error" >&2
	echo "Try re-running the command as root for richer errors." >&2
	exit 5
}
case "$1" in
print)
	[ -n "$FAKE_NO_DOMAIN" ] && nodomain
	if [ "$2" = "$FAKE_DOMAIN" ]; then
		printf '%s = {\n\ttype = User\n}\n' "$FAKE_DOMAIN"
		exit 0
	fi
	[ "$2" = "$target" ] || { echo "Unrecognized target specifier." >&2; exit 1; }
	if [ ! -f "$d/job" ]; then
		echo "Could not find service \"$FAKE_LABEL\" in domain for port" >&2
		exit 113
	fi
	read -r state last < "$d/job"
	printf '%s = {\n\tactive count = 1\n\tpath = %s\n\ttype = LaunchAgent\n' "$target" "$FAKE_PLIST"
	if [ "$state" = running ]; then
		printf '\tstate = running\n\n\tpid = 4242\n'
	else
		printf '\tstate = not running\n'
	fi
	printf '\tdomain = {\n\t\tstate = active\n\t\tlast exit code = 0\n\t}\n'
	case "$last" in
	never) printf '\tlast exit code = (never exited)\n' ;;
	*) printf '\tlast exit code = %s\n' "$last" ;;
	esac
	printf '}\n'
	;;
print-disabled)
	[ -n "$FAKE_NO_DOMAIN" ] && nodomain
	[ "$2" = "$FAKE_DOMAIN" ] || { echo "Unrecognized target specifier." >&2; exit 1; }
	word=enabled
	[ -f "$d/disabled" ] && word="${FAKE_DISABLED_WORD:-disabled}"
	printf 'disabled services = {\n\t"com.apple.Siri.agent" => enabled\n\t"%s" => %s\n}\n' "$FAKE_LABEL" "$word"
	;;
enable)
	[ "$2" = "$target" ] || { echo "Unrecognized target specifier." >&2; exit 1; }
	[ -n "$FAKE_BTM" ] || rm -f "$d/disabled"
	;;
bootstrap)
	if [ -n "$FAKE_NO_DOMAIN" ]; then
		echo "Bootstrap failed: 125: Domain does not support specified action" >&2
		exit 125
	fi
	[ "$2" = "$FAKE_DOMAIN" ] || { echo "Unrecognized target specifier." >&2; exit 1; }
	[ -f "$3" ] || { echo "Bootstrap failed: 2: No such file or directory" >&2; exit 2; }
	[ -f "$d/disabled" ] && refused
	[ -f "$d/job" ] && refused
	[ -n "$FAKE_BAD_PLIST" ] && refused
	if [ "${FAKE_EXIT:-0}" = 0 ]; then
		echo "running never" > "$d/job"
	else
		echo "stopped $FAKE_EXIT" > "$d/job"
	fi
	;;
bootout)
	[ "$2" = "$target" ] || { echo "Unrecognized target specifier." >&2; exit 1; }
	if [ ! -f "$d/job" ]; then
		echo "Boot-out failed: 3: No such process" >&2
		exit 3
	fi
	if [ -f "$d/gone_at" ]; then
		echo "Boot-out failed: 37: Operation already in progress" >&2
		exit 37
	fi
	echo $((now + FAKE_BOOTOUT_S)) > "$d/gone_at"
	;;
*)
	echo "Unrecognized subcommand: $1" >&2
	exit 1
	;;
esac
exit 0
`

// launchdFake runs the launchd platform against fakeLaunchctl.
type launchdFake struct {
	t      *testing.T
	dir    string
	home   string
	plist  string
	exe    string
	config string
	listen string
	attrs  fakeAttrs
	opts   Options
}

type fakeAttrs map[string]bool

func (f fakeAttrs) hasAttr(path, name string) (bool, error) {
	return f[path+" "+name], nil
}

const bootoutSeconds = 2 // a bootout takes 1 to 2 s in the fake

func newLaunchdFake(t *testing.T, sc scope) *launchdFake {
	dir := t.TempDir()
	f := &launchdFake{t: t, dir: dir, home: filepath.Join(dir, "Users", "dev"), attrs: fakeAttrs{}}
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(f.home, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "launchctl"), []byte(fakeLaunchctl), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	// $HOME points elsewhere: the plist and the log go by the home the
	// user database gives, and every command finds them there.
	t.Setenv("HOME", filepath.Join(dir, "elsewhere"))
	t.Setenv("XDG_CONFIG_HOME", "")
	useHomeDir(t, f.home)
	savedPlatform := platformFor
	platformFor = func() platform {
		return launchdPlatform{attrs: f.attrs, wait: 5 * time.Second, poll: 50 * time.Millisecond}
	}
	t.Cleanup(func() { platformFor = savedPlatform })

	domain := "gui/" + strconv.Itoa(os.Getuid())
	if sc.system {
		domain = "system"
	}
	f.plist, _ = launchdPlatform{}.definitionFile(sc)
	for k, v := range map[string]string{
		"FAKE_DIR": dir, "FAKE_DOMAIN": domain, "FAKE_LABEL": launchdLabel, "FAKE_PLIST": f.plist,
		"FAKE_BOOTOUT_S": strconv.Itoa(bootoutSeconds), "FAKE_NO_DOMAIN": "", "FAKE_BTM": "",
		"FAKE_EXIT": "", "FAKE_BAD_PLIST": "", "FAKE_DISABLED_WORD": "",
	} {
		t.Setenv(k, v)
	}

	exeDir := filepath.Join(dir, "opt", "or proxy")
	require.NoError(t, os.MkdirAll(exeDir, 0o755))
	f.exe = filepath.Join(exeDir, "orproxy")
	copyExecutable(t, "/bin/true", f.exe)
	f.config = filepath.Join(f.home, ".config", "orproxy", "config.yaml")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.listen = ln.Addr().String()
	require.NoError(t, ln.Close())
	f.opts = Options{
		ConfigFile: f.config,
		Executable: f.exe,
		Listen:     f.listen,
		// The proxy answers while the fake job runs.
		HTTPClient:    &http.Client{Transport: fakeRoundTrip(f.answer), Timeout: time.Second},
		HealthTimeout: 2 * time.Second,
		LookupEnv:     func(string) (string, bool) { return "", false },
	}
	return f
}

type fakeRoundTrip func(*http.Request) (*http.Response, error)

func (f fakeRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (f *launchdFake) answer(r *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(f.job(), "running") || r.URL.Path != "/healthz" {
		return nil, errors.New("connection refused")
	}
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusOK)
	return rec.Result(), nil
}

// job is the fake job's state, "" when launchd does not have it.
func (f *launchdFake) job() string {
	data, _ := os.ReadFile(filepath.Join(f.dir, "job"))
	return strings.TrimSpace(string(data))
}

func (f *launchdFake) setJob(state string) {
	require.NoError(f.t, os.WriteFile(filepath.Join(f.dir, "job"), []byte(state+"\n"), 0o644))
}

// bootoutNow starts a bootout as someone else would (an earlier stop, the
// user's own launchctl).
func (f *launchdFake) bootoutNow(target string) {
	res := runCmd(context.Background(), queryTimeout, "launchctl", "bootout", target)
	require.NoError(f.t, res.err, res.reason())
}

// calls returns the recorded launchctl calls and forgets them.
func (f *launchdFake) calls() []string {
	path := filepath.Join(f.dir, "calls")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(f.t, err)
	require.NoError(f.t, os.Remove(path))
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// launchctlFor is the driver as the platform builds it, for the tests
// below the public commands.
func (f *launchdFake) launchctlFor(sc scope, wait time.Duration) *launchdService {
	p := launchdPlatform{wait: wait, poll: 50 * time.Millisecond}
	return p.service(Definition{Executable: f.exe, ConfigFile: f.config, Label: launchdLabel, LogDir: "/tmp"}, sc).(*launchdService)
}

func (f *launchdFake) install() {
	_, err := Install(context.Background(), f.opts)
	require.NoError(f.t, err)
	require.Equal(f.t, "running never", f.job())
	f.calls()
}

func TestLaunchdLifecycle(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	ctx := context.Background()
	uid := strconv.Itoa(os.Getuid())
	target := "gui/" + uid + "/" + launchdLabel

	res, err := Install(ctx, f.opts)
	require.NoError(t, err)
	assert.Equal(t, f.plist, res.File)
	assert.Equal(t, filepath.Join(f.home, "Library", "LaunchAgents", launchdLabel+".plist"), f.plist)
	fi, err := os.Stat(f.plist)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the plist may hold a proxy URL with a password")
	assert.DirExists(t, filepath.Join(f.home, "Library", "Logs", "orproxy"))
	assert.Equal(t, []string{
		"launchctl print gui/" + uid,
		"launchctl enable " + target,
		"launchctl bootstrap gui/" + uid + " " + f.plist,
	}, f.calls())

	st, err := Status(ctx, f.opts)
	require.NoError(t, err)
	assert.True(t, st.Installed, "found where install wrote it, whatever $HOME says")
	assert.Equal(t, StateRunning, st.State)

	_, err = Start(ctx, f.opts)
	assert.ErrorIs(t, err, ErrAlreadyRunning)
	f.calls()

	_, err = Stop(ctx, f.opts)
	require.NoError(t, err)
	assert.Empty(t, f.job(), "stop returns once launchd has let the job go")

	_, err = Start(ctx, f.opts)
	require.NoError(t, err)
	assert.Equal(t, "running never", f.job())

	r, err := Uninstall(ctx, f.opts)
	require.NoError(t, err)
	assert.True(t, r.WasRunning)
	assert.Empty(t, f.job())
	assert.NoFileExists(t, f.plist)

	// Every call named the domain; none was a legacy one that guesses it.
	for _, c := range f.calls() {
		assert.Regexp(t, `^launchctl (print|print-disabled|enable|bootstrap|bootout) gui/`+uid+`\b`, c)
	}
}

// TestLaunchdRestartWaitsForTheBootout: a bootout finishes only once the
// proxy has drained; a bootstrap meanwhile fails with "Input/output error"
// and left the service unloaded. Restart waits and bootstraps once.
func TestLaunchdRestartWaitsForTheBootout(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	f.install()
	uid := strconv.Itoa(os.Getuid())

	begin := time.Now()
	res, err := Restart(context.Background(), f.opts)
	require.NoError(t, err)
	assert.Contains(t, res.String(), "Restarted the orproxy user service")
	assert.GreaterOrEqual(t, time.Since(begin), time.Second, "the bootout takes at least a second")
	assert.Equal(t, "running never", f.job())
	calls := f.calls()
	assert.Equal(t, 1, count(calls, "launchctl bootout"), "%q", calls)
	assert.Equal(t, 1, count(calls, "launchctl bootstrap"), "no bootstrap while the job was still there: %q", calls)
	assert.Greater(t, count(calls, "launchctl print gui/"+uid+"/"), 1, "polled until gone: %q", calls)
	assert.Equal(t, "launchctl bootstrap gui/"+uid+" "+f.plist, calls[len(calls)-1])
}

func TestLaunchdRestartStartsAStoppedService(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	f.install()
	_, err := Stop(context.Background(), f.opts)
	require.NoError(t, err)
	require.Empty(t, f.job())

	_, err = Restart(context.Background(), f.opts)
	require.NoError(t, err)
	assert.Equal(t, "running never", f.job())
}

// TestLaunchdSystemDomain: --system drives the system domain the same way.
func TestLaunchdSystemDomain(t *testing.T) {
	f := newLaunchdFake(t, scope{system: true})
	svc := f.launchctlFor(scope{system: true}, 5*time.Second)
	svc.l.plist = filepath.Join(f.dir, launchdLabel+".plist")
	require.NoError(t, os.WriteFile(svc.l.plist, []byte("plist"), 0o600))
	f.setJob("running never")

	require.NoError(t, svc.Restart())
	assert.Equal(t, "running never", f.job())
	calls := f.calls()
	assert.Equal(t, "launchctl bootout system/"+launchdLabel, calls[0])
	assert.Equal(t, []string{
		"launchctl enable system/" + launchdLabel,
		"launchctl bootstrap system " + svc.l.plist,
	}, calls[len(calls)-2:])
}

func TestLaunchdStopGivesUpAfterTheBound(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	t.Setenv("FAKE_BOOTOUT_S", "3600")
	svc := f.launchctlFor(scope{user: "dev"}, time.Second)
	f.setJob("running never")

	begin := time.Now()
	err := svc.Stop()
	require.ErrorIs(t, err, ErrManager)
	assert.Less(t, time.Since(begin), 10*time.Second)
	assert.Contains(t, err.Error(), "launchd did not let the orproxy user service go within 1s")
	assert.Contains(t, err.Error(), "launchctl print gui/")
	assert.Contains(t, err.Error(), "orproxy service stop")
}

// TestLaunchdStartInTheBootoutWindow: a start while an earlier bootout is
// still finishing (install right after someone's bootout) waits it out and
// bootstraps again, instead of calling the job loaded already.
func TestLaunchdStartInTheBootoutWindow(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	svc := f.launchctlFor(scope{user: "dev"}, 5*time.Second)
	require.NoError(t, os.MkdirAll(filepath.Dir(svc.l.plist), 0o700))
	require.NoError(t, os.WriteFile(svc.l.plist, []byte("plist"), 0o600))
	f.setJob("running never")
	f.bootoutNow(svc.l.target())
	f.calls()

	require.NoError(t, svc.Start())
	assert.Equal(t, "running never", f.job())
	assert.Equal(t, 2, count(f.calls(), "launchctl bootstrap"), "refused once, then loaded")
}

// TestLaunchdStartDiagnosesRefusals: launchctl says "Input/output error"
// for almost every refusal; start finds out which it was.
func TestLaunchdStartDiagnosesRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *launchdFake)
		kind  error
		says  []string
	}{
		{"disabled by the Login Items switch", func(t *testing.T, f *launchdFake) {
			t.Setenv("FAKE_BTM", "1")
			require.NoError(t, os.WriteFile(filepath.Join(f.dir, "disabled"), nil, 0o644))
		}, ErrPermission, []string{"switched off under System Settings → General → Login Items → Allow in the Background", "lists " + launchdLabel + " as disabled", "Input/output error", "orproxy service start"}},
		{"disabled, in the words before macOS 14", func(t *testing.T, f *launchdFake) {
			t.Setenv("FAKE_BTM", "1")
			t.Setenv("FAKE_DISABLED_WORD", "true")
			require.NoError(t, os.WriteFile(filepath.Join(f.dir, "disabled"), nil, 0o644))
		}, ErrPermission, []string{"Allow in the Background"}},
		{"no desktop session (SSH)", func(t *testing.T, f *launchdFake) {
			t.Setenv("FAKE_NO_DOMAIN", "1")
		}, ErrNoServiceManager, []string{"launchd has no desktop session for dev", "125: Domain does not support specified action", "SSH", "Screen Sharing", "--system", "orproxy serve"}},
		{"a plist launchd refuses", func(t *testing.T, f *launchdFake) {
			t.Setenv("FAKE_BAD_PLIST", "1")
		}, ErrManager, []string{"`launchctl bootstrap gui/", "Bootstrap failed: 5: Input/output error", "plutil -lint", "log show"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLaunchdFake(t, scope{})
			svc := f.launchctlFor(scope{user: "dev"}, 5*time.Second)
			require.NoError(t, os.MkdirAll(filepath.Dir(svc.l.plist), 0o700))
			require.NoError(t, os.WriteFile(svc.l.plist, []byte("plist"), 0o600))
			tt.setup(t, f)
			err := svc.Start()
			require.ErrorIs(t, err, tt.kind)
			for _, s := range tt.says {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "loaded already")
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.Empty(t, f.job())
		})
	}
}

// TestLaunchdStartEnablesAJobDisabledWithLaunchctl: `launchctl disable`
// (or an old `load -w`) is undone by the start's enable.
func TestLaunchdStartEnablesAJobDisabledWithLaunchctl(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	f.install()
	_, err := Stop(context.Background(), f.opts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "disabled"), nil, 0o644))

	_, err = Start(context.Background(), f.opts)
	require.NoError(t, err)
	assert.Equal(t, "running never", f.job())
}

// TestLaunchdStartOfALoadedStoppedJob: a job that ended cleanly stays
// loaded; start takes it out and loads it again.
func TestLaunchdStartOfALoadedStoppedJob(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	f.install()
	f.setJob("stopped 0")

	_, err := Start(context.Background(), f.opts)
	require.NoError(t, err)
	assert.Equal(t, "running never", f.job())
}

func TestLaunchdStatus(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	f.install()
	ctx := context.Background()
	for _, tt := range []struct {
		job    string
		state  State
		detail string
	}{
		{"running never", StateRunning, ""},
		{"running 1", StateRunning, ""},
		{"", StateStopped, ""},
		{"stopped 0", StateStopped, ""},
		{"stopped never", StateStopped, ""},
		{"stopped 78", StateFailed, "exited with an error"},
		{"stopped 78: EX_CONFIG", StateFailed, "exited with an error"},
	} {
		if tt.job == "" {
			require.NoError(t, os.Remove(filepath.Join(f.dir, "job")))
		} else {
			f.setJob(tt.job)
		}
		st, err := Status(ctx, f.opts)
		require.NoError(t, err)
		assert.Equal(t, tt.state, st.State, "job %q", tt.job)
		assert.Contains(t, st.StateDetail, tt.detail, "job %q", tt.job)
		if tt.state == StateFailed {
			assert.Contains(t, st.String(), ", failed (")
		}
	}

	// The service layer says how often launchd respawns a failing job.
	f.setJob("stopped 78")
	_, err := f.launchctlFor(scope{}, time.Second).Status()
	assert.ErrorContains(t, err, "its last run exited with code 78, and launchd starts it again every 10 s")

	t.Setenv("FAKE_NO_DOMAIN", "1")
	st, err := Status(ctx, f.opts)
	require.NoError(t, err)
	assert.Equal(t, StateUnknown, st.State)
	assert.Contains(t, st.StateDetail, "launchd has no login session")
}

func TestLaunchdSSHWithoutDesktopSession(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	t.Setenv("FAKE_NO_DOMAIN", "1")
	_, err := Install(context.Background(), f.opts)
	require.ErrorIs(t, err, ErrNoServiceManager)
	assert.Contains(t, err.Error(), "Could not find domain")
	assert.NoFileExists(t, f.plist)
}

func TestParsePrint(t *testing.T) {
	out := "gui/501/" + launchdLabel + " = {\n" +
		"\tactive count = 0\n\tstate = not running\n" +
		"\tdomain = {\n\t\tstate = running\n\t\tpid = 7\n\t}\n" +
		"\tlast exit code = 78: EX_CONFIG\n" +
		"\tlast terminating signal = Segmentation fault: 11\n}\n"
	st := parsePrint(out)
	assert.True(t, st.loaded)
	assert.False(t, st.running(), "the nested block's state is not the job's")
	assert.Equal(t, 78, st.exitCode)
	assert.True(t, st.exited)
	assert.Equal(t, "Segmentation fault: 11", st.signal)
	assert.True(t, st.failed())

	st = parsePrint("x = {\n\tstate = running\n\tpid = 12\n\tlast exit code = (never exited)\n}\n")
	assert.True(t, st.running())
	assert.Equal(t, 12, st.pid)
	assert.False(t, st.exited)
	assert.False(t, st.failed())
}

var _ service.Service = (*launchdService)(nil)

// TestReadmeQuotesTheLaunchdMessages keeps README's troubleshooting table in
// step with what start says on macOS.
func TestReadmeQuotesTheLaunchdMessages(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	doc := string(data)

	f := newLaunchdFake(t, scope{})
	svc := f.launchctlFor(scope{user: "dev"}, time.Second)
	require.NoError(t, os.MkdirAll(filepath.Dir(svc.l.plist), 0o700))
	require.NoError(t, os.WriteFile(svc.l.plist, []byte("plist"), 0o600))
	t.Setenv("FAKE_BTM", "1")
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "disabled"), nil, 0o644))
	err = svc.Start()
	require.Error(t, err)
	assert.Contains(t, doc, "`"+strings.Split(err.Error(), " (`launchctl")[0]+"`")

	t.Setenv("FAKE_NO_DOMAIN", "1")
	err = svc.Start()
	require.Error(t, err)
	assert.Contains(t, doc, "`"+strings.Replace(strings.Split(err.Error(), " (`launchctl")[0], " dev ", " USER ", 1)+"`")
}
