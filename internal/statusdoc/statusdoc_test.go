package statusdoc

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The JSON names are the contract users and scripts read: a renamed field
// must fail here, not in their jq filters.
func TestJSONNamesAreTheContract(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := Document{
		Version: "v", Upstream: "u", Listen: "l", UptimeSeconds: 1,
		Credential: Credential{
			LoggedIn: true, Usable: true, Problem: "p", File: "f", FileError: "e", Source: "broker",
			Key: "sk-or-v1-…a1b2", Label: "l", Hash: "h", ExpiresAt: &now, UpdatedAt: &now,
			CanRotate: true, RotationCount: 1, LastRotationAt: &now, LastRotationError: "e",
			RotationFailures: 1, RotationWaitUntil: &now, SaveError: "e",
			LoginURL: "u", LoginStartedAt: &now, LastLoginError: "e",
			LastValidation: &Validation{At: now, Result: "ok"},
		},
		WebSearch: WebSearch{
			Enabled: true, Engine: "auto", MaxResults: 5, MaxCharacters: 1, ExcludeModels: []string{"x"},
			Patched: 1, Skipped: map[string]uint64{"opt_out": 1}, ResentWithoutTool: 1,
			Catalog:   Catalog{Models: 1, WithoutTools: 1, LastRefresh: now, LastError: "e", LastErrorAt: now},
			Cooldowns: map[string]time.Time{"m": now},
		},
		Requests: Requests{
			Total: 1, InFlight: 1, RefusedByGuard: 1, RetriedAfter401: 1, UpstreamErrors: 1, ClientGone: 1, RateLimited: 1,
			ByStatus: ByStatus{1, 1, 1, 1, 1},
		},
		WarmConnection: &WarmConnection{
			Enabled: true, RecentUseSeconds: 3600, Held: true, Connections: 1, LastUsed: now, KeptUntil: now,
			Warmups: 1, LastWarmup: now, LastError: "e", LastErrorAt: now,
		},
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	var generic map[string]any
	require.NoError(t, json.Unmarshal(b, &generic))
	assert.Equal(t, []string{
		"credential.can_rotate", "credential.expires_at", "credential.file", "credential.file_error",
		"credential.hash", "credential.key", "credential.label", "credential.last_login_error",
		"credential.last_rotation_at", "credential.last_rotation_error", "credential.last_validation.at",
		"credential.last_validation.result", "credential.logged_in", "credential.login_started_at",
		"credential.login_url", "credential.problem", "credential.rotation_backoff_until",
		"credential.rotation_count", "credential.rotation_failures_in_a_row", "credential.save_error",
		"credential.source", "credential.updated_at", "credential.usable",
		"listen",
		"requests.by_status.1xx", "requests.by_status.2xx", "requests.by_status.3xx", "requests.by_status.4xx",
		"requests.by_status.5xx", "requests.client_gone", "requests.in_flight", "requests.rate_limited",
		"requests.refused_by_guard", "requests.retried_after_401", "requests.total", "requests.upstream_errors",
		"upstream", "uptime_seconds", "version",
		"warm_connection.connections", "warm_connection.enabled", "warm_connection.held", "warm_connection.kept_until",
		"warm_connection.last_error", "warm_connection.last_error_at", "warm_connection.last_used",
		"warm_connection.last_warmup", "warm_connection.recent_use_seconds", "warm_connection.warmups",
		"web_search.catalog.last_error", "web_search.catalog.last_error_at", "web_search.catalog.last_refresh",
		"web_search.catalog.models", "web_search.catalog.without_tools", "web_search.cooldowns.m",
		"web_search.enabled", "web_search.engine", "web_search.exclude_models", "web_search.max_characters",
		"web_search.max_results", "web_search.patched", "web_search.resent_without_tool", "web_search.skipped.opt_out",
	}, paths("", generic))

	var back Document
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, doc, back, "what the daemon writes, orproxy status reads back whole")
}

// A usable key with nothing to report leaves the optional fields out, and
// says usable either way.
func TestUsableIsAlwaysThere(t *testing.T) {
	b, err := json.Marshal(Credential{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"logged_in":false,"usable":false,"file":"","can_rotate":false,"rotation_count":0}`, string(b))
}

// paths lists the leaf paths of a decoded JSON object, sorted.
func paths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return []string{prefix}
	}
	var out []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, paths(p, child)...)
	}
	sort.Strings(out)
	return out
}
