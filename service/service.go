// Package service installs and controls orproxy as a system service: a
// systemd user unit on Linux, a LaunchAgent on macOS (--system: a system unit
// or a LaunchDaemon), and a Windows service. It runs on
// github.com/kardianos/service, but renders the unit and the plist itself
// (see RenderSystemdUnit), writes them itself so that they are private from
// the start (see writeDefinition), and runs the service manager's commands
// itself where kardianos would lose their error output, so that every
// failure reaches the user as one clear line.
//
// Every function returns either a result whose String method is the text to
// show, or an *Error whose message is; the command line only prints them.
package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kardianos/service"

	"github.com/orproxy/orproxy/configs"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/netaddr"
)

// Options are the inputs of every command. The zero value manages the
// per-user service of the running binary with the default config file.
type Options struct {
	// System manages the system-wide service instead of the per-user one
	// (--system). It needs root (Administrator on Windows).
	System bool
	// ConfigFile is the config file the service runs with (--config); empty
	// means config.yaml in config.Dir(). A relative path is made absolute.
	ConfigFile string
	// Executable is the binary the service runs; empty means this one.
	Executable string
	// Listen is the address the proxy serves on, for the port check and GET
	// /healthz; empty reads it from ConfigFile the way the service will.
	Listen string
	// HTTPClient asks the proxy for /healthz; nil means LocalClient with a
	// 2-second timeout.
	HTTPClient *http.Client
	// HealthTimeout bounds the wait for /healthz after a start; 0 means 10 s.
	HealthTimeout time.Duration
	// LookupEnv reads the installing environment for the variables carried
	// into the service; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ lists the installing environment, for the ORPROXY_* variables
	// carried into the service and read as the service will; nil means
	// os.Environ.
	Environ func() []string
}

const (
	description          = "orproxy, local credential proxy for OpenRouter"
	defaultHealthTimeout = 10 * time.Second
)

// scope is the user or system variant of the service, with what messages
// need to say about it.
type scope struct {
	system bool
	user   string
}

func (s scope) kind() string {
	if s.system {
		return "system service"
	}
	return "user service"
}

// command spells the orproxy command that does action in this scope, the
// way the user should type it.
func (s scope) command(action string) string {
	c := "orproxy service " + action
	if s.system {
		c += " --system"
		if runtime.GOOS != "windows" && geteuid() != 0 {
			c = "sudo " + c
		}
	}
	return c
}

// geteuid is a variable so tests running as root can play an ordinary user.
var geteuid = os.Geteuid

// run is one resolved command invocation.
type run struct {
	opts       Options
	sc         scope
	p          platform
	configFile string
	client     *http.Client
	// userIgnored: a per-user service was asked for where there is none.
	userIgnored bool
}

func prepare(opts Options) (*run, error) {
	r := &run{opts: opts, sc: scope{system: opts.System, user: currentUser()}, p: platformFor()}
	if err := r.p.check(); err != nil {
		return nil, err
	}
	if runtime.GOOS == "windows" && !r.sc.system {
		// kardianos ignores UserService on Windows: every service there is
		// a system service, so say so rather than pretend.
		r.sc.system = true
		r.userIgnored = true
	}
	path, _, err := config.FilePath(opts.ConfigFile, nil)
	if err != nil {
		return nil, newError(ErrInvalid, err, fmt.Sprintf("cannot find the config directory: %v; pass --config FILE", err))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, newError(ErrInvalid, err, fmt.Sprintf("config file %s: %v", path, err))
	}
	r.configFile = abs
	r.client = opts.HTTPClient
	if r.client == nil {
		r.client = LocalClient(healthCallTimeout)
	}
	return r, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return os.Getenv("USERNAME")
}

// needRoot refuses early what the service manager would refuse late (or
// answer with a password prompt that a timeout would cut off).
func (r *run) needRoot(action string) error {
	if !r.sc.system || runtime.GOOS == "windows" || geteuid() == 0 {
		return nil
	}
	return newError(ErrPermission, nil, fmt.Sprintf(
		"managing the system-wide service needs root: run `sudo orproxy service %s --system`, or drop --system for a per-user service", action))
}

// newService builds the kardianos service around the rendered definition.
func (r *run) newService(def Definition) (service.Service, error) {
	cfg, err := r.p.config(def, r.sc)
	if err != nil {
		return nil, newError(ErrInvalid, err, fmt.Sprintf("cannot set up the service definition: %v", err))
	}
	if d, ok := r.p.(driver); ok {
		return d.service(def, r.sc), nil
	}
	s, err := service.New(noop{}, cfg)
	if err != nil {
		return nil, newError(ErrUnsupported, err, fmt.Sprintf("cannot set up the service: %v", err))
	}
	return s, nil
}

// noop is the kardianos program for control commands, which never run it.
type noop struct{}

func (noop) Start(service.Service) error { return nil }
func (noop) Stop(service.Service) error  { return nil }

// definition is what the service runs. Control commands build it too,
// because kardianos needs a Config to address the service; only install
// writes it.
func (r *run) definition(exe string, env []EnvVar) (Definition, error) {
	logDir, err := r.p.logDir(r.sc)
	if err != nil {
		return Definition{}, newError(ErrInvalid, err, fmt.Sprintf("cannot find the log directory: %v", err))
	}
	return Definition{
		System:     r.sc.system,
		Executable: exe,
		ConfigFile: r.configFile,
		Env:        env,
		Label:      launchdLabel,
		LogDir:     logDir,
		// What `orproxy serve` drains with (cmd/orproxy/serve.go).
		DrainTimeout: defaultDrain,
	}, nil
}

// installed reports whether the service definition exists.
func (r *run) installed(ctx context.Context, s service.Service) (bool, string, error) {
	file, err := r.p.definitionFile(r.sc)
	if err != nil {
		return false, "", newError(ErrInvalid, err, fmt.Sprintf("cannot locate the service definition: %v", err))
	}
	if file != "" {
		_, err := os.Stat(file)
		switch {
		case err == nil:
			return true, file, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, file, nil
		default:
			return false, file, newError(ErrInvalid, err, fmt.Sprintf("cannot check %s: %v", file, err))
		}
	}
	_, err = s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return false, "", nil
	case err != nil:
		return false, "", r.p.explain(ctx, r.sc, "query", err)
	}
	return true, "", nil
}

func (r *run) notInstalled(file string) error {
	where := ""
	if file != "" {
		where = " (no " + file + ")"
	}
	return newError(ErrNotInstalled, nil, fmt.Sprintf("orproxy is not installed as a %s%s: run `%s`", r.sc.kind(), where, r.sc.command("install")))
}

// listenAddress reads the listen address the way the service's
// `serve --config` will: Options over the ORPROXY_* variables install
// carries (those of this environment) over the file over defaults.
func (r *run) listenAddress() (string, error) {
	if r.opts.Listen != "" {
		return r.opts.Listen, nil
	}
	getenv := getenvFrom(orproxyEnv(r.environ()))
	cfg := config.Default()
	if v := getenv(config.EnvListen); v != "" {
		cfg.Listen = v
	}
	if _, statErr := os.Stat(r.configFile); statErr == nil {
		loaded, err := config.Load(config.Options{File: r.configFile, Getenv: getenv})
		if err != nil {
			return "", newError(ErrBadConfig, err, fmt.Sprintf("the service's settings are not valid (%s and the ORPROXY_* variables of this environment): %v", r.configFile, err))
		}
		cfg = loaded.Config
	}
	return cfg.Listen, nil
}

func (r *run) healthTimeout() time.Duration {
	if r.opts.HealthTimeout > 0 {
		return r.opts.HealthTimeout
	}
	return defaultHealthTimeout
}

// executable resolves and checks the binary the service will run.
func (r *run) executable() (string, error) {
	exe := r.opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", newError(ErrInvalid, err, fmt.Sprintf("cannot find the orproxy binary: %v", err))
		}
	}
	abs, err := filepath.Abs(exe)
	if err != nil {
		return "", newError(ErrInvalid, err, fmt.Sprintf("orproxy binary %s: %v", exe, err))
	}
	// `go run` builds into a temporary directory that is gone after the run;
	// a service pointing there would never start again.
	if strings.Contains(filepath.ToSlash(abs), "/go-build") {
		return "", newError(ErrInvalid, nil, fmt.Sprintf("%s is a temporary `go run` build: build or install orproxy first, then run `orproxy service install` from the installed binary", abs))
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", newError(ErrInvalid, err, fmt.Sprintf("orproxy binary %s: %v", abs, err))
	}
	if !fi.Mode().IsRegular() || (runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0) {
		return "", newError(ErrInvalid, nil, fmt.Sprintf("%s is not an executable file", abs))
	}
	return abs, nil
}

// ensureConfig writes the documented default config when the file does not
// exist, so the service's `--config` always names a file.
func ensureConfig(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, newError(ErrBadConfig, err, fmt.Sprintf("cannot read the config file %s: %v", path, err))
	}
	// 0700/0600: the file may later hold access_token.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, newError(ErrBadConfig, err, fmt.Sprintf("cannot create the config directory: %v", err))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, newError(ErrBadConfig, err, fmt.Sprintf("cannot create the config file: %v", err))
	}
	if _, err := f.Write(configs.Example()); err != nil {
		f.Close()
		os.Remove(path)
		return false, newError(ErrBadConfig, err, fmt.Sprintf("cannot write the config file %s: %v", path, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, newError(ErrBadConfig, err, fmt.Sprintf("cannot write the config file %s: %v", path, err))
	}
	return true, nil
}

// InstallResult is what install did.
type InstallResult struct {
	System bool
	// Manager is the service manager: systemd, launchd or Windows.
	Manager string
	// Name is the unit name, launchd label or Windows service name.
	Name string
	// File is the unit or plist written; empty on Windows.
	File string
	// Command is what the service runs.
	Command []string
	// ConfigFile is the service's config file; ConfigCreated says install
	// wrote it from the documented defaults.
	ConfigFile    string
	ConfigCreated bool
	// CarriedEnv are the variables copied from the installing environment:
	// orproxy's own as NAME=value with secrets redacted, the others by name
	// only (a proxy URL may hold a password).
	// from the installing environment into the service.
	CarriedEnv []string
	// HealthURL answered 200 after the start.
	HealthURL string
	// Logs says where the service's logs go.
	Logs string
	// Notes are further things the user should know (lingering off, Windows
	// ignoring the per-user request).
	Notes []string
}

func (r *InstallResult) String() string {
	var b strings.Builder
	kind := scope{system: r.System}.kind()
	fmt.Fprintf(&b, "Installed and started orproxy as a %s (%s %s)", kind, r.Manager, r.Name)
	if r.File != "" {
		fmt.Fprintf(&b, ": %s", r.File)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  runs:    %s\n", strings.Join(quoteArgs(r.Command), " "))
	if r.ConfigCreated {
		fmt.Fprintf(&b, "  config:  %s (new, with the documented defaults)\n", r.ConfigFile)
	} else {
		fmt.Fprintf(&b, "  config:  %s\n", r.ConfigFile)
	}
	if len(r.CarriedEnv) > 0 {
		fmt.Fprintf(&b, "  carried from this environment: %s\n", strings.Join(r.CarriedEnv, ", "))
	}
	fmt.Fprintf(&b, "  health:  %s answers\n", r.HealthURL)
	fmt.Fprintf(&b, "  logs:    %s\n", r.Logs)
	for _, n := range r.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\$") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return out
}

// Install writes the service definition (and a default config file if there
// is none), enables and starts the service, and waits until the proxy
// answers GET /healthz. It refuses when the service is already installed or
// the listen address is taken, by another program or by an orproxy already
// running.
func Install(ctx context.Context, opts Options) (*InstallResult, error) {
	r, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := r.needRoot("install"); err != nil {
		return nil, err
	}
	exe, err := r.executable()
	if err != nil {
		return nil, err
	}
	if err := r.p.preflight(ctx, r.sc); err != nil {
		return nil, err
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := append(carriedEnv(lookup), orproxyEnv(r.environ())...)
	def, err := r.definition(exe, env)
	if err != nil {
		return nil, err
	}
	warnings := installWarnings(r.p, def, r.sc)
	svc, err := r.newService(def)
	if err != nil {
		return nil, err
	}
	installed, file, err := r.installed(ctx, svc)
	if err != nil {
		return nil, err
	}
	if installed {
		where := ""
		if file != "" {
			where = " (" + file + ")"
		}
		return nil, newError(ErrAlreadyInstalled, nil, fmt.Sprintf(
			"orproxy is already installed as a %s%s: use `%s` to restart it, or `%s` first to install it afresh",
			r.sc.kind(), where, r.sc.command("restart"), r.sc.command("uninstall")))
	}

	// Until the definition is in place, a failure takes back what this
	// install did, newest first: nothing is left that the user never had,
	// and the next attempt is not blocked by leftovers. Once it is in place,
	// a failure leaves the service installed so that its logs can be read.
	var undo []func()
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()

	created, err := ensureConfig(r.configFile)
	if err != nil {
		return nil, err
	}
	if created {
		undo = append(undo, func() { os.Remove(r.configFile) })
	}
	listen, err := r.listenAddress()
	if err != nil {
		return nil, err
	}
	addr, err := netaddr.DialAddress(listen)
	if err != nil {
		return nil, newError(ErrBadConfig, err, fmt.Sprintf("%s: %v", r.configFile, err))
	}
	res := &InstallResult{
		System:        r.sc.system,
		Manager:       r.p.manager(),
		Name:          r.p.name(),
		File:          file,
		Command:       append([]string{exe}, def.Args()...),
		ConfigFile:    r.configFile,
		ConfigCreated: created,
		CarriedEnv:    shownEnv(env),
		HealthURL:     healthURL(addr),
		Logs:          r.p.logs(r.sc),
	}
	switch probePort(ctx, r.client, addr) {
	case portTaken:
		return nil, newError(ErrPortInUse, nil, fmt.Sprintf(
			"%s is already in use by another program (it does not answer GET /healthz like orproxy): stop that program, or set `listen:` in %s to a free address",
			listen, r.configFile))
	case portOurs:
		// The new service could not listen, and the health check below
		// would get its answer from the old process: refuse rather than
		// report a service that restart-loops as answering.
		return nil, newError(ErrPortInUse, nil, fmt.Sprintf(
			"an orproxy already answers at %s, so the service could not listen there: stop it first (`orproxy service stop`, with --system for the system service, or end the `orproxy serve` running in a terminal), or set `listen:` in %s to another address; then run `%s` again",
			listen, r.configFile, r.sc.command("install")))
	}
	if err := r.p.prepare(def); err != nil {
		return nil, err
	}

	undo = append(undo, func() { r.p.rollback(ctx, r.sc, file) })
	if err := r.p.install(ctx, r.sc, def, svc, file); err != nil {
		return nil, err
	}
	undo = nil // installed: from here on nothing is taken back
	if err := svc.Start(); err != nil {
		if err = r.p.explain(ctx, r.sc, "start", err); err != nil {
			return nil, withWarnings(installedBut(err, r.sc), warnings)
		}
	}
	if err := waitHealthy(ctx, r.client, res.HealthURL, r.healthTimeout()); err != nil {
		return nil, withWarnings(newError(ErrNotHealthy, err, fmt.Sprintf(
			"orproxy was installed and started as a %s, but %s did not answer within %s (%v): see %s",
			r.sc.kind(), res.HealthURL, r.healthTimeout(), err, res.Logs)), warnings)
	}
	if r.userIgnored {
		res.Notes = append(res.Notes, "Windows has no per-user services: orproxy was installed as a system service that runs as LocalSystem and starts at boot. Give it an absolute credentials.file in its config file so it finds your credentials.")
	}
	res.Notes = append(res.Notes, warnings...)
	if w := checkoutWarning(exe, r.sc); w != "" {
		res.Notes = append(res.Notes, w)
	}
	res.Notes = append(res.Notes, r.p.afterInstall(ctx, r.sc)...)
	return res, nil
}

// installedBut says that the definition is in place although the start failed,
// so the user knows to fix the cause rather than reinstall.
func installedBut(err error, sc scope) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: e.Kind, Err: e.Err, Msg: fmt.Sprintf(
			"orproxy was installed as a %s but did not start: %s (after fixing this, run `%s`)", sc.kind(), e.Msg, sc.command("start"))}
	}
	return err
}

// Result is what uninstall, start, stop or restart did.
type Result struct {
	// Action is uninstall, start, stop or restart.
	Action string
	System bool
	// Name is the unit name, launchd label or Windows service name.
	Name string
	// File is the unit or plist concerned; empty on Windows.
	File string
	// HealthURL answered 200 after a start or restart.
	HealthURL string
	// WasRunning: uninstall stopped the service first.
	WasRunning bool
	// Notes are further things the user should know.
	Notes []string
}

func (r *Result) String() string {
	var b strings.Builder
	kind := scope{system: r.System}.kind()
	switch r.Action {
	case "uninstall":
		fmt.Fprintf(&b, "Removed the orproxy %s", kind)
		if r.File != "" {
			fmt.Fprintf(&b, " (%s)", r.File)
		}
		if r.WasRunning {
			b.WriteString("; it was stopped first")
		}
	case "start":
		fmt.Fprintf(&b, "Started the orproxy %s; %s answers", kind, r.HealthURL)
	case "restart":
		fmt.Fprintf(&b, "Restarted the orproxy %s; %s answers", kind, r.HealthURL)
	case "stop":
		fmt.Fprintf(&b, "Stopped the orproxy %s", kind)
	}
	b.WriteString("\n")
	for _, n := range r.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// control is the common start of uninstall, start, stop and restart: root,
// preflight, and an installed service.
func control(ctx context.Context, opts Options, action string) (*run, service.Service, string, error) {
	r, err := prepare(opts)
	if err != nil {
		return nil, nil, "", err
	}
	if err := r.needRoot(action); err != nil {
		return nil, nil, "", err
	}
	if err := r.p.preflight(ctx, r.sc); err != nil {
		return nil, nil, "", err
	}
	// The executable does not matter for controlling an installed service;
	// kardianos only needs a Config to address it.
	def, err := r.definition("/orproxy", nil)
	if err != nil {
		return nil, nil, "", err
	}
	svc, err := r.newService(def)
	if err != nil {
		return nil, nil, "", err
	}
	installed, file, err := r.installed(ctx, svc)
	if err != nil {
		return nil, nil, "", err
	}
	if !installed {
		return nil, nil, "", r.notInstalled(file)
	}
	return r, svc, file, nil
}

// Uninstall stops the service if it runs, removes its definition and lets
// the service manager forget it. The config file, credentials and logs stay.
func Uninstall(ctx context.Context, opts Options) (*Result, error) {
	r, svc, file, err := control(ctx, opts, "uninstall")
	if err != nil {
		return nil, err
	}
	st, _ := svc.Status()
	running := st == service.StatusRunning
	if running {
		if err := svc.Stop(); err != nil {
			if err = r.p.explain(ctx, r.sc, "stop", err); err != nil {
				return nil, err
			}
		}
	}
	if err := svc.Uninstall(); err != nil {
		if err = r.p.explain(ctx, r.sc, "uninstall", err); err != nil {
			return nil, err
		}
	}
	res := &Result{Action: "uninstall", System: r.sc.system, Name: r.p.name(), File: file, WasRunning: running}
	res.Notes = append(res.Notes, fmt.Sprintf("The config file %s and the stored credentials were kept.", r.configFile))
	return res, nil
}

// Start starts the installed service and waits until the proxy answers.
func Start(ctx context.Context, opts Options) (*Result, error) {
	r, svc, file, err := control(ctx, opts, "start")
	if err != nil {
		return nil, err
	}
	if st, _ := svc.Status(); st == service.StatusRunning {
		return nil, newError(ErrAlreadyRunning, nil, fmt.Sprintf(
			"the orproxy %s is already running: use `%s` to restart it", r.sc.kind(), r.sc.command("restart")))
	}
	if err := svc.Start(); err != nil {
		if err = r.p.explain(ctx, r.sc, "start", err); err != nil {
			return nil, err
		}
	}
	return r.afterStart(ctx, "start", file)
}

// Restart restarts the installed service (starting it if it is stopped) and
// waits until the proxy answers.
func Restart(ctx context.Context, opts Options) (*Result, error) {
	r, svc, file, err := control(ctx, opts, "restart")
	if err != nil {
		return nil, err
	}
	if err := svc.Restart(); err != nil {
		if err = r.p.explain(ctx, r.sc, "restart", err); err != nil {
			return nil, err
		}
	}
	return r.afterStart(ctx, "restart", file)
}

func (r *run) afterStart(ctx context.Context, action, file string) (*Result, error) {
	listen, err := r.listenAddress()
	if err != nil {
		return nil, err
	}
	addr, err := netaddr.DialAddress(listen)
	if err != nil {
		return nil, newError(ErrBadConfig, err, fmt.Sprintf("%s: %v", r.configFile, err))
	}
	url := healthURL(addr)
	if err := waitHealthy(ctx, r.client, url, r.healthTimeout()); err != nil {
		done := map[string]string{"start": "started", "restart": "restarted"}[action]
		return nil, newError(ErrNotHealthy, err, fmt.Sprintf(
			"the orproxy %s was %s, but %s did not answer within %s (%v): see %s",
			r.sc.kind(), done, url, r.healthTimeout(), err, r.p.logs(r.sc)))
	}
	return &Result{Action: action, System: r.sc.system, Name: r.p.name(), File: file, HealthURL: url}, nil
}

// Stop stops the running service. It stays installed and starts again at
// the next login or boot.
func Stop(ctx context.Context, opts Options) (*Result, error) {
	r, svc, file, err := control(ctx, opts, "stop")
	if err != nil {
		return nil, err
	}
	if st, _ := svc.Status(); st != service.StatusRunning {
		return nil, newError(ErrNotRunning, nil, fmt.Sprintf("the orproxy %s is not running", r.sc.kind()))
	}
	if err := svc.Stop(); err != nil {
		if err = r.p.explain(ctx, r.sc, "stop", err); err != nil {
			return nil, err
		}
	}
	return &Result{Action: "stop", System: r.sc.system, Name: r.p.name(), File: file}, nil
}

// State is what the service manager says about the service.
type State string

const (
	StateRunning State = "running"
	StateStopped State = "stopped"
	StateFailed  State = "failed"
	StateUnknown State = "unknown"
)

// StatusResult describes the service and the proxy.
type StatusResult struct {
	System  bool
	Manager string
	Name    string
	// File is the unit or plist; empty on Windows.
	File      string
	Installed bool
	State     State
	// StateDetail says why the state is unknown or failed.
	StateDetail string
	// HealthURL is where the proxy should answer; Healthy says it did, and
	// HealthError why not.
	HealthURL   string
	Healthy     bool
	HealthError string
	Logs        string
}

func (s *StatusResult) String() string {
	var b strings.Builder
	kind := scope{system: s.System}.kind()
	if s.Installed {
		fmt.Fprintf(&b, "orproxy %s (%s %s): installed", kind, s.Manager, s.Name)
		if s.File != "" {
			fmt.Fprintf(&b, " at %s", s.File)
		}
		fmt.Fprintf(&b, ", %s", s.State)
		if s.StateDetail != "" {
			fmt.Fprintf(&b, " (%s)", s.StateDetail)
		}
	} else {
		fmt.Fprintf(&b, "orproxy %s (%s): not installed", kind, s.Manager)
	}
	b.WriteString("\n")
	if s.HealthURL != "" {
		if s.Healthy {
			fmt.Fprintf(&b, "proxy: %s answers\n", s.HealthURL)
		} else {
			fmt.Fprintf(&b, "proxy: %s does not answer (%s)\n", s.HealthURL, s.HealthError)
		}
	}
	if s.Installed && s.State != StateRunning {
		fmt.Fprintf(&b, "logs: %s\n", s.Logs)
	}
	return b.String()
}

// Status reports whether the service is installed and running and whether
// the proxy answers GET /healthz. A service manager that cannot be reached
// makes the state unknown, not the command fail; a proxy that answers
// without the service (`orproxy serve` in a terminal) is reported as such.
func Status(ctx context.Context, opts Options) (*StatusResult, error) {
	r, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	def, err := r.definition("/orproxy", nil)
	if err != nil {
		return nil, err
	}
	res := &StatusResult{System: r.sc.system, Manager: r.p.manager(), Name: r.p.name(), State: StateUnknown, Logs: r.p.logs(r.sc)}
	svc, err := r.newService(def)
	if err != nil {
		return nil, err
	}
	res.Installed, res.File, err = r.installed(ctx, svc)
	if err != nil {
		return nil, err
	}
	if res.Installed {
		if err := r.p.preflight(ctx, r.sc); err != nil {
			res.StateDetail = err.Error()
		} else {
			st, err := svc.Status()
			switch {
			case st == service.StatusRunning:
				res.State = StateRunning
			case st == service.StatusStopped, errors.Is(err, service.ErrNotInstalled):
				// The definition exists (checked above); a manager that has
				// not loaded it has not started it either.
				res.State = StateStopped
			case err != nil && strings.Contains(err.Error(), "in failed state"):
				// kardianos's word for systemd's "failed"; its other errors
				// ("systemctl" failed: …) are shown as they are below.
				res.State = StateFailed
				res.StateDetail = "it exited with an error; see the logs"
			case err != nil:
				res.StateDetail = err.Error()
			}
		}
	}
	listen, err := r.listenAddress()
	if err != nil {
		res.HealthError = err.Error()
		return res, nil
	}
	addr, err := netaddr.DialAddress(listen)
	if err != nil {
		res.HealthError = err.Error()
		return res, nil
	}
	res.HealthURL = healthURL(addr)
	if err := checkHealth(ctx, r.client, res.HealthURL); err != nil {
		res.HealthError = err.Error()
		if held := portHolder(ctx, r.client, addr, listen, r.configFile); held != "" {
			res.HealthError = held
		}
	} else {
		res.Healthy = true
	}
	return res, nil
}
