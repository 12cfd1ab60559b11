package service

import (
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Definition is everything the service definition depends on. The unit and
// the plist are rendered from it by pure functions so they can be tested byte
// for byte and handed to kardianos/service as finished text.
type Definition struct {
	// System selects a system-wide service; false is a per-user service.
	System bool
	// Executable is the absolute path of the orproxy binary the service runs.
	Executable string
	// ConfigFile is the absolute path passed as `serve --config`.
	ConfigFile string
	// Env are environment variables set for the service, in this order.
	Env []EnvVar
	// Label is the launchd job label (launchd only).
	Label string
	// LogDir is where launchd writes the service's stdout and stderr
	// (launchd only; systemd sends them to journald).
	LogDir string
	// DrainTimeout is how long the proxy lets open requests finish after a
	// stop request; 0 means the proxy's default (30 s). The manager's stop
	// timeout (TimeoutStopSec, ExitTimeOut) is rendered longer than it.
	DrainTimeout time.Duration
}

// stopSeconds is the manager's stop timeout in whole seconds, rounded up.
func (d Definition) stopSeconds() string {
	t := managerStopTimeout(d.DrainTimeout)
	return strconv.FormatInt(int64((t+time.Second-1)/time.Second), 10)
}

// EnvVar is one environment variable of the service.
type EnvVar struct {
	Name, Value string
}

// Args are the arguments after the executable.
func (d Definition) Args() []string {
	return []string{"serve", "--config", d.ConfigFile}
}

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// A launchd label is conventionally reverse-DNS; restricting it also keeps
	// it safe as a file name (~/Library/LaunchAgents/<label>.plist).
	labelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// validate rejects what neither format can carry safely. kardianos/service
// v1.3 runs the text it is given through its own template engine, which would
// parse a "{{" inside a path or value, so that is refused too.
func (d Definition) validate() error {
	if !strings.HasPrefix(d.Executable, "/") {
		return fmt.Errorf("executable %q is not an absolute path", d.Executable)
	}
	if !strings.HasPrefix(d.ConfigFile, "/") {
		return fmt.Errorf("config file %q is not an absolute path", d.ConfigFile)
	}
	if d.DrainTimeout < 0 {
		return fmt.Errorf("drain timeout %s is negative", d.DrainTimeout)
	}
	if err := checkValue("executable path", d.Executable); err != nil {
		return err
	}
	if err := checkValue("config file path", d.ConfigFile); err != nil {
		return err
	}
	for _, e := range d.Env {
		if !envName.MatchString(e.Name) {
			return fmt.Errorf("environment variable name %q is not valid", e.Name)
		}
		if err := checkValue("environment variable "+e.Name, e.Value); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if strings.Contains(v, "{{") {
		return fmt.Errorf("%s contains \"{{\", which the service library would read as a template", what)
	}
	for _, r := range v {
		// Control characters have no safe spelling in a unit file line, and
		// XML 1.0 cannot carry most of them at all.
		if unicode.IsControl(r) || r == '\uFFFE' || r == '\uFFFF' {
			return fmt.Errorf("%s contains the control character %U", what, r)
		}
	}
	return nil
}

// Systemd quoting (systemd.syntax(7), systemd.service(5)): inside double
// quotes, C escapes are decoded, so '\' and '"' are escaped; '%' starts a
// specifier everywhere; '$' starts variable expansion in the arguments of
// ExecStart, but not in the executable path, which systemd takes literally
// and refuses outright if it holds a quote, a backslash or a control
// character ("Executable name contains special characters").
var (
	exeQuoter  = strings.NewReplacer(`%`, `%%`)
	argQuoter  = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	envQuoter  = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`)
	systemdBad = `"'\`
)

// RenderSystemdUnit renders the systemd unit. Unlike the template built into
// kardianos/service it targets default.target for user units (the user
// manager has no multi-user.target), restarts after 2 s instead of 120 s,
// quotes every argument and environment value, and leaves logging to
// journald.
func RenderSystemdUnit(d Definition) (string, error) {
	if err := d.validate(); err != nil {
		return "", err
	}
	if strings.ContainsAny(d.Executable, systemdBad) {
		return "", fmt.Errorf("systemd cannot run an executable whose path contains a quote or a backslash (%s): move orproxy to a plain path", d.Executable)
	}
	var b strings.Builder
	b.WriteString("# Written by `orproxy service install`; `orproxy service uninstall` removes it.\n")
	b.WriteString("[Unit]\n")
	b.WriteString("Description=orproxy, local credential proxy for OpenRouter\n")
	if d.System {
		// The user manager has no network-online.target; a system service
		// should not start before the network it forwards to.
		b.WriteString("Wants=network-online.target\n")
		b.WriteString("After=network-online.target\n")
	}
	// At most 5 starts per minute: a broken config fails the unit quickly
	// instead of restarting it forever.
	b.WriteString("StartLimitIntervalSec=60\n")
	b.WriteString("StartLimitBurst=5\n")
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=simple\n")
	b.WriteString("ExecStart=")
	b.WriteString(`"` + exeQuoter.Replace(d.Executable) + `"`)
	for _, a := range d.Args() {
		b.WriteString(` "` + argQuoter.Replace(a) + `"`)
	}
	b.WriteString("\n")
	for _, e := range d.Env {
		b.WriteString(`Environment="` + envQuoter.Replace(e.Name+"="+e.Value) + "\"\n")
	}
	b.WriteString("Restart=on-failure\n")
	b.WriteString("RestartSec=2\n")
	// serve drains open streams on SIGTERM; past this systemd kills it, so
	// it is longer than the drain and than serve's own wait for it.
	b.WriteString("TimeoutStopSec=" + d.stopSeconds() + "\n")
	b.WriteString("SyslogIdentifier=orproxy\n")
	// The proxy needs no privileges it was not started with, and everything
	// it writes (credentials, backups, the ledger) is its user's alone.
	// Both work in a user unit; sandboxing that needs mount namespaces
	// (PrivateTmp=, ProtectSystem=, ProtectHome=) does not without user
	// namespaces, so it is left out rather than failing the start.
	b.WriteString("NoNewPrivileges=yes\n")
	b.WriteString("UMask=0077\n")
	b.WriteString("\n[Install]\n")
	if d.System {
		b.WriteString("WantedBy=multi-user.target\n")
	} else {
		b.WriteString("WantedBy=default.target\n")
	}
	return finish(b.String())
}

// launchdThrottleSeconds is the plist's ThrottleInterval, the least time
// between two starts of the job.
const launchdThrottleSeconds = 10

// RenderLaunchdPlist renders the launchd property list: a LaunchAgent for a
// user service, a LaunchDaemon for a system one.
func RenderLaunchdPlist(d Definition) (string, error) {
	if err := d.validate(); err != nil {
		return "", err
	}
	if !labelPattern.MatchString(d.Label) {
		return "", fmt.Errorf("launchd label %q is not valid", d.Label)
	}
	if !strings.HasPrefix(d.LogDir, "/") {
		return "", fmt.Errorf("log directory %q is not an absolute path", d.LogDir)
	}
	if err := checkValue("log directory", d.LogDir); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<!-- Written by `orproxy service install`; `orproxy service uninstall` removes it. -->\n")
	b.WriteString(`<plist version="1.0">` + "\n<dict>\n")
	key := func(k string) { b.WriteString("\t<key>" + xmlText(k) + "</key>\n") }
	str := func(indent, s string) { b.WriteString(indent + "<string>" + xmlText(s) + "</string>\n") }

	key("Label")
	str("\t", d.Label)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	str("\t\t", d.Executable)
	for _, a := range d.Args() {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	if len(d.Env) > 0 {
		key("EnvironmentVariables")
		b.WriteString("\t<dict>\n")
		for _, e := range d.Env {
			b.WriteString("\t\t<key>" + xmlText(e.Name) + "</key>\n")
			str("\t\t", e.Value)
		}
		b.WriteString("\t</dict>\n")
	}
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	// Restart after a crash or a failed start, but not after a clean exit,
	// like Restart=on-failure under systemd.
	key("KeepAlive")
	b.WriteString("\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n")
	// At least 10 s between respawns: launchd never gives up on a job that
	// keeps failing (systemd's StartLimitBurst has no launchd equivalent),
	// so a broken config must not respawn and fill the log every 2 s.
	key("ThrottleInterval")
	b.WriteString("\t<integer>" + strconv.Itoa(launchdThrottleSeconds) + "</integer>\n")
	// Interactive: launchd would otherwise treat the proxy as a background
	// job and throttle its CPU and I/O, which a client waiting on a stream
	// would feel.
	key("ProcessType")
	str("\t", "Interactive")
	// launchd kills a job 20 s after SIGTERM by default, which would cut
	// the drain of open streams short.
	key("ExitTimeOut")
	b.WriteString("\t<integer>" + d.stopSeconds() + "</integer>\n")
	key("StandardOutPath")
	str("\t", d.LogDir+"/orproxy.log")
	key("StandardErrorPath")
	str("\t", d.LogDir+"/orproxy.log")
	b.WriteString("</dict>\n</plist>\n")
	return finish(b.String())
}

func xmlText(s string) string {
	var b strings.Builder
	// Cannot fail: strings.Builder never returns a write error.
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// finish is the last guard before the text reaches kardianos' template
// engine: validation should already have refused any "{{".
func finish(s string) (string, error) {
	if strings.Contains(s, "{{") {
		return "", errors.New("rendered service definition contains \"{{\"")
	}
	return s, nil
}
