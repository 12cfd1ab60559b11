package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestExampleFileIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("../../configs/config.example.yaml")
	require.NoError(t, err)
	got, err := Decode("config.example.yaml", data)
	require.NoError(t, err)
	assert.Equal(t, Default(), got)

	// Equality alone would pass with keys missing from the file, so check that
	// every key is written out, with a comment.
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	for _, key := range Keys() {
		n := lookup(doc.Content[0], strings.Split(key, "."))
		if assert.NotNil(t, n, "config.example.yaml lacks %s", key) {
			assert.NotEmpty(t, n.HeadComment, "config.example.yaml: %s has no comment", key)
		}
	}
	assert.Empty(t, Default().Validate(), "the defaults must be valid")
}

func lookup(n *yaml.Node, path []string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != path[0] {
			continue
		}
		if len(path) == 1 {
			return n.Content[i]
		}
		return lookup(n.Content[i+1], path[1:])
	}
	return nil
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:1111\nupstream: http://127.0.0.1:9/api/v1\nbroker: {url: https://file.example}\n")
	tests := []struct {
		name         string
		env          map[string]string
		flags        map[string]string
		wantListen   string
		wantUpstream string
		wantBroker   string
	}{
		{
			name:         "file over default",
			wantListen:   "127.0.0.1:1111",
			wantUpstream: "http://127.0.0.1:9/api/v1",
			wantBroker:   "https://file.example",
		},
		{
			name:         "env over file",
			env:          map[string]string{EnvListen: "127.0.0.1:2222", EnvBrokerURL: "https://env.example"},
			wantListen:   "127.0.0.1:2222",
			wantUpstream: "http://127.0.0.1:9/api/v1",
			wantBroker:   "https://env.example",
		},
		{
			name:         "flag over env",
			env:          map[string]string{EnvListen: "127.0.0.1:2222", EnvUpstream: "https://env.example/api/v1"},
			flags:        map[string]string{"listen": "127.0.0.1:3333"},
			wantListen:   "127.0.0.1:3333",
			wantUpstream: "https://env.example/api/v1",
			wantBroker:   "https://file.example",
		},
		{
			name:         "flag over file without env",
			flags:        map[string]string{"broker.url": "https://flag.example"},
			wantListen:   "127.0.0.1:1111",
			wantUpstream: "http://127.0.0.1:9/api/v1",
			wantBroker:   "https://flag.example",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(Options{File: file, Flags: tt.flags, Getenv: env(tt.env)})
			require.NoError(t, err)
			assert.Equal(t, tt.wantListen, got.Listen)
			assert.Equal(t, tt.wantUpstream, got.Upstream)
			assert.Equal(t, tt.wantBroker, got.Broker.URL)
			assert.Equal(t, file, got.File)
		})
	}
}

func TestDefaultsWithoutFile(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	got, err := Load(Options{Getenv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, Default(), got.Config)
	assert.Empty(t, got.File)
}

func TestConfigFromEnvPath(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:4444\n")
	got, err := Load(Options{Getenv: env(map[string]string{EnvConfig: file})})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:4444", got.Listen)
	assert.True(t, got.FileExplicit)
}

func TestNoBrowserEnv(t *testing.T) {
	for v, want := range map[string]bool{"1": false, "true": false, "0": true, "no": true} {
		got, err := Load(Options{File: writeFile(t, ""), Getenv: env(map[string]string{EnvNoBrowser: v})})
		require.NoError(t, err, v)
		assert.Equal(t, want, got.Login.OpenBrowser, v)
	}
	_, err := Load(Options{File: writeFile(t, ""), Getenv: env(map[string]string{EnvNoBrowser: "maybe"})})
	require.ErrorContains(t, err, `ORPROXY_NO_BROWSER: "maybe" is not true or false`)
}

func TestEmptyAndCommentOnlyFiles(t *testing.T) {
	for _, body := range []string{"", "# nothing\n", "---\n"} {
		got, err := Load(Options{File: writeFile(t, body), Getenv: env(nil)})
		require.NoError(t, err, "%q", body)
		assert.Equal(t, Default(), got.Config)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		flags map[string]string
		want  []string
	}{
		{
			name: "unknown key",
			file: "listen: 127.0.0.1:1\nbroker:\n  timout: 5s\n",
			want: []string{"config.yaml:3: broker.timout: unknown key (allowed here: url, start_headers, timeout, return_to_state)"},
		},
		{
			name: "unknown top-level key",
			file: "lisen: 127.0.0.1:1\n",
			want: []string{"lisen: unknown key (allowed here: listen, upstream, access_token, broker, login, credentials, web_search, usage, budget, attribution, keepalive, limits, log)"},
		},
		{
			name: "bad duration",
			file: "broker:\n  timeout: ten seconds\n",
			want: []string{`config.yaml:2: broker.timeout: "ten seconds" is not a duration (use a number with a unit: 500ms, 10s, 5m, 24h, 30d)`},
		},
		{
			name: "budget without the ledger",
			file: "usage: {enabled: false}\nbudget: {daily_usd: 5}\n",
			want: []string{"budget: needs usage.enabled: budgets count the costs the usage ledger records"},
		},
		{
			name: "negative budget",
			file: "budget: {monthly_usd: -1}\n",
			want: []string{"budget.monthly_usd: -1 is negative"},
		},
		{
			name: "budget not a number",
			file: "budget: {daily_usd: five}\n",
			want: []string{`budget.daily_usd: "five" is not a number`},
		},
		{
			name: "warn_at out of range",
			file: "budget: {warn_at: 1.5}\n",
			want: []string{"budget.warn_at: 1.5 is out of range"},
		},
		{
			name: "both domain lists",
			file: "web_search: {allowed_domains: [a.example], excluded_domains: [b.example]}\n",
			want: []string{"web_search.allowed_domains: cannot be set together with web_search.excluded_domains"},
		},
		{
			name: "a URL for a domain",
			file: "web_search: {excluded_domains: [\"https://spam.example/x\"]}\n",
			want: []string{`web_search.excluded_domains[0]: "https://spam.example/x" is not a domain`},
		},
		{
			name: "bad context size",
			file: "web_search: {search_context_size: huge}\n",
			want: []string{`web_search.search_context_size: "huge" is not a context size (allowed: low, medium, high`},
		},
		{
			name: "retention in days out of range",
			file: "usage: {retention: 0d}\n",
			want: []string{"usage.retention: 0s is out of range (allowed: 1d–36500d)"},
		},
		{
			name: "retention not a duration",
			file: "usage: {retention: forever}\n",
			want: []string{`usage.retention: "forever" is not a duration`},
		},
		{
			name: "auto-login with a pasted key",
			file: "broker: {url: https://broker.example}\nlogin: {method: key, auto_login: true}\n",
			want: []string{"login.auto_login: cannot be used with login.method key"},
		},
		{
			name: "attribution referer not a URL",
			file: "attribution: {referer: my-app}\n",
			want: []string{`attribution.referer: "my-app" is not an absolute http(s) URL`},
		},
		{
			name: "bad engine",
			file: "web_search: {engine: google}\n",
			want: []string{`web_search.engine: "google" is not a search engine (allowed: auto, native, exa, firecrawl, parallel, perplexity)`},
		},
		{
			name: "max_results out of range",
			file: "web_search: {max_results: 30}\n",
			want: []string{"web_search.max_results: 30 is out of range (allowed: 1–25)"},
		},
		{
			name: "not a number",
			file: "web_search: {max_results: many}\n",
			want: []string{`web_search.max_results: "many" is not a whole number`},
		},
		{
			name: "bad size",
			file: "limits: {max_request_body: 32 parsecs}\n",
			want: []string{`limits.max_request_body: "32 parsecs" is not a size`},
		},
		{
			name: "body_read_timeout too short",
			file: "limits: {body_read_timeout: 500ms}\n",
			want: []string{"limits.body_read_timeout: 500ms is out of range (allowed: 1s–1h)"},
		},
		{
			name: "body_read_timeout too long",
			file: "limits: {body_read_timeout: 2h}\n",
			want: []string{"limits.body_read_timeout: 2h0m0s is out of range (allowed: 1s–1h)"},
		},
		{
			name: "keepalive window too short",
			file: "keepalive: {recent_use: 10s}\n",
			want: []string{"keepalive.recent_use: 10s is out of range (allowed: 1m–7d; turn it off with keepalive.enabled: false)"},
		},
		{
			name: "body_read_timeout not a duration",
			file: "limits: {body_read_timeout: 60}\n",
			want: []string{`limits.body_read_timeout: "60" is not a duration`},
		},
		{
			name: "duplicate key",
			file: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			want: []string{"listen: appears twice"},
		},
		{
			name: "section is not a mapping",
			file: "broker: https://broker.example\n",
			want: []string{"broker: must be a mapping with keys url, start_headers, timeout"},
		},
		{
			name: "list expected",
			file: "web_search: {exclude_models: openai/*}\n",
			want: []string{"web_search.exclude_models: must be a list"},
		},
		{
			name: "bad header line",
			file: "broker: {start_headers: [\"X-Device-Id abc-secret-token\"]}\n",
			want: []string{`broker.start_headers[0]: header "X-Device-Id" is not a header line (use "Name: value"; the value is not shown)`},
		},
		{
			name: "non-loopback listen without token",
			file: "listen: 0.0.0.0:8765\n",
			want: []string{`listen: "0.0.0.0:8765" is not a loopback address; orproxy listens beyond this machine only when access_token is set`},
		},
		{
			name: "plain http upstream",
			env:  map[string]string{EnvUpstream: "http://openrouter.ai/api/v1"},
			want: []string{`upstream (from ORPROXY_UPSTREAM)`, "use https"},
		},
		{
			name:  "bad flag value",
			flags: map[string]string{"web_search.max_results": "x"},
			want:  []string{`web_search.max_results (from the command line): "x" is not a whole number`},
		},
		{
			name: "several problems reported together",
			file: "log: {level: loud, format: xml}\nlogin: {method: magic}\n",
			want: []string{"3 problems", `log.level: "loud"`, `log.format: "xml"`, `login.method: "magic" is not a login method (allowed: broker, openrouter, key)`},
		},
		{
			name: "auto_login without a broker",
			file: "login: {auto_login: true}\n",
			want: []string{"login.auto_login: needs broker.url"},
		},
		{
			name: "yaml syntax",
			file: "listen: [\n",
			want: []string{"config.yaml: yaml:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, tt.file), Flags: tt.flags, Getenv: env(tt.env)})
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// The automatic login follows login.method: OpenRouter's own needs no
// broker; a pasted key cannot be read by a daemon.
func TestAutoLoginFollowsTheMethod(t *testing.T) {
	got, err := Load(Options{File: writeFile(t, "login: {method: openrouter, auto_login: true}\n"), Getenv: env(nil)})
	require.NoError(t, err)
	assert.True(t, got.Login.AutoLogin)
	_, err = Load(Options{File: writeFile(t, "login: {method: key, auto_login: true}\n"), Getenv: env(nil)})
	require.ErrorContains(t, err, "login.auto_login: cannot be used with login.method key")
	assert.NotContains(t, err.Error(), "needs broker.url", "only the broker method needs a broker")
}

func TestListenWithAccessToken(t *testing.T) {
	got, err := Load(Options{File: writeFile(t, "listen: 0.0.0.0:8765\naccess_token: s3cret-token-value\n"), Getenv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:8765", got.Listen)
}

func TestExplicitMissingFile(t *testing.T) {
	_, err := Load(Options{File: filepath.Join(t.TempDir(), "nope.yaml"), Getenv: env(nil)})
	require.ErrorContains(t, err, "nope.yaml does not exist")
}

// The files a config names are the same for the daemon and the commands,
// whatever their working directory: relative to the config file, ~ expanded.
func TestFilesRelativeToConfig(t *testing.T) {
	p := writeFile(t, "credentials: {file: creds.json}\nusage: {file: data/usage.db}\n")
	got, err := Load(Options{File: p, Getenv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(filepath.Dir(p), "creds.json"), got.Credentials.File)
	assert.Equal(t, filepath.Join(filepath.Dir(p), "data", "usage.db"), got.Usage.File)

	home := t.TempDir()
	t.Setenv("HOME", home)
	p = writeFile(t, "usage: {file: ~/ledger.db}\n")
	got, err = Load(Options{File: p, Getenv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, "ledger.db"), got.Usage.File)
}

func TestValuesDecode(t *testing.T) {
	got, err := Decode("c.yaml", []byte(`
broker:
  url: https://broker.example
  start_headers: ["X-Device: abc", "X-User: me"]
  timeout: 3s
web_search: {exclude_models: ["*:free", "openai/o1*"], max_characters: 500}
limits: {max_request_body: 10MB, body_read_timeout: 2m}
credentials: {rotate_before_expiry: 1h30m, validate_on_start: false}
`))
	require.NoError(t, err)
	assert.Equal(t, []string{"X-Device: abc", "X-User: me"}, got.Broker.StartHeaders)
	assert.Equal(t, 3*time.Second, got.Broker.Timeout)
	assert.Equal(t, []string{"*:free", "openai/o1*"}, got.WebSearch.ExcludeModels)
	assert.Equal(t, 500, got.WebSearch.MaxCharacters)
	assert.Equal(t, ByteSize(10_000_000), got.Limits.MaxRequestBody)
	assert.Equal(t, 2*time.Minute, got.Limits.BodyReadTimeout)
	assert.Equal(t, 90*time.Minute, got.Credentials.RotateBeforeExpiry)
	assert.False(t, got.Credentials.ValidateOnStart)
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"32MiB": 32 * MiB, "1024": 1024, "2 KiB": 2048, "1GB": 1e9, "5M": 5 * MiB} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "99999999999999999999"} {
		_, err := ParseByteSize(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "32MiB", (32 * MiB).String())
	assert.Equal(t, "1000B", ByteSize(1000).String())
}

// A bad value that may carry a secret is named, not shown.
func TestBadSecretBearingValuesAreNotShown(t *testing.T) {
	for name, file := range map[string]string{
		"header without colon": "broker: {start_headers: [\"X-Token tok-0123456789abcdef\"]}\n",
		"header with newline":  "broker: {start_headers: [\"X-Token: tok-0123456789abcdef\\nX-Other: 1\"]}\n",
		"url with password":    "broker: {url: \"https://me:tok-0123456789abcdef@broker.example\"}\n",
	} {
		_, err := Load(Options{File: writeFile(t, file), Getenv: env(nil)})
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), "tok-0123456789abcdef", name)
	}
}

func TestDaysAsADurationUnit(t *testing.T) {
	for in, want := range map[string]time.Duration{"400d": 400 * Day, "1d": Day, "36h": 36 * time.Hour, " 7d ": 7 * Day} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"d", "1.5d", "-1d", "7 days", "1d12h", ""} {
		_, err := ParseDuration(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "400d", FormatDuration(400*Day))
	assert.Equal(t, "24h", FormatDuration(Day), "a day reads as 24h, as rotate_before_expiry's default")
}

func TestSpendSettingsFromAFile(t *testing.T) {
	path := writeFile(t, "usage: {retention: 30d, key_poll: 5m}\nbudget: {daily_usd: 2.5, monthly_usd: 40, warn_at: 0.5}\n"+
		"web_search: {max_total_results: 20, search_context_size: low, excluded_domains: [pinterest.com], messages: true}\n"+
		"attribution: {enabled: false}\ncredentials: {rotate_on_limit: true}\n")
	got, err := Load(Options{File: path, Getenv: env(nil)})
	require.NoError(t, err)
	c := got.Config
	assert.Equal(t, 30*Day, c.Usage.Retention)
	assert.Equal(t, 5*time.Minute, c.Usage.KeyPoll)
	assert.Equal(t, Budget{DailyUSD: 2.5, MonthlyUSD: 40, WarnAt: 0.5}, c.Budget)
	assert.Equal(t, 20, c.WebSearch.MaxTotalResults)
	assert.Equal(t, "low", c.WebSearch.SearchContextSize)
	assert.Equal(t, []string{"pinterest.com"}, c.WebSearch.ExcludedDomains)
	assert.True(t, c.WebSearch.Messages)
	assert.False(t, c.Attribution.Enabled)
	assert.True(t, c.Credentials.RotateOnLimit)
}

// A bad URL in any setting is quoted without its password: the messages go
// to a terminal and to the service manager's log.
func TestBadURLsAreQuotedWithoutTheirPassword(t *testing.T) {
	for _, bad := range []string{"ftp://u:hunter2secret@broker.example", "//u:hunter2secret@broker.example", "https://u:hunter2secret%zz@broker.example", "http://u:hunter2secret@remote.example"} {
		for _, key := range []string{"broker.url", "upstream", "attribution.referer"} {
			_, err := Load(Options{Flags: map[string]string{key: bad}, Getenv: env(nil)})
			require.Error(t, err, "%s=%s", key, bad)
			assert.NotContains(t, err.Error(), "hunter2secret", "%s=%s", key, bad)
			assert.Contains(t, err.Error(), key)
		}
	}
}
