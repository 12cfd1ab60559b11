package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/secret"
)

// Validate checks every value and returns one message per problem.
func (c Config) Validate() []string {
	var out []string
	for _, p := range c.validate() {
		out = append(out, p.key+": "+p.msg)
	}
	return out
}

// problem is a bad value; key is the dotted key, with an [index] for list items.
type problem struct{ key, msg string }

func (c Config) validate() []problem {
	var p []problem
	add := func(key, format string, args ...any) {
		p = append(p, problem{key, fmt.Sprintf(format, args...)})
	}

	if err := validateListen(c.Listen, c.AccessToken != ""); err != nil {
		add("listen", "%v", err)
	}
	if err := validateServiceURL(c.Upstream); err != nil {
		add("upstream", "%v", err)
	}
	if c.Broker.URL != "" {
		if err := validateServiceURL(c.Broker.URL); err != nil {
			add("broker.url", "%v", err)
		}
	}
	for i, h := range c.Broker.StartHeaders {
		if _, _, err := netaddr.ParseHeaderLine(h); err != nil {
			add(fmt.Sprintf("broker.start_headers[%d]", i), "%v", err)
		}
	}
	if c.Broker.Timeout <= 0 || c.Broker.Timeout > 5*time.Minute {
		add("broker.timeout", "%s is out of range (allowed: more than 0 and at most 5m)", c.Broker.Timeout)
	}
	if !slices.Contains(LoginMethods, c.Login.Method) {
		add("login.method", "%q is not a login method (allowed: %s)", c.Login.Method, strings.Join(LoginMethods, ", "))
	}
	if c.Login.AutoLogin && c.Login.Method == "key" {
		add("login.auto_login", "cannot be used with login.method key: the daemon cannot read a pasted key; use broker or openrouter")
	}
	if c.Login.AutoLogin && c.Login.Method == "broker" && c.Broker.URL == "" {
		add("login.auto_login", "needs broker.url with login.method broker: the automatic login goes through the broker (or set login.method: openrouter)")
	}
	if c.Login.CallbackPort < 0 || c.Login.CallbackPort > 65535 {
		add("login.callback_port", "%d is not a port (allowed: 0 for any free port, or 1–65535)", c.Login.CallbackPort)
	}
	if c.Credentials.RotateBeforeExpiry < 0 {
		add("credentials.rotate_before_expiry", "%s is negative (allowed: 0 or more, e.g. 24h)", c.Credentials.RotateBeforeExpiry)
	}
	if !slices.Contains(WebSearchEngines, c.WebSearch.Engine) {
		add("web_search.engine", "%q is not a search engine (allowed: %s)", c.WebSearch.Engine, strings.Join(WebSearchEngines, ", "))
	}
	if c.WebSearch.MaxResults < 1 || c.WebSearch.MaxResults > 25 {
		add("web_search.max_results", "%d is out of range (allowed: 1–25)", c.WebSearch.MaxResults)
	}
	if c.WebSearch.MaxCharacters < 0 || c.WebSearch.MaxCharacters > 100000 {
		add("web_search.max_characters", "%d is out of range (allowed: 0 to leave it unset, or 1–100000)", c.WebSearch.MaxCharacters)
	}
	for i, g := range c.WebSearch.ExcludeModels {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			add(fmt.Sprintf("web_search.exclude_models[%d]", i), "%q is not a valid glob (use * and ?, e.g. openai/* or *:free)", g)
		}
	}
	if c.WebSearch.MaxTotalResults < 0 || c.WebSearch.MaxTotalResults > 100 {
		add("web_search.max_total_results", "%d is out of range (allowed: 0 to leave it unset, or 1–100)", c.WebSearch.MaxTotalResults)
	}
	if c.WebSearch.SearchContextSize != "" && !slices.Contains(ContextSizes, c.WebSearch.SearchContextSize) {
		add("web_search.search_context_size", "%q is not a context size (allowed: %s, or empty to leave it unset)", c.WebSearch.SearchContextSize, strings.Join(ContextSizes, ", "))
	}
	if len(c.WebSearch.AllowedDomains) > 0 && len(c.WebSearch.ExcludedDomains) > 0 {
		add("web_search.allowed_domains", "cannot be set together with web_search.excluded_domains: most search engines take only one of the two; keep one")
	}
	for _, list := range []struct {
		key     string
		domains []string
	}{{"web_search.allowed_domains", c.WebSearch.AllowedDomains}, {"web_search.excluded_domains", c.WebSearch.ExcludedDomains}} {
		for i, d := range list.domains {
			if !plainDomain(d) {
				add(fmt.Sprintf("%s[%d]", list.key, i), "%q is not a domain (use a bare host name such as example.com, without scheme or path)", d)
			}
		}
	}
	if c.Usage.Retention < Day || c.Usage.Retention > 100*365*Day {
		add("usage.retention", "%s is out of range (allowed: 1d–36500d)", FormatDuration(c.Usage.Retention))
	}
	if c.Usage.KeyPoll < time.Minute || c.Usage.KeyPoll > 24*time.Hour {
		add("usage.key_poll", "%s is out of range (allowed: 1m–24h)", FormatDuration(c.Usage.KeyPoll))
	}
	if c.Budget.DailyUSD < 0 {
		add("budget.daily_usd", "%v is negative (allowed: 0 for no daily budget, or an amount in USD such as 5)", c.Budget.DailyUSD)
	}
	if c.Budget.MonthlyUSD < 0 {
		add("budget.monthly_usd", "%v is negative (allowed: 0 for no monthly budget, or an amount in USD such as 100)", c.Budget.MonthlyUSD)
	}
	if c.Budget.WarnAt <= 0 || c.Budget.WarnAt > 1 {
		add("budget.warn_at", "%v is out of range (allowed: more than 0 and at most 1, the share of a budget at which orproxy warns)", c.Budget.WarnAt)
	}
	if (c.Budget.DailyUSD > 0 || c.Budget.MonthlyUSD > 0) && !c.Usage.Enabled {
		add("budget", "needs usage.enabled: budgets count the costs the usage ledger records")
	}
	if c.Attribution.Enabled {
		if c.Attribution.Referer != "" {
			u, err := url.Parse(c.Attribution.Referer)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
				add("attribution.referer", "%q is not an absolute http(s) URL (e.g. https://github.com/orproxy/orproxy)", secret.RedactURL(c.Attribution.Referer))
			case u.User != nil:
				// It goes to OpenRouter in a header on every request.
				add("attribution.referer", "%q must not carry user info", u.Redacted())
			}
		}
		if strings.ContainsAny(c.Attribution.Referer+c.Attribution.Title, "\r\n\x00") {
			add("attribution", "referer and title must be one line each")
		}
	}
	if c.Keepalive.Enabled && (c.Keepalive.RecentUse < time.Minute || c.Keepalive.RecentUse > 7*Day) {
		add("keepalive.recent_use", "%s is out of range (allowed: 1m–7d; turn it off with keepalive.enabled: false)", c.Keepalive.RecentUse)
	}
	if c.Limits.MaxRequestBody < KiB || c.Limits.MaxRequestBody > GiB {
		add("limits.max_request_body", "%s is out of range (allowed: 1KiB–1GiB)", c.Limits.MaxRequestBody)
	}
	if c.Limits.BodyReadTimeout < time.Second || c.Limits.BodyReadTimeout > time.Hour {
		add("limits.body_read_timeout", "%s is out of range (allowed: 1s–1h)", c.Limits.BodyReadTimeout)
	}
	if !slices.Contains(LogLevels, c.Log.Level) {
		add("log.level", "%q is not a log level (allowed: %s)", c.Log.Level, strings.Join(LogLevels, ", "))
	}
	if !slices.Contains(LogFormats, c.Log.Format) {
		add("log.format", "%q is not a log format (allowed: %s)", c.Log.Format, strings.Join(LogFormats, ", "))
	}
	return p
}

func validateListen(addr string, hasAccessToken bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:8765)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port (allowed: 0–65535)", addr)
	}
	if netaddr.IsLoopbackHost(host) {
		return nil
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: the host must be an IP address or localhost", addr)
	}
	if !hasAccessToken {
		return fmt.Errorf("%q is not a loopback address; orproxy listens beyond this machine only when access_token is set, because anyone who reaches the port could spend your OpenRouter credits", addr)
	}
	return nil
}

// validateServiceURL accepts an absolute https URL, or http for a loopback
// host (the fakes and local gateways): the key must not cross a network in clear text.
func validateServiceURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not an absolute http(s) URL (e.g. https://openrouter.ai/api/v1)", secret.RedactURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		// Redacted: user info may hold a password.
		return fmt.Errorf("%q must not carry a query, fragment or user info", u.Redacted())
	}
	if u.Scheme == "http" && !netaddr.IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q uses http to a remote host; use https (http is allowed only for a loopback host)", u.Redacted())
	}
	return nil
}

// plainDomain accepts a bare host name, the form the search engines match.
func plainDomain(d string) bool {
	if d == "" || len(d) > 253 || strings.ContainsAny(d, "/:@ ?#*") {
		return false
	}
	return strings.Contains(d, ".") && !strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".")
}
