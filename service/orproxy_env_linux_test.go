//go:build linux

package service

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/secret"
)

// What a user tried with `orproxy serve` in a shell reaches the service:
// every ORPROXY_* variable set there is carried and listed (secrets
// redacted), and the health check asks the address they make effective.
func TestInstallCarriesOrproxyVariables(t *testing.T) {
	h := newHarness(t)
	const token = "local-token-0123456789abcdef"
	h.opts.Listen = "" // from the environment, not from an Option
	h.opts.Environ = func() []string {
		return []string{
			"HOME=/not/carried",
			"ORPROXY_LISTEN=" + h.listen,
			"ORPROXY_ACCESS_TOKEN=" + token,
			"ORPROXY_BROKER_URL=https://broker.example",
			"ORPROXY_CREDENTIALS_FILE=relative/credentials.json",
			"ORPROXY_CONFIG=/elsewhere/config.yaml",
			"ORPROXY_NO_BROWSER=",
		}
	}
	res, err := Install(context.Background(), h.opts)
	require.NoError(t, err)
	assert.Equal(t, "http://"+h.listen+"/healthz", res.HealthURL, "the address ORPROXY_LISTEN gives, not the file's 127.0.0.1:8765")

	unit, err := os.ReadFile(h.unitFile())
	require.NoError(t, err)
	cwd, err := os.Getwd()
	require.NoError(t, err)
	for _, line := range []string{
		`Environment="ORPROXY_LISTEN=` + h.listen + `"`,
		`Environment="ORPROXY_ACCESS_TOKEN=` + token + `"`,
		`Environment="ORPROXY_BROKER_URL=https://broker.example"`,
		`Environment="ORPROXY_CREDENTIALS_FILE=` + filepath.Join(cwd, "relative", "credentials.json") + `"`,
	} {
		assert.Contains(t, string(unit), line)
	}
	assert.NotContains(t, string(unit), "ORPROXY_CONFIG", "the service gets its file as --config")
	assert.NotContains(t, string(unit), "ORPROXY_NO_BROWSER", "an empty variable is not set")

	out := res.String()
	assert.Contains(t, out, "HTTPS_PROXY, NO_PROXY, ORPROXY_ACCESS_TOKEN=")
	assert.Contains(t, out, "ORPROXY_LISTEN="+h.listen)
	assert.Contains(t, out, "ORPROXY_BROKER_URL=https://broker.example")
	assert.NotContains(t, out, token)
	assert.NotContains(t, out, "s3cret", "proxy variables are listed by name only")

	// Status and start look where the service listens too.
	st, err := Status(context.Background(), h.opts)
	require.NoError(t, err)
	assert.Equal(t, "http://"+h.listen+"/healthz", st.HealthURL)
	assert.True(t, st.Healthy)
}

// A value with a password is listed without it, whichever variable it is.
func TestShownEnvRedacts(t *testing.T) {
	assert.Equal(t, []string{"HTTPS_PROXY", "ORPROXY_ACCESS_TOKEN=" + secret.Redact("tok-0123456789"), "ORPROXY_UPSTREAM=https://u:xxxxx@example.com/api/v1", "ORPROXY_LISTEN=127.0.0.1:9000"},
		shownEnv([]EnvVar{{"HTTPS_PROXY", "http://u:p@proxy:3128"}, {"ORPROXY_ACCESS_TOKEN", "tok-0123456789"},
			{"ORPROXY_UPSTREAM", "https://u:pw@example.com/api/v1"}, {"ORPROXY_LISTEN", "127.0.0.1:9000"}}))
}

// A binary in a checkout's bin/ goes away with `make clean`: install says
// so and names the stable way.
func TestInstallFromACheckoutWarns(t *testing.T) {
	h := newHarness(t)
	checkout := filepath.Join(t.TempDir(), "orproxy")
	require.NoError(t, os.MkdirAll(filepath.Join(checkout, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(checkout, "go.mod"), []byte("module github.com/orproxy/orproxy\n\ngo 1.26\n"), 0o644))
	h.opts.Executable = filepath.Join(checkout, "bin", "orproxy")
	copyExecutable(t, "/bin/true", h.opts.Executable)
	res, err := Install(context.Background(), h.opts)
	require.NoError(t, err)
	out := res.String()
	assert.Contains(t, out, "Warning: the service runs "+h.opts.Executable+", a build in a source checkout that `make clean` removes")
	assert.Contains(t, out, "`make install`")

	// Anywhere else, or a bin/ of another project: no warning.
	for _, gomod := range []string{"", "module example.com/other\n"} {
		dir := filepath.Join(t.TempDir(), "project")
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
		if gomod != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
		}
		assert.Empty(t, checkoutWarning(filepath.Join(dir, "bin", "orproxy"), scope{}))
	}
	assert.Empty(t, checkoutWarning(h.exe, scope{}))
}

// service status says when another program holds the address, rather than
// only that the proxy does not answer.
func TestStatusSaysWhenAnotherProgramHoldsThePort(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close() // not HTTP at all
		}
	}()
	h.opts.Listen = ln.Addr().String()
	st, err := Status(context.Background(), h.opts)
	require.NoError(t, err)
	assert.False(t, st.Healthy)
	assert.Contains(t, st.HealthError, "another program holds "+ln.Addr().String())
	assert.Contains(t, st.String(), "another program holds")

	// Nothing there: the plain "does not answer".
	h.opts.Listen = freeAddr(t)
	st, err = Status(context.Background(), h.opts)
	require.NoError(t, err)
	assert.False(t, strings.Contains(st.HealthError, "another program"), st.HealthError)
}
