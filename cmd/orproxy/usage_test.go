package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/ledger"
	"github.com/orproxy/orproxy/usage"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the commands print")

// usageZone is the fixed time zone of the usage tests: days begin at its
// midnight, not UTC's.
var usageZone = time.FixedZone("CET", 3600)

// usageNow is the fixed moment the usage tests run at.
var usageNow = time.Date(2026, 11, 23, 12, 0, 0, 0, usageZone)

// fixUsageClock makes the usage command run at usageNow in usageZone.
func fixUsageClock(t *testing.T) {
	t.Helper()
	saved := usageClock
	usageClock = func() (time.Time, *time.Location) { return usageNow, usageZone }
	t.Cleanup(func() { usageClock = saved })
}

func at(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, usageZone)
}

// usageRows are the known rows the golden files show.
var usageRows = []ledger.Row{
	// Older than the default week.
	{Time: at(10, 10, 0), Endpoint: usage.Chat.String(), Model: "openai/gpt-4o-mini", ModelServed: "openai/gpt-4o-mini",
		Status: 200, PromptTokens: 100, CompletionTokens: 10, CostUSD: 1, CostKnown: true, Client: "opencode"},
	{Time: at(20, 9, 0), Endpoint: usage.Chat.String(), Model: "openrouter/auto", ModelServed: "anthropic/claude-sonnet-4.5",
		Status: 200, PromptTokens: 1200, CompletionTokens: 340, CachedTokens: 1000, CostUSD: 0.0123, CostKnown: true,
		WebSearches: 1, ToolInjected: true, Client: "opencode"},
	// 23:30 local is 22:30 UTC: the same day either way.
	{Time: at(20, 23, 30), Endpoint: usage.Messages.String(), Model: "anthropic/claude-sonnet-4.5", ModelServed: "anthropic/claude-sonnet-4.5",
		Status: 200, Streamed: true, PromptTokens: 25000, CompletionTokens: 1500, CachedTokens: 20000, CostUSD: 0.08, CostKnown: true,
		Client: "claude-code"},
	// 00:30 local on the 21st is still the 20th in UTC: grouped by the local day.
	{Time: at(21, 0, 30), Endpoint: usage.Responses.String(), Model: "openai/gpt-4o-mini", ModelServed: "openai/gpt-4o-mini",
		Status: 200, PromptTokens: 500, CompletionTokens: 100, CostUSD: 0.00003, CostKnown: true, Client: "openai-sdk"},
	// Upstream failed: an error, and no cost reported.
	{Time: at(21, 10, 0), Endpoint: usage.Chat.String(), Model: "openai/gpt-4o-mini", Status: 502, Client: "curl"},
	// A stream cut short: an error though the status was 200.
	{Time: at(22, 15, 0), Endpoint: usage.Chat.String(), Model: "google/gemini-2.5-flash", ModelServed: "google/gemini-2.5-flash",
		Status: 200, Streamed: true, Error: true, PromptTokens: 1234567, CompletionTokens: 2000, CostUSD: 0.25, CostKnown: true,
		WebSearches: 3, Client: "opencode"},
	// Embeddings: no model named, no cost reported.
	{Time: at(23, 11, 59), Endpoint: usage.Other.String(), Status: 200, PromptTokens: 42, Client: "other"},
}

// fillLedger writes rows to a new ledger at path, as the daemon would.
func fillLedger(t *testing.T, path string, rows []ledger.Row) {
	t.Helper()
	w, err := ledger.Open(path, ledger.Options{})
	require.NoError(t, err)
	for _, r := range rows {
		w.Add(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, w.Close(ctx))
	require.Equal(t, uint64(len(rows)), w.Status().Written)
}

// usageConfig is a config naming ledger as usage.file, with no daemon or
// upstream anyone listens on.
func usageConfig(t *testing.T, ledgerPath, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf("listen: 127.0.0.1:1\nupstream: http://127.0.0.1:1/api/v1\nusage: {file: %s%s}\n", ledgerPath, extra)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// golden compares got with testdata/name.golden, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(p, []byte(got), 0o644))
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "run go test -run %s -update to write it", t.Name())
	assert.Equal(t, string(want), got)
}

func TestUsageGolden(t *testing.T) {
	fixUsageClock(t)
	path := filepath.Join(t.TempDir(), "usage.db")
	fillLedger(t, path, usageRows)
	cfg := usageConfig(t, path, "")

	tests := []struct {
		name string
		args []string
	}{
		{"usage_day", nil},
		{"usage_model", []string{"--by", "model"}},
		{"usage_client_since_date", []string{"--by", "client", "--since", "2026-11-21"}},
		{"usage_endpoint", []string{"--by", "ENDPOINT", "--since", "30d"}},
		{"usage_day_json", []string{"--json"}},
		{"usage_endpoint_json", []string{"--by", "endpoint", "--json"}},
		{"usage_model_csv", []string{"--by", "model", "--csv"}},
		{"usage_since_rfc3339_json", []string{"--since", "2026-11-20T22:00:00Z", "--json"}},
		{"usage_since_hours", []string{"--since", "36h", "--by", "model"}},
		{"usage_empty", []string{"--since", "30s"}},
		{"usage_empty_json", []string{"--since", "30s", "--json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"--config", cfg, "usage"}, tt.args...)...)
			require.Equal(t, exitOK, code, errOut)
			assert.Empty(t, errOut)
			golden(t, tt.name, strings.ReplaceAll(out, path, "<ledger>"))
		})
	}
}

// The JSON is DESIGN's shape: by, since, until (RFC 3339), groups with
// their fields, and a total without a name; unknown_cost is the one field
// added.
func TestUsageJSONShape(t *testing.T) {
	fixUsageClock(t)
	path := filepath.Join(t.TempDir(), "usage.db")
	fillLedger(t, path, usageRows)
	code, out, errOut := run(t, "--config", usageConfig(t, path, ""), "usage", "--json", "--by", "model")
	require.Equal(t, exitOK, code, errOut)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	assert.ElementsMatch(t, []string{"by", "since", "until", "groups", "total"}, keys(doc))
	assert.Equal(t, "model", doc["by"])
	assert.Equal(t, "2026-11-16T12:00:00+01:00", doc["since"])
	assert.Equal(t, "2026-11-23T12:00:00+01:00", doc["until"])
	fields := []string{"requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "web_searches", "errors", "unknown_cost"}
	groups := doc["groups"].([]any)
	require.Len(t, groups, 4)
	for _, g := range groups {
		assert.ElementsMatch(t, append([]string{"name"}, fields...), keys(g.(map[string]any)))
	}
	total := doc["total"].(map[string]any)
	assert.ElementsMatch(t, fields, keys(total))
	assert.EqualValues(t, 6, total["requests"])
	assert.EqualValues(t, 2, total["errors"])
	assert.EqualValues(t, 2, total["unknown_cost"])
	assert.InDelta(t, 0.0123+0.08+0.00003+0.25, total["cost_usd"], 1e-12)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The ledger is read while the daemon writes it: rows it flushed count,
// and the reader neither waits for nor disturbs the writer.
func TestUsageWhileTheDaemonWrites(t *testing.T) {
	fixUsageClock(t)
	path := filepath.Join(t.TempDir(), "usage.db")
	w, err := ledger.Open(path, ledger.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	for _, r := range usageRows[1:4] {
		w.Add(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, w.Flush(ctx))

	cfg := usageConfig(t, path, "")
	code, out, errOut := run(t, "--config", cfg, "usage", "--json")
	require.Equal(t, exitOK, code, errOut)
	var doc usageDoc
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	assert.EqualValues(t, 3, doc.Total.Requests)

	w.Add(usageRows[4])
	require.NoError(t, w.Flush(ctx))
	code, out, errOut = run(t, "--config", cfg, "usage", "--json")
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	assert.EqualValues(t, 4, doc.Total.Requests)
	assert.Zero(t, w.Status().Dropped)
}

func TestUsageFailures(t *testing.T) {
	fixUsageClock(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing-yet", "usage.db")
	notLedger := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notLedger, []byte("these are my notes, not a database\n"), 0o600))
	good := filepath.Join(dir, "usage.db")
	fillLedger(t, good, usageRows[:2])

	tests := []struct {
		name   string
		ledger string
		extra  string
		args   []string
		code   int
		stderr string
	}{
		{
			name: "no ledger yet", ledger: missing, code: exitFailure,
			stderr: "orproxy: no usage recorded yet: the ledger " + missing + " does not exist; it is created when the daemon forwards its first request (usage.enabled)\n",
		},
		{
			name: "no ledger, none kept", ledger: missing, extra: ", enabled: false", code: exitFailure,
			stderr: "orproxy: no usage recorded: usage.enabled is off, so the daemon keeps no ledger (" + missing + " does not exist); turn it on in the config to record usage\n",
		},
		{name: "not a ledger", ledger: notLedger, code: exitFailure, stderr: notLedger + " is not a SQLite database"},
		{name: "a directory", ledger: dir, code: exitFailure, stderr: dir + " is a directory"},
		{name: "json and csv", ledger: good, args: []string{"--json", "--csv"}, code: exitUsage, stderr: "--json and --csv print different formats: choose one"},
		{name: "bad by", ledger: good, args: []string{"--by", "week"}, code: exitUsage, stderr: `--by: cannot group usage by "week": use day, model, client or endpoint`},
		{name: "bad since", ledger: good, args: []string{"--since", "yesterday"}, code: exitUsage, stderr: `--since "yesterday" is not a duration (7d, 24h), a date (2026-11-01) or a time (2026-11-01T09:00:00Z)`},
		{name: "negative since", ledger: good, args: []string{"--since", "-5h"}, code: exitUsage, stderr: `--since "-5h" is negative`},
		{name: "impossible date", ledger: good, args: []string{"--since", "2026-02-30"}, code: exitUsage, stderr: `--since "2026-02-30" is not`},
		{name: "arguments", ledger: good, args: []string{"model"}, code: exitUsage, stderr: "orproxy usage takes no arguments (got 1)"},
		// A bad flag is refused before the ledger is looked for.
		{name: "bad by, no ledger", ledger: missing, args: []string{"--by", "hour"}, code: exitUsage, stderr: "cannot group usage by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"--config", usageConfig(t, tt.ledger, tt.extra), "usage"}, tt.args...)...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Empty(t, out)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			assert.Contains(t, errOut, tt.stderr)
			if tt.code == exitUsage {
				assert.Contains(t, errOut, "Run 'orproxy usage --help' for usage.")
			}
		})
	}
	_, err := os.Stat(filepath.Dir(missing))
	assert.ErrorIs(t, err, os.ErrNotExist, "reading created the ledger's directory")
	data, err := os.ReadFile(notLedger)
	require.NoError(t, err)
	assert.Equal(t, "these are my notes, not a database\n", string(data), "a file that is not a ledger is left as it was")
}

// Without usage.file, the ledger is the default one in the user data
// directory.
func TestUsageDefaultLedger(t *testing.T) {
	fixUsageClock(t)
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	want, err := ledger.DefaultPath()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(want, data), want)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("listen: 127.0.0.1:1\n"), 0o600))

	code, _, errOut := run(t, "--config", cfg, "usage")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "the ledger "+want+" does not exist")

	fillLedger(t, want, usageRows[1:2])
	code, out, errOut := run(t, "--config", cfg, "usage")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "(ledger "+want+")")
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"7d", usageNow.Add(-7 * 24 * time.Hour)},
		{" 24h ", usageNow.Add(-24 * time.Hour)},
		{"90m", usageNow.Add(-90 * time.Minute)},
		{"0d", usageNow},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, usageZone)},
		{"2026-11-01T09:00:00Z", time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)},
		{"2026-11-01T09:00:00+05:30", time.Date(2026, 11, 1, 3, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, usageNow, usageZone)
		require.NoError(t, err, tt.in)
		assert.True(t, tt.want.Equal(got), "%s: %v, want %v", tt.in, got, tt.want)
	}
	for _, bad := range []string{"", "week", "7", "-1h", "2026-13-01", "2026-11-01 09:00", "1y"} {
		_, err := parseSince(bad, usageNow, usageZone)
		assert.Error(t, err, "%q", bad)
	}
}

func TestTableCost(t *testing.T) {
	for v, want := range map[float64]string{
		0:           "0.0000",
		0.0123:      "0.0123",
		0.34253:     "0.3425",
		12.5:        "12.5000",
		0.00003:     "0.000030",
		0.0000042:   "0.0000042",
		0.1 + 0.2:   "0.3000",
		0.00005:     "0.0001",
		1e-10:       "0.0000",
		0.000049999: "0.000050",
	} {
		assert.Equal(t, want, tableCost(v), "%v", v)
	}
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		assert.Equal(t, want, grouped(n))
	}
}

func TestPrintable(t *testing.T) {
	assert.Equal(t, "evil?[31mred?]0;title?", printable("evil\x1b[31mred\x1b]0;title\x07"))
	assert.Equal(t, "caf\u00e9 \u6a21\u578b", printable("caf\u00e9 \u6a21\u578b"))
	assert.Equal(t, "a?b", printable("a\xffb"))
}
