package ledger

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
	_ "time/tzdata" // the day grouping test needs a zone with daylight saving

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newYork(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	return loc
}

// reportRows are five requests around the end of daylight saving time in
// New York (2026-11-01 02:00 EDT → 01:00 EST), which makes 1 November a
// 25-hour day.
func reportRows(t *testing.T) []Row {
	ny := newYork(t)
	at := func(d, h, m int) time.Time { return time.Date(2026, 10, d, h, m, 0, 0, ny) }
	return []Row{
		{Time: at(31, 23, 30), Endpoint: "chat", Model: "openrouter/auto", ModelServed: "anthropic/claude-sonnet-4",
			Client: "opencode", Status: 200, PromptTokens: 100, CompletionTokens: 10, CostUSD: 0.01, CostKnown: true, WebSearches: 1},
		{Time: at(32, 0, 10), Endpoint: "chat", Model: "openai/gpt-5", ModelServed: "openai/gpt-5",
			Client: "openai-sdk", Status: 200, PromptTokens: 200, CompletionTokens: 20, CachedTokens: 50, CostUSD: 0.02, CostKnown: true},
		// 23:50 EST: a fixed UTC-4 would put it on 2 November.
		{Time: at(32, 23, 50), Endpoint: "messages", Model: "anthropic/claude-sonnet-4", ModelServed: "anthropic/claude-sonnet-4",
			Client: "claude-code", Status: 200, PromptTokens: 300, CompletionTokens: 30, CachedTokens: 100},
		// Exactly midnight: the new day.
		{Time: at(33, 0, 0), Endpoint: "responses", Model: "openai/gpt-5", Client: "curl", Status: 429},
		// A stream cut after its usage came.
		{Time: at(34, 12, 0), Endpoint: "chat", Model: "openrouter/auto", ModelServed: "anthropic/claude-sonnet-4",
			Client: "opencode", Status: 200, Error: true, PromptTokens: 400, CompletionTokens: 40, CostUSD: 0.04, CostKnown: true, WebSearches: 3},
	}
}

// reportLedger is a closed ledger holding reportRows.
func reportLedger(t *testing.T) string {
	path := testPath(t)
	w, err := Open(path, Options{})
	require.NoError(t, err)
	for _, r := range reportRows(t) {
		w.Add(r)
	}
	require.NoError(t, w.Close(context.Background()))
	return path
}

func g(name string, req, prompt, completion, cached int64, cost float64, web, errs, unknown int64) Group {
	return Group{Name: name, Totals: Totals{Requests: req, PromptTokens: prompt, CompletionTokens: completion,
		CachedTokens: cached, CostUSD: cost, WebSearches: web, Errors: errs, UnknownCost: unknown}}
}

// rounded makes sums of float costs comparable with Equal.
func rounded(rep Report) Report {
	r := func(f float64) float64 { return math.Round(f*1e9) / 1e9 }
	for i := range rep.Groups {
		rep.Groups[i].CostUSD = r(rep.Groups[i].CostUSD)
	}
	rep.Total.CostUSD = r(rep.Total.CostUSD)
	return rep
}

func TestReportGroups(t *testing.T) {
	path := reportLedger(t)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	ny := newYork(t)
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	total := Totals{Requests: 5, PromptTokens: 1000, CompletionTokens: 100, CachedTokens: 150, CostUSD: 0.07, WebSearches: 4, Errors: 2, UnknownCost: 2}

	for _, tc := range []struct {
		by     GroupBy
		loc    *time.Location
		groups []Group
	}{
		{ByDay, ny, []Group{
			g("2026-10-31", 1, 100, 10, 0, 0.01, 1, 0, 0),
			g("2026-11-01", 2, 500, 50, 150, 0.02, 0, 0, 1),
			g("2026-11-02", 1, 0, 0, 0, 0, 0, 1, 1),
			g("2026-11-03", 1, 400, 40, 0, 0.04, 3, 1, 0),
		}},
		{ByDay, time.UTC, []Group{
			g("2026-11-01", 2, 300, 30, 50, 0.03, 1, 0, 0),
			g("2026-11-02", 2, 300, 30, 100, 0, 0, 1, 2),
			g("2026-11-03", 1, 400, 40, 0, 0.04, 3, 1, 0),
		}},
		// The model served, or the one asked when nothing was served;
		// the most expensive first.
		{ByModel, nil, []Group{
			g("anthropic/claude-sonnet-4", 3, 800, 80, 100, 0.05, 4, 1, 1),
			g("openai/gpt-5", 2, 200, 20, 50, 0.02, 0, 1, 1),
		}},
		// Equal cost: more requests first, then by name.
		{ByClient, nil, []Group{
			g("opencode", 2, 500, 50, 0, 0.05, 4, 1, 0),
			g("openai-sdk", 1, 200, 20, 50, 0.02, 0, 0, 0),
			g("claude-code", 1, 300, 30, 100, 0, 0, 0, 1),
			g("curl", 1, 0, 0, 0, 0, 0, 1, 1),
		}},
		{ByEndpoint, nil, []Group{
			g("chat", 3, 700, 70, 50, 0.07, 4, 1, 0),
			g("messages", 1, 300, 30, 100, 0, 0, 0, 1),
			g("responses", 1, 0, 0, 0, 0, 0, 1, 1),
		}},
	} {
		t.Run(string(tc.by)+" "+tc.loc.String(), func(t *testing.T) {
			rep, err := r.Report(context.Background(), Query{By: tc.by, Until: until, Location: tc.loc})
			require.NoError(t, err)
			assert.Equal(t, Report{By: tc.by, Until: until, Groups: tc.groups, Total: total}, rounded(rep))
		})
	}
}

func TestReportSinceUntil(t *testing.T) {
	path := reportLedger(t)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	ny := newYork(t)
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, ny)
	until := time.Date(2026, 11, 2, 0, 0, 0, 0, ny) // excludes the request at that very midnight

	rep, err := r.Report(context.Background(), Query{By: ByDay, Since: since, Until: until, Location: ny})
	require.NoError(t, err)
	assert.Equal(t, []Group{g("2026-11-01", 2, 500, 50, 150, 0.02, 0, 0, 1)}, rounded(rep).Groups)

	// A span inside one day clips that day's group.
	rep, err = r.Report(context.Background(), Query{By: ByDay, Since: since.Add(time.Hour), Until: until, Location: ny})
	require.NoError(t, err)
	assert.Equal(t, []Group{g("2026-11-01", 1, 300, 30, 100, 0, 0, 0, 1)}, rounded(rep).Groups)

	rep, err = r.Report(context.Background(), Query{By: ByModel, Since: since, Until: until})
	require.NoError(t, err)
	assert.Equal(t, []Group{
		g("openai/gpt-5", 1, 200, 20, 50, 0.02, 0, 0, 0),
		g("anthropic/claude-sonnet-4", 1, 300, 30, 100, 0, 0, 0, 1),
	}, rounded(rep).Groups)
}

func TestReportOfNothing(t *testing.T) {
	path := reportLedger(t)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	for _, by := range []GroupBy{ByDay, ByModel, ByClient, ByEndpoint} {
		rep, err := r.Report(context.Background(), Query{By: by, Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
			Until: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)})
		require.NoError(t, err)
		assert.Equal(t, []Group{}, rep.Groups, "an empty list, [] in JSON")
		assert.Equal(t, Totals{}, rep.Total)
	}
}

func TestReportJSONShape(t *testing.T) {
	path := reportLedger(t)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	since := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	rep, err := r.Report(context.Background(), Query{By: ByEndpoint, Since: since, Until: until})
	require.NoError(t, err)
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.JSONEq(t, `{"by":"endpoint","since":"2026-11-03T00:00:00Z","until":"2026-11-04T00:00:00Z",
		"groups":[{"name":"chat","requests":1,"prompt_tokens":400,"completion_tokens":40,"cached_tokens":0,
			"cost_usd":0.04,"web_searches":3,"errors":1,"unknown_cost":0}],
		"total":{"requests":1,"prompt_tokens":400,"completion_tokens":40,"cached_tokens":0,
			"cost_usd":0.04,"web_searches":3,"errors":1,"unknown_cost":0}}`, string(b))
}

func TestReportRefusesAnUnknownGrouping(t *testing.T) {
	path := reportLedger(t)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Report(context.Background(), Query{By: "provider"})
	assert.EqualError(t, err, `cannot group usage by "provider": use day, model, client or endpoint`)
	by, err := ParseGroupBy("Model")
	require.NoError(t, err)
	assert.Equal(t, ByModel, by)
	rep, err := r.Report(context.Background(), Query{By: "Model"})
	require.NoError(t, err)
	assert.Equal(t, ByModel, rep.By)
	assert.Len(t, rep.Groups, 2, "any case of a grouping works")
}

func TestSpendSince(t *testing.T) {
	ny := newYork(t)
	day := time.Date(2026, 11, 3, 0, 0, 0, 0, ny)
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, ny)
	want := Spend{
		Day:   Totals{Requests: 1, PromptTokens: 400, CompletionTokens: 40, CostUSD: 0.04, WebSearches: 3, Errors: 1},
		Month: Totals{Requests: 4, PromptTokens: 900, CompletionTokens: 90, CachedTokens: 150, CostUSD: 0.06, WebSearches: 3, Errors: 2, UnknownCost: 2},
	}
	round := func(s Spend) Spend {
		s.Day.CostUSD = math.Round(s.Day.CostUSD*1e9) / 1e9
		s.Month.CostUSD = math.Round(s.Month.CostUSD*1e9) / 1e9
		return s
	}

	// From the daemon's own writer, as budgets load at start…
	path := testPath(t)
	w := openTest(t, path, Options{})
	for _, r := range reportRows(t) {
		w.Add(r)
	}
	flush(t, w)
	s, err := w.SpendSince(context.Background(), day, month)
	require.NoError(t, err)
	assert.Equal(t, want, round(s))

	// …and from a reader, as `orproxy status` does without a daemon.
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	s, err = r.SpendSince(context.Background(), day, month)
	require.NoError(t, err)
	assert.Equal(t, want, round(s))
	rep, err := w.Report(context.Background(), Query{By: ByClient})
	require.NoError(t, err)
	assert.Equal(t, int64(5), rep.Total.Requests)
}

func TestOpenReaderWithNoLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	_, err := OpenReader(path)
	require.ErrorIs(t, err, ErrNoLedger)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, "orproxy serve")
	assert.NoFileExists(t, path, "reading creates nothing")
}

func TestReaderOfAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600)) // created, then killed before the schema
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	rep, err := r.Report(context.Background(), Query{By: ByDay})
	require.NoError(t, err)
	assert.Empty(t, rep.Groups)
	s, err := r.SpendSince(context.Background(), time.Now(), time.Now())
	require.NoError(t, err)
	assert.Equal(t, Spend{}, s)
}

func TestReaderReadsWhileTheDaemonWrites(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{})
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()

	// A reader in the middle of a query does not stop the writer.
	rows, err := r.db.Query("SELECT id FROM requests")
	require.NoError(t, err)
	require.True(t, rows.Next())
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	require.NoError(t, rows.Close())

	rep, err := r.Report(context.Background(), Query{By: ByClient})
	require.NoError(t, err)
	assert.Equal(t, int64(2), rep.Total.Requests)
	_, err = r.db.Exec("DELETE FROM requests")
	assert.ErrorContains(t, err, "readonly", "the reader cannot write")
	assert.Equal(t, 2, countRows(t, path))
}

func TestReaderChangesNothing(t *testing.T) {
	path := reportLedger(t)
	before := fileSum(t, path)
	r, err := OpenReader(path)
	require.NoError(t, err)
	for _, by := range []GroupBy{ByDay, ByModel} {
		_, err := r.Report(context.Background(), Query{By: by})
		require.NoError(t, err)
	}
	require.NoError(t, r.Close())
	assert.Equal(t, before, fileSum(t, path))
}

func TestDayReportUsesTheTimeIndex(t *testing.T) {
	path := reportLedger(t)
	db := rawDB(t, path)
	q := "WITH days(name, lo, hi) AS (VALUES ('a', 1, 2), ('b', 2, 3)) SELECT days.name, " + aggregates("") +
		" FROM days JOIN requests ON ts_ms >= max(days.lo, ?1) AND ts_ms < min(days.hi, ?2) GROUP BY days.name ORDER BY days.lo"
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, 0, 10)
	require.NoError(t, err)
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan += detail + "\n"
	}
	assert.Contains(t, plan, "USING INDEX requests_ts_ms (ts_ms>? AND ts_ms<?)", plan)
}
