package service

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/secret"
)

// orproxyPrefix starts every variable orproxy reads; all that are set in
// the installing shell go into the service, so that it runs with the
// settings the user tried with `orproxy serve` there.
const orproxyPrefix = "ORPROXY_"

// orproxyEnv returns the ORPROXY_* variables of environ that are set and
// not empty, sorted by name. ORPROXY_CONFIG is left out: the service gets
// the file as --config already, resolved. A relative credentials file is
// made absolute, since the service does not start where the shell was.
func orproxyEnv(environ []string) []EnvVar {
	var out []EnvVar
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, orproxyPrefix) || value == "" || name == config.EnvConfig {
			continue
		}
		if name == config.EnvCredentialsFile && !filepath.IsAbs(value) && !strings.HasPrefix(value, "~") {
			if abs, err := filepath.Abs(value); err == nil {
				value = abs
			}
		}
		if i := slices.IndexFunc(out, func(e EnvVar) bool { return e.Name == name }); i >= 0 {
			out[i].Value = value // the last one wins, as for getenv
			continue
		}
		out = append(out, EnvVar{Name: name, Value: value})
	}
	slices.SortFunc(out, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// shownEnv is env as install lists it: orproxy's own settings with their
// values, so the user sees what the service runs with, except secrets (the
// access token redacted, a URL's password hidden); the proxy and CA
// variables by name only, since a proxy URL may carry a password.
func shownEnv(env []EnvVar) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		switch {
		case !strings.HasPrefix(e.Name, orproxyPrefix):
			out = append(out, e.Name)
		case e.Name == config.EnvAccessToken:
			out = append(out, e.Name+"="+secret.Redact(e.Value))
		default:
			out = append(out, e.Name+"="+secret.RedactURL(e.Value))
		}
	}
	return out
}

// getenvFrom reads the ORPROXY_* variables of env, and nothing else: the
// service sees only what install carries.
func getenvFrom(env []EnvVar) func(string) string {
	return func(name string) string {
		for _, e := range env {
			if e.Name == name && strings.HasPrefix(name, orproxyPrefix) {
				return e.Value
			}
		}
		return ""
	}
}

// environ is the installing environment, Options.Environ or the process's.
func (r *run) environ() []string {
	if r.opts.Environ != nil {
		return r.opts.Environ()
	}
	return os.Environ()
}

// checkoutWarning says when exe is a build in an orproxy checkout's bin/,
// which `make clean` deletes: the service would then fail to start.
func checkoutWarning(exe string, sc scope) string {
	dir := filepath.Dir(exe)
	if filepath.Base(dir) != "bin" || !isOrproxyModule(filepath.Join(filepath.Dir(dir), "go.mod")) {
		return ""
	}
	return fmt.Sprintf("Warning: the service runs %s, a build in a source checkout that `make clean` removes, and it would then fail to start. For a binary that stays, run `make install` and then `%s` and `%s` from the installed orproxy.",
		exe, sc.command("uninstall"), sc.command("install"))
}

// isOrproxyModule reports whether gomod is orproxy's own go.mod.
func isOrproxyModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == "github.com/orproxy/orproxy"
		}
	}
	return false
}

// portHolder explains a health check that failed because another program
// holds the address, or returns "" when nothing (or an orproxy) does.
func portHolder(ctx context.Context, client *http.Client, addr, listen, configFile string) string {
	if probePort(ctx, client, addr) != portTaken {
		return ""
	}
	return fmt.Sprintf("another program holds %s (it does not answer GET /healthz like orproxy), so orproxy cannot listen there: stop that program, or set `listen:` in %s to a free address", listen, configFile)
}
