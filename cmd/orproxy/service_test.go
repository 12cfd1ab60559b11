package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/service"
)

type text string

func (t text) String() string { return string(t) }

// recordServiceActions replaces what the service subcommands call with
// recorders, so no service manager is touched; it returns the calls made.
func recordServiceActions(t *testing.T, err error) *[]string {
	t.Helper()
	saved := serviceActions
	t.Cleanup(func() { serviceActions = saved })
	calls := &[]string{}
	serviceActions = nil
	for _, a := range saved {
		name := a.name
		serviceActions = append(serviceActions, serviceAction{name: name, short: a.short,
			run: func(_ context.Context, o service.Options) (fmt.Stringer, error) {
				*calls = append(*calls, fmt.Sprintf("%s system=%t config=%q", name, o.System, o.ConfigFile))
				if err != nil {
					return nil, err
				}
				return text(name + " done"), nil
			}})
	}
	return calls
}

func TestServiceUsageErrors(t *testing.T) {
	calls := recordServiceActions(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service"}, "service needs an action: install, uninstall, start, stop, restart or status"},
		{[]string{"service", "--system"}, "service needs an action"},
		{[]string{"service", "reinstall"}, `unknown service action (use install`},
		{[]string{"service", "status", "extra"}, "takes no arguments"},
		{[]string{"service", "install", "--no-such-flag"}, "unknown flag"},
	} {
		code, out, errOut := run(t, tc.args...)
		assert.Equal(t, exitUsage, code, "%v", tc.args)
		assert.Contains(t, errOut, tc.want, "%v", tc.args)
		assert.Regexp(t, `Run .orproxy service( [a-z]+)? --help. for usage`, errOut, "%v", tc.args)
		assert.Empty(t, out, "%v", tc.args)
	}
	assert.Empty(t, *calls, "a usage error reaches no service manager")
}

func TestServiceFlagsReachPackageService(t *testing.T) {
	calls := recordServiceActions(t, nil)
	cfg := filepath.Join(t.TempDir(), "my config.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "status"}, `status system=false config=""`},
		{[]string{"--config", cfg, "service", "install"}, fmt.Sprintf("install system=false config=%q", cfg)},
		{[]string{"service", "install", "--system", "--config", cfg}, fmt.Sprintf("install system=true config=%q", cfg)},
		{[]string{"service", "--system", "stop"}, `stop system=true config=""`},
		{[]string{"service", "uninstall", "--system"}, `uninstall system=true config=""`},
		{[]string{"service", "start"}, `start system=false config=""`},
		{[]string{"service", "restart", "--config=" + cfg}, fmt.Sprintf("restart system=false config=%q", cfg)},
	} {
		*calls = nil
		code, out, errOut := run(t, tc.args...)
		assert.Equal(t, exitOK, code, "%v: %s", tc.args, errOut)
		assert.Equal(t, []string{tc.want}, *calls, "%v", tc.args)
		assert.Contains(t, out, " done\n", "%v", tc.args)
	}
}

func TestServiceConfigFromTheEnvironment(t *testing.T) {
	calls := recordServiceActions(t, nil)
	cfg := filepath.Join(t.TempDir(), "env.yaml")
	t.Setenv("ORPROXY_CONFIG", cfg)
	var out, errOut bytes.Buffer
	code := execute([]string{"service", "status"}, streams{in: strings.NewReader(""), out: &out, err: &errOut})
	assert.Equal(t, exitOK, code, errOut.String())
	assert.Equal(t, []string{fmt.Sprintf("status system=false config=%q", cfg)}, *calls)

	*calls = nil
	flag := filepath.Join(t.TempDir(), "flag.yaml")
	code = execute([]string{"service", "status", "--config", flag}, streams{in: strings.NewReader(""), out: &out, err: &errOut})
	assert.Equal(t, exitOK, code, errOut.String())
	assert.Equal(t, []string{fmt.Sprintf("status system=false config=%q", flag)}, *calls, "--config wins over the environment")

	*calls = nil
	t.Setenv("HOME", t.TempDir())
	code = execute([]string{"service", "status", "--config", "~/orproxy.yaml"}, streams{in: strings.NewReader(""), out: &out, err: &errOut})
	assert.Equal(t, exitOK, code, errOut.String())
	assert.Equal(t, []string{fmt.Sprintf("status system=false config=%q", filepath.Join(os.Getenv("HOME"), "orproxy.yaml"))}, *calls, "~ as serve reads it")
}

func TestServiceFailureIsOneLineAndExit1(t *testing.T) {
	msg := "orproxy is not installed as a user service: run `orproxy service install`"
	recordServiceActions(t, &service.Error{Kind: service.ErrNotInstalled, Msg: msg, Err: errors.New("cause")})
	code, out, errOut := run(t, "service", "stop")
	assert.Equal(t, exitFailure, code)
	assert.Empty(t, out)
	assert.Equal(t, "orproxy: "+msg+"\n", errOut)
}

// TestServiceBinaryUsageExitCodes checks the exit status the shell sees.
func TestServiceBinaryUsageExitCodes(t *testing.T) {
	bin := binary(t)
	home := t.TempDir()
	for _, args := range [][]string{{"service"}, {"service", "bogus"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + home, "PATH=/nonexistent"}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v", args)
		assert.Equal(t, exitUsage, exit.ExitCode(), "%v", args)
		assert.Contains(t, stderr.String(), "install, uninstall, start, stop, restart or status", "%v", args)
		assert.Contains(t, stderr.String(), "orproxy service --help", "%v", args)
		assert.Empty(t, stdout.String(), "%v", args)
	}
}

// replaceServiceAction makes the named subcommand return res and err.
func replaceServiceAction(t *testing.T, name string, res fmt.Stringer, err error) {
	t.Helper()
	saved := serviceActions
	t.Cleanup(func() { serviceActions = saved })
	serviceActions = append([]serviceAction(nil), saved...)
	for i, a := range serviceActions {
		if a.name == name {
			serviceActions[i].run = func(context.Context, service.Options) (fmt.Stringer, error) { return res, err }
		}
	}
}

func TestServiceStatusExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		st     service.StatusResult
		code   int
		stderr string
	}{
		{"running", service.StatusResult{Manager: "systemd", Installed: true, State: service.StateRunning}, exitOK, ""},
		{"running but not answering", service.StatusResult{Manager: "systemd", Installed: true, State: service.StateRunning, HealthURL: "http://127.0.0.1:1/healthz", HealthError: "refused"}, exitOK, ""},
		{"stopped", service.StatusResult{Manager: "systemd", Installed: true, State: service.StateStopped}, exitNotRunning, ""},
		{"failed", service.StatusResult{Manager: "systemd", Installed: true, State: service.StateFailed}, exitNotRunning, ""},
		{"not installed", service.StatusResult{Manager: "systemd", State: service.StateUnknown}, exitNotRunning, ""},
		{"manager cannot say", service.StatusResult{Manager: "systemd", Installed: true, State: service.StateUnknown, StateDetail: "systemctl timed out"}, exitFailure, "systemd did not say whether the orproxy user service runs: systemctl timed out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			replaceServiceAction(t, "status", &st, nil)
			code, out, errOut := run(t, "service", "status")
			assert.Equal(t, tt.code, code)
			assert.Equal(t, st.String()+"\n", out, "the report is printed whatever the state")
			if tt.stderr == "" {
				assert.Empty(t, errOut)
			} else {
				assert.Equal(t, "orproxy: "+tt.stderr+"\n", errOut)
			}
		})
	}
}

func TestServiceUninstallWhenNotInstalled(t *testing.T) {
	replaceServiceAction(t, "uninstall", nil, &service.Error{Kind: service.ErrNotInstalled, Msg: "orproxy is not installed as a user service: run `orproxy service install`"})
	code, out, errOut := run(t, "service", "uninstall")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "Nothing to remove: orproxy is not installed as a user service.\n", out)
	assert.Empty(t, errOut)

	code, out, _ = run(t, "service", "uninstall", "--system")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "not installed as a system service")

	// Other actions on a missing service still fail.
	replaceServiceAction(t, "stop", nil, &service.Error{Kind: service.ErrNotInstalled, Msg: "orproxy is not installed as a user service: run `orproxy service install`"})
	code, _, errOut = run(t, "service", "stop")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "orproxy service install")
}
