// Package statusdoc is the document the daemon answers GET /status with and
// `orproxy status` reads back. Both sides use these types, so a field cannot
// be renamed on one side and go on being read under its old name on the
// other. The JSON names are part of the outside contract: users and scripts
// read them.
//
// Nothing here is a secret: keys appear only in their redacted form
// (sk-or-v1-…a1b2), and whoever fills a document must keep it that way.
package statusdoc

import "time"

// Document is the whole of GET /status.
//
// The money sections are pointers tagged omitempty, so a daemon without
// that part (the ledger turned off, /key never answered) leaves the section
// out rather than showing zeros that read as facts.
type Document struct {
	Version string `json:"version"`
	// Upstream is OpenRouter's API base, any user information redacted.
	Upstream string `json:"upstream"`
	Listen   string `json:"listen"`
	// UptimeSeconds counts from the handler's construction.
	UptimeSeconds int64      `json:"uptime_seconds"`
	Credential    Credential `json:"credential"`
	// WebSearch is all zero, Enabled false, when the proxy runs without a
	// body patcher.
	WebSearch WebSearch `json:"web_search"`
	Requests  Requests  `json:"requests"`

	// Credits is the key's limit and usage as OpenRouter reports them.
	Credits *Credits `json:"credits,omitempty"`
	// Spend is what the ledger counted for the local day and month.
	Spend *Spend `json:"spend,omitempty"`
	// Budget is the configured limits and whether one is used up.
	Budget *Budget `json:"budget,omitempty"`
	// Ledger is the usage ledger's health.
	Ledger *Ledger `json:"ledger,omitempty"`
	// WarmConnection is the upstream connection kept open between
	// requests (keepalive).
	WarmConnection *WarmConnection `json:"warm_connection,omitempty"`
}

// WarmConnection says whether an upstream connection is open, so that the
// next request skips the TCP and TLS handshakes, and when the proxy last
// sent one.
type WarmConnection struct {
	// Enabled is keepalive.enabled; RecentUseSeconds is keepalive.recent_use.
	Enabled          bool  `json:"enabled"`
	RecentUseSeconds int64 `json:"recent_use_seconds"`
	// Held says at least one upstream connection is open, idle or busy;
	// Connections counts them.
	Held        bool  `json:"held"`
	Connections int64 `json:"connections"`
	// LastUsed is when a client's request last went upstream.
	LastUsed time.Time `json:"last_used,omitzero"`
	// KeptUntil is when the window ends unless another request comes: a
	// connection is kept until then, and none after. The daemon's start
	// opens the window as a request does.
	KeptUntil time.Time `json:"kept_until,omitzero"`
	// Warmups counts the connections opened for the window with GET /key;
	// LastWarmup is the latest.
	Warmups    int64     `json:"warmups"`
	LastWarmup time.Time `json:"last_warmup,omitzero"`
	// LastError is the most recent failed warm-up, kept after a later
	// success; compare LastErrorAt with LastWarmup.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Credits is OpenRouter's GET /key answer for the key in use. Amounts are
// USD; a nil Limit means the key has no limit.
type Credits struct {
	Limit          *float64 `json:"limit"`
	LimitRemaining *float64 `json:"limit_remaining"`
	// LimitReset is daily, weekly, monthly, or empty for a limit that never resets.
	LimitReset   string  `json:"limit_reset,omitempty"`
	Usage        float64 `json:"usage"`
	UsageDaily   float64 `json:"usage_daily"`
	UsageWeekly  float64 `json:"usage_weekly"`
	UsageMonthly float64 `json:"usage_monthly"`
	IsFreeTier   bool    `json:"is_free_tier"`
	// CheckedAt is when OpenRouter last answered; LastError is the most
	// recent failed read, kept so that a flapping upstream shows.
	CheckedAt   time.Time `json:"checked_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Spend is the ledger's count of what requests through this proxy cost.
type Spend struct {
	TodayUSD float64 `json:"today_usd"`
	MonthUSD float64 `json:"month_usd"`
	// WebSearchesToday counts server-side searches, billed on top of tokens.
	WebSearchesToday int64 `json:"web_searches_today"`
	// UnknownCostToday counts answers that reported no cost; they add 0.
	UnknownCostToday int64 `json:"unknown_cost_today"`
}

// Budget is the configured spending limits (0: none) and their state.
type Budget struct {
	DailyUSD   float64 `json:"daily_usd"`
	MonthlyUSD float64 `json:"monthly_usd"`
	WarnAt     float64 `json:"warn_at"`
	// Exhausted names the used-up budget ("daily" or "monthly"), if any:
	// new requests to model endpoints then get a 402.
	Exhausted string `json:"exhausted,omitempty"`
}

// Ledger is the usage ledger's health. Rows are dropped, never waited for,
// when the queue is full or the database fails.
type Ledger struct {
	File        string    `json:"file"`
	Written     int64     `json:"rows_written"`
	Dropped     int64     `json:"rows_dropped"`
	Queued      int       `json:"rows_queued"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Failing is true while the last write failed.
	Failing bool `json:"failing"`
}

// Credential describes the key in use and its rotation record. It also
// serves `orproxy status` for the credential file when no daemon answers.
type Credential struct {
	LoggedIn bool `json:"logged_in"`
	// Usable says there is a key to send that is not expired and not known
	// to be rejected by OpenRouter. When it is false, Problem is set.
	Usable bool `json:"usable"`
	// Problem says why the key is not usable and what to run about it.
	Problem string `json:"problem,omitempty"`

	File      string `json:"file"`
	FileError string `json:"file_error,omitempty"`
	// Source is how the key was obtained: broker, openrouter or manual.
	Source string `json:"source,omitempty"`
	// Key is the redacted key, never the key itself.
	Key       string     `json:"key,omitempty"`
	Label     string     `json:"label,omitempty"`
	Hash      string     `json:"hash,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`

	// CanRotate says a broker can replace the key.
	CanRotate         bool       `json:"can_rotate"`
	RotationCount     int        `json:"rotation_count"`
	LastRotationAt    *time.Time `json:"last_rotation_at,omitempty"`
	LastRotationError string     `json:"last_rotation_error,omitempty"`
	RotationFailures  int        `json:"rotation_failures_in_a_row,omitempty"`
	// RotationWaitUntil is when rotations stop backing off.
	RotationWaitUntil *time.Time `json:"rotation_backoff_until,omitempty"`
	// SaveError is why a key the broker issued is not yet in the file.
	SaveError string `json:"save_error,omitempty"`

	// LoginURL is the address to open while an automatic login waits.
	LoginURL       string     `json:"login_url,omitempty"`
	LoginStartedAt *time.Time `json:"login_started_at,omitempty"`
	LastLoginError string     `json:"last_login_error,omitempty"`

	// LastValidation is the check of the key with OpenRouter at start.
	LastValidation *Validation `json:"last_validation,omitempty"`
}

// Renewal is the command that brings a usable key in place of c's.
func (c *Credential) Renewal() string {
	if c.CanRotate {
		return "`orproxy rotate` (or `orproxy login`)"
	}
	return "`orproxy login`"
}

// Validation is one check of the key with OpenRouter.
type Validation struct {
	At time.Time `json:"at"`
	// Result is "ok", "rejected" with what became of the key ("rejected;
	// replaced", "rejected; no replacement: …"), or "unknown: …" when
	// OpenRouter could not be asked.
	Result string `json:"result"`
}

// WebSearch is the web search tool's settings and counters.
type WebSearch struct {
	Enabled       bool     `json:"enabled"`
	Engine        string   `json:"engine"`
	MaxResults    int      `json:"max_results"`
	MaxCharacters int      `json:"max_characters"`
	ExcludeModels []string `json:"exclude_models"`

	// Patched counts requests that got the tool.
	Patched uint64 `json:"patched"`
	// Skipped counts requests sent unchanged, by reason; every reason is
	// listed, zero or not.
	Skipped map[string]uint64 `json:"skipped"`
	// ResentWithoutTool counts patched requests that upstream rejected
	// because of the tool and that were sent again as the client wrote them.
	ResentWithoutTool uint64 `json:"resent_without_tool"`

	Catalog Catalog `json:"catalog"`
	// Cooldowns maps each model now going without the tool to when that ends.
	Cooldowns map[string]time.Time `json:"cooldowns"`
}

// Catalog describes the model catalogue the web search tool consults.
type Catalog struct {
	// Models is the number of models in the last catalogue fetched.
	Models int `json:"models"`
	// WithoutTools is how many of them take no tools (and so get no search).
	WithoutTools int       `json:"without_tools"`
	LastRefresh  time.Time `json:"last_refresh,omitzero"`
	// LastError is the most recent failed fetch, kept after a later success
	// so that a flapping upstream shows; compare LastErrorAt with LastRefresh.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Requests are the proxy's request counters since start.
type Requests struct {
	Total int64 `json:"total"`
	// InFlight does not count the /status request that reads it.
	InFlight        int64 `json:"in_flight"`
	RefusedByGuard  int64 `json:"refused_by_guard"`
	RetriedAfter401 int64 `json:"retried_after_401"`
	// UpstreamErrors counts requests OpenRouter could not be reached for,
	// or that got no response headers in time.
	UpstreamErrors int64 `json:"upstream_errors"`
	// ClientGone counts clients that went away before their answer ended.
	ClientGone int64 `json:"client_gone"`
	// RateLimited counts OpenRouter's 429 answers.
	RateLimited int64    `json:"rate_limited"`
	ByStatus    ByStatus `json:"by_status"`
}

// ByStatus counts answers by status class.
type ByStatus struct {
	Informational int64 `json:"1xx"`
	Success       int64 `json:"2xx"`
	Redirect      int64 `json:"3xx"`
	ClientError   int64 `json:"4xx"`
	ServerError   int64 `json:"5xx"`
}
