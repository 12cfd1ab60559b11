package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/configs"
	"github.com/orproxy/orproxy/internal/config"
)

// defaultConfigPath is where serve reads its config in a home set up by
// runHome.
func defaultConfigPath(home string) string {
	return filepath.Join(home, ".config", "orproxy", "config.yaml")
}

func TestConfigInitWritesWhereServeReads(t *testing.T) {
	home := t.TempDir()
	code, out, errOut := runHome(t, home, "", "config", "init")
	require.Equal(t, exitOK, code, errOut)
	path := defaultConfigPath(home)
	assert.Contains(t, out, "Wrote "+path)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, configs.Example(), data, "the documented file, comments and all")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	// serve's own resolution finds that file.
	loaded, err := config.Load(config.Options{Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	assert.Equal(t, path, loaded.File)
	code, out, _ = runHome(t, home, "", "config", "path")
	require.Equal(t, exitOK, code)
	assert.Equal(t, path+"\n", out)
}

func TestConfigInitWithBroker(t *testing.T) {
	home := t.TempDir()
	code, out, errOut := runHome(t, home, "", "config", "init", "--broker", "https://broker.example.com/orproxy")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "broker.url https://broker.example.com/orproxy")
	data, err := os.ReadFile(defaultConfigPath(home))
	require.NoError(t, err)
	c, err := config.Decode("config.yaml", data)
	require.NoError(t, err)
	assert.Equal(t, "https://broker.example.com/orproxy", c.Broker.URL)

	// Only the url line differs from the documented file: comments stay.
	example := strings.Split(string(configs.Example()), "\n")
	written := strings.Split(string(data), "\n")
	require.Len(t, written, len(example))
	var diff []string
	for i := range example {
		if example[i] != written[i] {
			diff = append(diff, written[i])
		}
	}
	assert.Equal(t, []string{`  url: "https://broker.example.com/orproxy"`}, diff)
}

func TestConfigInitRefusesToOverwrite(t *testing.T) {
	home := t.TempDir()
	path := defaultConfigPath(home)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:9999\n"), 0o600))

	code, out, errOut := runHome(t, home, "", "config", "init", "--broker", "https://broker.example.com")
	assert.Equal(t, exitFailure, code)
	assert.Empty(t, out)
	assertOneLine(t, errOut, path+" already exists")
	assert.Contains(t, errOut, "--force")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "listen: 127.0.0.1:9999\n", string(data), "kept as it was")

	code, out, errOut = runHome(t, home, "", "config", "init", "--force")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Replaced "+path)
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, configs.Example(), data)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestConfigInitForceKeepsALinkedFileLinked(t *testing.T) {
	dotfiles := filepath.Join(t.TempDir(), "orproxy.yaml")
	require.NoError(t, os.WriteFile(dotfiles, []byte("listen: 127.0.0.1:9999\n"), 0o600))
	link := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.Symlink(dotfiles, link))

	code, _, errOut := run(t, "--config", link, "config", "init", "--force")
	require.Equal(t, exitOK, code, errOut)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, dotfiles, target)
	data, err := os.ReadFile(dotfiles)
	require.NoError(t, err)
	assert.Equal(t, configs.Example(), data)
}

func TestConfigInitFollowsConfigFlagAndEnvironment(t *testing.T) {
	flagPath := filepath.Join(t.TempDir(), "new", "dir", "flag.yaml")
	code, _, errOut := run(t, "--config", flagPath, "config", "init")
	require.Equal(t, exitOK, code, errOut)
	assert.FileExists(t, flagPath)
	dir, err := os.Stat(filepath.Dir(flagPath))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	home := t.TempDir()
	envPath := filepath.Join(t.TempDir(), "env.yaml")
	t.Setenv("HOME", home)
	t.Setenv(config.EnvConfig, envPath)
	var out, errBuf strings.Builder
	code = execute([]string{"config", "init"}, streams{in: strings.NewReader(""), out: &out, err: &errBuf})
	require.Equal(t, exitOK, code, errBuf.String())
	assert.FileExists(t, envPath)
	assert.NoFileExists(t, defaultConfigPath(home))
}

func TestConfigPath(t *testing.T) {
	home := t.TempDir()
	code, out, errOut := runHome(t, home, "", "config", "path")
	require.Equal(t, exitOK, code)
	assert.Equal(t, defaultConfigPath(home)+"\n", out, "stdout holds only the path")
	assert.Contains(t, errOut, "does not exist, so serve uses the built-in defaults")

	named := filepath.Join(t.TempDir(), "named.yaml")
	code, out, errOut = runHome(t, home, "", "--config", named, "config", "path")
	require.Equal(t, exitOK, code)
	assert.Equal(t, named+"\n", out)
	assert.Contains(t, errOut, "named by --config; the file does not exist, so serve stops with an error")

	require.NoError(t, os.WriteFile(named, nil, 0o600))
	_, _, errOut = runHome(t, home, "", "--config", named, "config", "path")
	assert.Contains(t, errOut, "the file exists")
}

func TestConfigShow(t *testing.T) {
	const token = "local-token-0123456789abcdef"
	const header = "hdr-secret-0123456789abcdef"
	home := t.TempDir()
	path := defaultConfigPath(home)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:1\naccess_token: "+token+"\nbroker:\n  start_headers: [\"X-Device-Token: "+header+"\"]\nlog: {level: warn}\n"), 0o600))
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	for _, v := range []string{"ORPROXY_CONFIG", "ORPROXY_LISTEN", "ORPROXY_BROKER_URL", "ORPROXY_CREDENTIALS_FILE", "ORPROXY_ACCESS_TOKEN", "ORPROXY_NO_BROWSER"} {
		t.Setenv(v, "")
	}
	t.Setenv("ORPROXY_UPSTREAM", "http://127.0.0.1:2/api/v1")
	show := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := execute(append([]string{"config", "show"}, args...), streams{in: strings.NewReader(""), out: &out, err: &errOut})
		return code, out.String(), errOut.String()
	}

	code, out, errOut := show("--log-format", "json")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Config file: "+path+" (read)")
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			rows[f[0]] = f[1:]
		}
	}
	assert.Equal(t, []string{"127.0.0.1:1", "file,", "line", "1"}, rows["listen"])
	assert.Equal(t, []string{"http://127.0.0.1:2/api/v1", "environment", "ORPROXY_UPSTREAM"}, rows["upstream"])
	assert.Equal(t, []string{"json", "flag", "--log-format"}, rows["log.format"])
	assert.Equal(t, []string{"warn", "file,", "line", "5"}, rows["log.level"])
	assert.Equal(t, []string{"10s", "default"}, rows["broker.timeout"])
	assert.Equal(t, []string{"…cdef", "file,", "line", "2"}, rows["access_token"])
	assert.NotContains(t, out, token)
	assert.NotContains(t, out, header)

	code, out, errOut = show("--json", "--listen", "127.0.0.1:3")
	require.Equal(t, exitOK, code, errOut)
	var rep configReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, path, rep.File)
	assert.True(t, rep.FileRead)
	require.Len(t, rep.Settings, len(config.Keys()))
	got := map[string]config.Setting{}
	for _, s := range rep.Settings {
		got[s.Key] = s
	}
	assert.Equal(t, "127.0.0.1:3", got["listen"].Value)
	assert.Equal(t, config.Source{Layer: config.LayerFlag, Where: "--listen"}, got["listen"].Source)
	assert.Equal(t, config.Source{Layer: config.LayerEnv, Where: "ORPROXY_UPSTREAM"}, got["upstream"].Source)
	assert.Equal(t, config.Source{Layer: config.LayerFile, Where: path + ":5"}, got["log.level"].Source)
	assert.Equal(t, config.Source{Layer: config.LayerDefault}, got["web_search.engine"].Source)
	assert.Equal(t, float64(8), got["web_search.max_results"].Value)
	assert.Equal(t, true, got["web_search.enabled"].Value)
	assert.Equal(t, []any{"X-Device-Token: …cdef"}, got["broker.start_headers"].Value)
	assert.Contains(t, out, `"layer": "environment"`)
	assert.NotContains(t, out, token)
	assert.NotContains(t, out, header)

	// An access token from the environment is redacted as well.
	t.Setenv("ORPROXY_ACCESS_TOKEN", "env-token-0123456789abcdef")
	_, out, _ = show()
	assert.NotContains(t, out, "env-token-0123456789abcdef")
	assert.Contains(t, out, "environment ORPROXY_ACCESS_TOKEN")
}

func TestConfigShowWithoutFile(t *testing.T) {
	home := t.TempDir()
	code, out, errOut := runHome(t, home, "", "config", "show")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Config file: "+defaultConfigPath(home)+" (not found")
	assert.NotContains(t, out, "file, line")
}
