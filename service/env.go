package service

import (
	"runtime"
	"slices"
)

// carriedNames are the variables copied from the installing shell into the
// service definition. A service manager starts the daemon with its own
// minimal environment, so a proxy or a private CA configured in the user's
// shell would otherwise never reach it.
var carriedNames = []string{
	"HTTPS_PROXY", "https_proxy",
	"HTTP_PROXY", "http_proxy",
	"NO_PROXY", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// notCarried are the carriedNames that mean nothing to the service on an
// operating system: Go reads SSL_CERT_DIR only on Linux and the BSDs, and
// orproxy reads SSL_CERT_FILE itself everywhere (internal/tlsenv).
var notCarried = map[string][]string{"darwin": {"SSL_CERT_DIR"}}

// carriedEnv returns the carried variables that are set and not empty, in the
// order of carriedNames.
func carriedEnv(lookup func(string) (string, bool)) []EnvVar {
	return carriedEnvOn(runtime.GOOS, lookup)
}

func carriedEnvOn(goos string, lookup func(string) (string, bool)) []EnvVar {
	var out []EnvVar
	for _, name := range carriedNames {
		if slices.Contains(notCarried[goos], name) {
			continue
		}
		if v, ok := lookup(name); ok && v != "" {
			out = append(out, EnvVar{Name: name, Value: v})
		}
	}
	return out
}

func envNames(env []EnvVar) []string {
	names := make([]string, 0, len(env))
	for _, e := range env {
		names = append(names, e.Name)
	}
	return names
}
