package config

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSourcePrecedence has one row per precedence rule: each says which
// layer a key's value comes from when several set it.
func TestSourcePrecedence(t *testing.T) {
	const fileBody = "listen: 127.0.0.1:1111\nbroker:\n  url: https://file.example\n  timeout:\n  start_headers: [\"X-A: 1\"]\nlog: {level: warn}\n"
	tests := []struct {
		name  string
		file  string // "" means no file at all
		env   map[string]string
		flags map[string]string
		key   string
		want  any
		src   Source
	}{
		{name: "default without anything", key: "listen", want: "127.0.0.1:8765", src: Source{Layer: LayerDefault}},
		{name: "default when the file does not set the key", file: fileBody, key: "upstream", want: "https://openrouter.ai/api/v1", src: Source{Layer: LayerDefault}},
		{name: "an empty value in the file keeps the default", file: fileBody, key: "broker.timeout", want: "10s", src: Source{Layer: LayerDefault}},
		{name: "file over default", file: fileBody, key: "listen", want: "127.0.0.1:1111", src: Source{Layer: LayerFile, Where: "config.yaml:1"}},
		{name: "file, nested key", file: fileBody, key: "broker.url", want: "https://file.example", src: Source{Layer: LayerFile, Where: "config.yaml:3"}},
		{name: "file, flow mapping", file: fileBody, key: "log.level", want: "warn", src: Source{Layer: LayerFile, Where: "config.yaml:6"}},
		{name: "environment over default", env: map[string]string{EnvUpstream: "https://env.example/api/v1"}, key: "upstream", want: "https://env.example/api/v1", src: Source{Layer: LayerEnv, Where: EnvUpstream}},
		{name: "environment over file", file: fileBody, env: map[string]string{EnvListen: "127.0.0.1:2222"}, key: "listen", want: "127.0.0.1:2222", src: Source{Layer: LayerEnv, Where: EnvListen}},
		{name: "switch variable", env: map[string]string{EnvNoBrowser: "1"}, key: "login.open_browser", want: false, src: Source{Layer: LayerEnv, Where: EnvNoBrowser}},
		{name: "switch variable that is off changes nothing", env: map[string]string{EnvNoBrowser: "0"}, key: "login.open_browser", want: true, src: Source{Layer: LayerDefault}},
		{name: "flag over default", flags: map[string]string{"log.format": "json"}, key: "log.format", want: "json", src: Source{Layer: LayerFlag, Where: "--log-format"}},
		{name: "flag over file", file: fileBody, flags: map[string]string{"broker.url": "https://flag.example"}, key: "broker.url", want: "https://flag.example", src: Source{Layer: LayerFlag, Where: "--broker-url"}},
		{name: "flag over environment", env: map[string]string{EnvListen: "127.0.0.1:2222"}, flags: map[string]string{"listen": "127.0.0.1:3333"}, key: "listen", want: "127.0.0.1:3333", src: Source{Layer: LayerFlag, Where: "--listen"}},
		{name: "flag over environment over file", file: fileBody, env: map[string]string{EnvListen: "127.0.0.1:2222"}, flags: map[string]string{"listen": "127.0.0.1:3333"}, key: "listen", want: "127.0.0.1:3333", src: Source{Layer: LayerFlag, Where: "--listen"}},
		{name: "environment does not reach keys it has no variable for", file: fileBody, env: map[string]string{EnvListen: "127.0.0.1:2222"}, key: "log.level", want: "warn", src: Source{Layer: LayerFile, Where: "config.yaml:6"}},
	}
	names := map[string]string{"listen": "--listen", "broker.url": "--broker-url", "log.format": "--log-format"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no default file
			opts := Options{Flags: tt.flags, FlagNames: names, Getenv: env(tt.env)}
			if tt.file != "" {
				opts.File = writeFile(t, tt.file)
			}
			got, err := Load(opts)
			require.NoError(t, err)
			src := got.Source(tt.key)
			if src.Layer == LayerFile {
				// The file's path is a temporary directory.
				src.Where = strings.TrimPrefix(src.Where, filepath.Dir(opts.File)+string(filepath.Separator))
			}
			assert.Equal(t, tt.src, src)
			var setting *Setting
			for _, s := range got.Settings() {
				if s.Key == tt.key {
					setting = &s
				}
			}
			require.NotNil(t, setting, "Settings lacks %s", tt.key)
			assert.Equal(t, tt.want, setting.Value)
			assert.Equal(t, got.Source(tt.key), setting.Source)
		})
	}
}

func TestSettingsListEveryKeyOnce(t *testing.T) {
	got, err := Load(Options{File: writeFile(t, ""), Getenv: env(nil)})
	require.NoError(t, err)
	var keys []string
	for _, s := range got.Settings() {
		keys = append(keys, s.Key)
		assert.Equal(t, LayerDefault, s.Source.Layer, s.Key)
	}
	assert.Equal(t, Keys(), keys)
}

func TestSettingsRedactSecrets(t *testing.T) {
	const token = "local-token-0123456789abcdef"
	const header = "hdr-secret-0123456789abcdef"
	file := writeFile(t, fmt.Sprintf("listen: 0.0.0.0:8765\naccess_token: %s\nbroker: {url: https://b.example, start_headers: [\"X-Device-Token: %s\", \"X-Short: ab\"]}\n", token, header))
	got, err := Load(Options{File: file, Getenv: env(nil)})
	require.NoError(t, err)
	values := map[string]any{}
	for _, s := range got.Settings() {
		values[s.Key] = s.Value
	}
	assert.Equal(t, "…cdef", values["access_token"])
	assert.Equal(t, []string{"X-Device-Token: …cdef", "X-Short: …"}, values["broker.start_headers"])
	assert.Equal(t, []string{"X-Device-Token: " + header, "X-Short: ab"}, got.Broker.StartHeaders, "the config itself is untouched")
	assert.NotContains(t, fmt.Sprint(got.Settings()), token)
	assert.NotContains(t, fmt.Sprint(got.Settings()), header)

	noToken, err := Load(Options{File: writeFile(t, ""), Getenv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, "", noToken.Settings()[2].Value, "an unset token shows as empty")
}

// Load refuses URLs with user info, so redaction of a URL's password is
// checked on its own: it is what guards any URL key added later.
func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://me:pw-0123456789@host.example/api": "https://me:xxxxx@host.example/api",
		"https://tok-0123456789@host.example":       "https://xxxxx@host.example",
		"https://host.example/api/v1":               "https://host.example/api/v1",
		"127.0.0.1:8765":                            "127.0.0.1:8765",
		"plain text":                                "plain text",
	} {
		assert.Equal(t, want, redact("upstream", in), in)
	}
}

func TestFormatDuration(t *testing.T) {
	for in, want := range map[string]string{"24h": "24h", "10s": "10s", "1h30m": "1h30m", "90s": "1m30s", "500ms": "500ms", "0s": "0s", "2h0m5s": "2h0m5s", "3m": "3m"} {
		d, err := time.ParseDuration(in)
		require.NoError(t, err)
		assert.Equal(t, want, FormatDuration(d), in)
	}
}

// A mistake in a flag's value is the command line's fault; one in the file
// or the environment is not.
func TestErrorSaysWhenTheCommandLineIsWrong(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		flags map[string]string
		want  bool
		msg   string
	}{
		{name: "flag that does not parse", flags: map[string]string{"web_search.max_results": "x"}, want: true, msg: `web_search.max_results (from the command line): "x" is not a whole number`},
		{name: "flag that parses but is not allowed", flags: map[string]string{"login.method": "nope"}, want: true, msg: `login.method (from --method): "nope" is not a login method`},
		{name: "flag and file both wrong", file: "log: {level: loud}\n", flags: map[string]string{"login.method": "nope"}, want: true},
		{name: "file", file: "login: {method: nope}\n", want: false, msg: `config.yaml:1: login.method: "nope"`},
		{name: "environment", env: map[string]string{EnvListen: "nope"}, want: false, msg: `listen (from ORPROXY_LISTEN): "nope" is not host:port`},
		{name: "a good flag does not take the blame for the file", file: "log: {level: loud}\n", flags: map[string]string{"login.method": "key"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, tt.file), Flags: tt.flags, FlagNames: map[string]string{"login.method": "--method"}, Getenv: env(tt.env)})
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, ce.InCommandLine)
			if tt.msg != "" {
				assert.Contains(t, err.Error(), tt.msg)
			}
		})
	}
}

func TestLayerJSON(t *testing.T) {
	for _, l := range []Layer{LayerDefault, LayerFile, LayerEnv, LayerFlag} {
		b, err := json.Marshal(Source{Layer: l, Where: "w"})
		require.NoError(t, err)
		var back Source
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, Source{Layer: l, Where: "w"}, back, string(b))
	}
	var l Layer
	assert.Error(t, l.UnmarshalText([]byte("registry")))
}
