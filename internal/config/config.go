// Package config defines orproxy's settings and loads them from defaults, an
// optional YAML file, environment variables and command-line flags, in that
// order of increasing precedence. Loading is strict: an unknown key or a bad
// value is an error that names the key, the value and what is allowed.
package config

import (
	"os"
	"path/filepath"
	"time"
)

// Config is every setting of orproxy. The yaml tags are the keys of the config
// file; configs/config.example.yaml documents each one.
type Config struct {
	// Listen is the address the proxy serves on. Only loopback addresses are
	// accepted unless AccessToken is set.
	Listen string `yaml:"listen"`
	// Upstream is OpenRouter's API base URL; requests to /api/v1/X go to Upstream/X.
	Upstream string `yaml:"upstream"`
	// AccessToken, when set, must be presented by clients as a bearer token or
	// x-api-key. It guards the port, it is never forwarded.
	AccessToken string `yaml:"access_token"`

	Broker      Broker      `yaml:"broker"`
	Login       Login       `yaml:"login"`
	Credentials Credentials `yaml:"credentials"`
	WebSearch   WebSearch   `yaml:"web_search"`
	Usage       Usage       `yaml:"usage"`
	Budget      Budget      `yaml:"budget"`
	Attribution Attribution `yaml:"attribution"`
	Keepalive   Keepalive   `yaml:"keepalive"`
	Limits      Limits      `yaml:"limits"`
	Log         Log         `yaml:"log"`
}

// Broker is the company's credential broker.
type Broker struct {
	// URL is the broker's base URL; empty means no broker (no rotation).
	URL string `yaml:"url"`
	// StartHeaders are "Name: value" lines sent when orproxy fetches the login
	// start URL itself (enterprise identity headers).
	StartHeaders []string `yaml:"start_headers"`
	// Timeout bounds every broker call.
	Timeout time.Duration `yaml:"timeout"`
	// ReturnToState adds ?state=… to the return_to callback address. Off is
	// for a broker that compares return_to with the callback address exactly.
	ReturnToState bool `yaml:"return_to_state"`
}

// Login configures `orproxy login` and auto-login.
type Login struct {
	// Method is broker, openrouter or key.
	Method string `yaml:"method"`
	// CallbackPort fixes the port of the login callback server; 0 picks a free one.
	CallbackPort int `yaml:"callback_port"`
	// OpenBrowser opens the login URL in a browser when one is available.
	OpenBrowser bool `yaml:"open_browser"`
	// AutoLogin starts the Method login from the daemon when a request
	// arrives and no credential is usable: none stored, or a rejected key
	// that no rotation can replace.
	AutoLogin bool `yaml:"auto_login"`
}

// Credentials configures the credential file and the key lifecycle.
type Credentials struct {
	// File is the credential file; empty means <config dir>/credentials.json.
	File string `yaml:"file"`
	// ValidateOnStart checks the stored key with GET {upstream}/key at start.
	ValidateOnStart bool `yaml:"validate_on_start"`
	// RotateBeforeExpiry rotates a broker key this long before it expires.
	RotateBeforeExpiry time.Duration `yaml:"rotate_before_expiry"`
	// RotateOnLimit lets a key-limit 402 or 403 on a broker key rotate the
	// key once, like a 401: for brokers that issue a fresh allowance per key.
	RotateOnLimit bool `yaml:"rotate_on_limit"`
}

// WebSearch configures the openrouter:web_search tool added to chat requests.
type WebSearch struct {
	Enabled bool `yaml:"enabled"`
	// Engine is auto, native, exa, firecrawl, parallel or perplexity.
	Engine string `yaml:"engine"`
	// MaxResults is the number of results per search, 1–25.
	MaxResults int `yaml:"max_results"`
	// MaxCharacters caps each result's text; 0 leaves it to OpenRouter.
	MaxCharacters int `yaml:"max_characters"`
	// ExcludeModels are model globs that never get the tool: * and ? match
	// any characters, "/" included; [...] is a class.
	ExcludeModels []string `yaml:"exclude_models"`
	// MaxTotalResults caps results across all searches of one request; 0
	// leaves it to OpenRouter. A cost control: every result is billed input.
	MaxTotalResults int `yaml:"max_total_results"`
	// SearchContextSize is low, medium or high; empty leaves it to OpenRouter.
	SearchContextSize string `yaml:"search_context_size"`
	// AllowedDomains and ExcludedDomains restrict where the engine searches;
	// most engines take only one of the two, so setting both is an error.
	AllowedDomains  []string `yaml:"allowed_domains"`
	ExcludedDomains []string `yaml:"excluded_domains"`
	// Messages adds the tool to Anthropic Messages requests too. Off by
	// default: Claude Code brings its own web search.
	Messages bool `yaml:"messages"`
}

// Usage configures the usage ledger: one row per request that reached
// OpenRouter, in a SQLite file any tool can read.
type Usage struct {
	Enabled bool `yaml:"enabled"`
	// File is the ledger; empty means usage.db in the user data directory.
	File string `yaml:"file"`
	// Retention is how long rows are kept.
	Retention time.Duration `yaml:"retention"`
	// KeyPoll is how often GET {upstream}/key is read while requests flow.
	KeyPoll time.Duration `yaml:"key_poll"`
}

// Budget bounds what the proxy spends, counted from the ledger's costs.
type Budget struct {
	// DailyUSD and MonthlyUSD are limits for the local day and month; 0 is off.
	DailyUSD   float64 `yaml:"daily_usd"`
	MonthlyUSD float64 `yaml:"monthly_usd"`
	// WarnAt is the share of a budget at which one warning is logged.
	WarnAt float64 `yaml:"warn_at"`
}

// Attribution names orproxy to OpenRouter as an app (HTTP-Referer and
// X-Title), added only when the client sent neither header.
type Attribution struct {
	Enabled bool   `yaml:"enabled"`
	Referer string `yaml:"referer"`
	Title   string `yaml:"title"`
}

// Keepalive keeps one upstream connection warm while the proxy is in use, so
// the first request after a pause skips the TCP and TLS handshake.
type Keepalive struct {
	Enabled bool `yaml:"enabled"`
	// RecentUse is how long after the last request the connection is kept;
	// beyond it orproxy sends nothing but the model catalogue refresh.
	RecentUse time.Duration `yaml:"recent_use"`
}

// Limits bound what a client may send.
type Limits struct {
	// MaxRequestBody is the largest request body accepted; bodies are kept in
	// memory so a request can be replayed after a key rotation.
	MaxRequestBody ByteSize `yaml:"max_request_body"`
	// BodyReadTimeout is how long reading a request body may go without a
	// byte arriving; the client then gets a 408 and its connection is closed.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is auto (console on a terminal, JSON otherwise), console or json.
	Format string `yaml:"format"`
}

// Allowed values, shared by validation and its error messages.
var (
	LoginMethods     = []string{"broker", "openrouter", "key"}
	WebSearchEngines = []string{"auto", "native", "exa", "firecrawl", "parallel", "perplexity"}
	LogLevels        = []string{"debug", "info", "warn", "error"}
	LogFormats       = []string{"auto", "console", "json"}
	ContextSizes     = []string{"low", "medium", "high"}
)

// Default returns the built-in settings: what `orproxy serve` runs with when no
// file, environment variable or flag says otherwise.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:8765",
		Upstream: "https://openrouter.ai/api/v1",
		Broker: Broker{
			StartHeaders:  []string{},
			Timeout:       10 * time.Second,
			ReturnToState: true,
		},
		Login: Login{
			Method:      "broker",
			OpenBrowser: true,
		},
		Credentials: Credentials{
			ValidateOnStart:    true,
			RotateBeforeExpiry: 24 * time.Hour,
		},
		WebSearch: WebSearch{
			Enabled:         true,
			Engine:          "auto",
			MaxResults:      8,
			ExcludeModels:   []string{},
			AllowedDomains:  []string{},
			ExcludedDomains: []string{},
		},
		Usage:       Usage{Enabled: true, Retention: 400 * Day, KeyPoll: 10 * time.Minute},
		Budget:      Budget{WarnAt: 0.8},
		Attribution: Attribution{Enabled: true, Referer: "https://github.com/orproxy/orproxy", Title: "orproxy"},
		Keepalive:   Keepalive{Enabled: true, RecentUse: time.Hour},
		Limits:      Limits{MaxRequestBody: 32 * MiB, BodyReadTimeout: 60 * time.Second},
		Log:         Log{Level: "info", Format: "auto"},
	}
}

// Day is a duration unit config files may use ("400d"): 24 hours, whatever
// the clock does on a daylight-saving day.
const Day = 24 * time.Hour

// Dir is orproxy's directory under the user's configuration directory
// (~/.config/orproxy on Linux, ~/Library/Application Support/orproxy on macOS).
func Dir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "orproxy"), nil
}

// CredentialsFile is the credential file in use: the configured one, or
// credentials.json in Dir.
func (c Config) CredentialsFile() (string, error) {
	if c.Credentials.File != "" {
		return c.Credentials.File, nil
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "credentials.json"), nil
}
