package budget

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin for the daylight-saving days

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/testkit"
	"github.com/orproxy/orproxy/ledger"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	return loc
}

type fixture struct {
	tr    *Tracker
	clock *testkit.Clock
	logs  *observer.ObservedLogs
}

func newFixture(t *testing.T, at time.Time, opts Options) *fixture {
	t.Helper()
	c := testkit.NewClock(at)
	core, logs := observer.New(zapcore.DebugLevel)
	opts.Now, opts.Logger = c.Now, zap.New(core)
	if opts.Location == nil {
		opts.Location = at.Location()
	}
	return &fixture{tr: New(opts), clock: c, logs: logs}
}

func (f *fixture) add(cost float64) { f.tr.Add(f.clock.Now(), cost, true, 0) }

func TestDailyBudgetRefusesOnceUsedUpAndNamesWhatToDo(t *testing.T) {
	loc := berlin(t)
	f := newFixture(t, time.Date(2026, 8, 5, 14, 0, 0, 0, loc), Options{DailyUSD: 5, WarnAt: 0.8, ConfigFile: "/home/u/.config/orproxy/config.yaml"})
	f.add(3)
	f.add(1.99)
	assert.Empty(t, f.tr.Admit(), "$4.99 of $5.00: room left")
	assert.Empty(t, f.tr.Budget().Exhausted)

	f.add(0.02)
	msg := f.tr.Admit()
	assert.Equal(t, "orproxy's daily budget is used up: $5.01 spent today of $5.00. It resets at midnight (Thu 6 Aug 00:00 CEST), local time; "+
		"to spend more now, raise budget.daily_usd in /home/u/.config/orproxy/config.yaml and restart orproxy.", msg)
	assert.Equal(t, "daily", f.tr.Budget().Exhausted)
	assert.Equal(t, &statusSpend{5.01, 5.01, 0, 0}, spendOf(f.tr))
}

func TestBudgetsResetAtLocalMidnightAndMonthStart(t *testing.T) {
	loc := berlin(t)
	f := newFixture(t, time.Date(2026, 8, 31, 23, 59, 0, 0, loc), Options{DailyUSD: 1, MonthlyUSD: 10})
	f.add(1)
	require.Contains(t, f.tr.Admit(), "daily budget is used up")

	// One second before local midnight: still today.
	f.clock.Set(time.Date(2026, 8, 31, 23, 59, 59, 0, loc))
	assert.NotEmpty(t, f.tr.Admit())
	// Local midnight is also a new month: both totals start again.
	f.clock.Set(time.Date(2026, 9, 1, 0, 0, 0, 0, loc))
	assert.Empty(t, f.tr.Admit())
	assert.Equal(t, &statusSpend{0, 0, 0, 0}, spendOf(f.tr))

	// The month goes on counting across days.
	f.add(0.5)
	f.clock.Set(time.Date(2026, 9, 2, 9, 0, 0, 0, loc))
	f.add(0.25)
	assert.Equal(t, &statusSpend{0.25, 0.75, 0, 0}, spendOf(f.tr))
}

// TestRefusalWithoutAConfigFileAndUnderACent: without the file's name the
// message says how to find it; amounts under a cent keep their digits.
func TestRefusalWithoutAConfigFileAndUnderACent(t *testing.T) {
	f := newFixture(t, time.Date(2026, 8, 5, 14, 0, 0, 0, time.UTC), Options{DailyUSD: 0.0001})
	f.add(0.00025)
	msg := f.tr.Admit()
	assert.Contains(t, msg, "$0.00025 spent today of $0.0001.")
	assert.Contains(t, msg, "raise budget.daily_usd in orproxy's config file (`orproxy config path`) and restart orproxy.")
}

func TestMonthlyBudgetOutlastsTheDay(t *testing.T) {
	loc := berlin(t)
	f := newFixture(t, time.Date(2026, 2, 27, 10, 0, 0, 0, loc), Options{DailyUSD: 3, MonthlyUSD: 3, ConfigFile: "c.yaml"})
	f.add(3)
	msg := f.tr.Admit()
	assert.Contains(t, msg, "orproxy's monthly budget is used up: $3.00 spent this month of $3.00. It resets on Sun 1 Mar 00:00 CET, local time")
	assert.Contains(t, msg, "raise budget.monthly_usd in c.yaml")
	assert.Equal(t, "monthly", f.tr.Budget().Exhausted)
	f.clock.Set(time.Date(2026, 2, 28, 10, 0, 0, 0, loc))
	assert.NotEmpty(t, f.tr.Admit(), "a new day does not reset the month")
	f.clock.Set(time.Date(2026, 3, 1, 0, 0, 0, 1, loc))
	assert.Empty(t, f.tr.Admit())
}

// TestDaylightSavingDays: the local day is 23 hours long in spring and 25 in
// autumn, and resets at local midnight all the same.
func TestDaylightSavingDays(t *testing.T) {
	loc := berlin(t)
	for _, tc := range []struct {
		name  string
		start time.Time
		hours time.Duration
	}{
		{"spring forward", time.Date(2026, 3, 29, 0, 30, 0, 0, loc), 23 * time.Hour},
		{"fall back", time.Date(2026, 10, 25, 0, 30, 0, 0, loc), 25 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.start, Options{DailyUSD: 1})
			f.add(2)
			midnight := tc.start.Add(-30 * time.Minute).Add(tc.hours)
			require.Equal(t, 0, midnight.In(loc).Hour(), "the next local midnight")
			f.clock.Set(midnight.Add(-time.Second))
			assert.NotEmpty(t, f.tr.Admit())
			f.clock.Set(midnight)
			assert.Empty(t, f.tr.Admit())
		})
	}
}

func TestUnknownCostAddsNothingAndIsCounted(t *testing.T) {
	f := newFixture(t, time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC), Options{DailyUSD: 1})
	f.tr.Add(f.clock.Now(), 0, false, 2)
	f.tr.Add(f.clock.Now(), 0.5, true, 1)
	assert.Equal(t, &statusSpend{0.5, 0.5, 3, 1}, spendOf(f.tr))
	assert.Empty(t, f.tr.Admit())
}

// TestStreamOverMidnightCountsForItsDay: a request is counted for the day
// it started, as the ledger counts it.
func TestStreamOverMidnightCountsForItsDay(t *testing.T) {
	loc := berlin(t)
	started := time.Date(2026, 6, 10, 23, 59, 0, 0, loc)
	f := newFixture(t, started, Options{DailyUSD: 1})
	f.clock.Set(time.Date(2026, 6, 11, 0, 1, 0, 0, loc))
	f.tr.Add(started, 5, true, 0)
	assert.Empty(t, f.tr.Admit(), "yesterday's stream does not use up today's budget")
	assert.Equal(t, &statusSpend{0, 5, 0, 0}, spendOf(f.tr))
}

func TestWarnsOncePerPeriodPerBudget(t *testing.T) {
	loc := berlin(t)
	f := newFixture(t, time.Date(2026, 8, 5, 9, 0, 0, 0, loc), Options{DailyUSD: 10, MonthlyUSD: 20, WarnAt: 0.5})
	warnings := func() []string {
		var out []string
		for _, e := range f.logs.FilterLevelExact(zapcore.WarnLevel).All() {
			out = append(out, e.Message)
		}
		return out
	}
	f.add(4)
	assert.Empty(t, warnings())
	f.add(1) // 50% of the daily budget
	f.add(1)
	f.add(1)
	assert.Equal(t, []string{"50% of the daily budget is spent"}, warnings())
	f.add(3) // daily used up; monthly at 50%
	f.add(1)
	assert.Equal(t, []string{"50% of the daily budget is spent",
		"the daily budget is used up; requests to models are refused until it resets",
		"50% of the monthly budget is spent"}, warnings())

	// A new day warns again for the day, not for the month.
	f.clock.Set(time.Date(2026, 8, 6, 9, 0, 0, 0, loc))
	f.add(6)
	assert.Len(t, warnings(), 4)
	assert.Equal(t, "60% of the daily budget is spent", warnings()[3])
}

func TestNoBudgetAdmitsEverythingWithoutAllocating(t *testing.T) {
	f := newFixture(t, time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC), Options{})
	f.add(1e6)
	assert.Empty(t, f.tr.Admit())
	assert.Equal(t, &statusBudget{0, 0, 0, ""}, budgetOf(f.tr))
	limited := newFixture(t, time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC), Options{DailyUSD: 10})
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = f.tr.Admit(); _ = limited.tr.Admit() }))
}

// fakeLedger answers SpendSince with fixed figures, or fails.
type fakeLedger struct {
	mu       sync.Mutex
	spend    ledger.Spend
	err      error
	flushErr error
	flushes  atomic.Int32
	asked    []time.Time
}

func (l *fakeLedger) Add(ledger.Row) {}

func (l *fakeLedger) Flush(context.Context) error {
	l.flushes.Add(1)
	return l.flushErr
}

func (l *fakeLedger) SpendSince(_ context.Context, day, month time.Time) (ledger.Spend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, day, month)
	return l.spend, l.err
}

func (l *fakeLedger) set(day, month float64) {
	l.mu.Lock()
	l.spend = ledger.Spend{Day: ledger.Totals{CostUSD: day, UnknownCost: 1}, Month: ledger.Totals{CostUSD: month, WebSearches: 7}}
	l.mu.Unlock()
}

func TestLoadAndReconcileKeepTheLarger(t *testing.T) {
	loc := berlin(t)
	led := &fakeLedger{}
	led.set(2, 8)
	f := newFixture(t, time.Date(2026, 8, 5, 9, 0, 0, 0, loc), Options{DailyUSD: 5, Ledger: led})
	require.NoError(t, f.tr.Load(context.Background()))
	assert.Equal(t, []time.Time{time.Date(2026, 8, 5, 0, 0, 0, 0, loc), time.Date(2026, 8, 1, 0, 0, 0, 0, loc)}, led.asked,
		"the local day and month")
	assert.Equal(t, &statusSpend{2, 8, 0, 1}, spendOf(f.tr))

	// Memory ran ahead (the ledger dropped rows): memory stays.
	f.add(2.5)
	require.NoError(t, f.tr.Reconcile(context.Background()))
	assert.Equal(t, &statusSpend{4.5, 10.5, 0, 1}, spendOf(f.tr))
	// The ledger ran ahead (another orproxy writes to it): the ledger wins,
	// and can use the budget up.
	led.set(6, 12)
	require.NoError(t, f.tr.Reconcile(context.Background()))
	assert.Equal(t, &statusSpend{6, 12, 0, 1}, spendOf(f.tr))
	assert.Contains(t, f.tr.Admit(), "daily budget is used up")
	assert.EqualValues(t, 3, led.flushes.Load(), "each reconciliation writes the queue first")
}

// TestBrokenLedgerNeverSwitchesABudgetOff: a ledger that cannot be read, or
// reads back nothing, leaves the totals in memory as they are.
func TestBrokenLedgerNeverSwitchesABudgetOff(t *testing.T) {
	led := &fakeLedger{}
	f := newFixture(t, time.Date(2026, 8, 5, 9, 0, 0, 0, time.UTC), Options{DailyUSD: 1, Ledger: led})
	f.add(1.5)
	require.NotEmpty(t, f.tr.Admit())
	require.NoError(t, f.tr.Reconcile(context.Background()), "an empty ledger")
	assert.NotEmpty(t, f.tr.Admit())

	led.err = errors.New("disk I/O error")
	err := f.tr.Reconcile(context.Background())
	require.ErrorContains(t, err, "read the spend from the usage ledger: disk I/O error")
	assert.NotEmpty(t, f.tr.Admit())

	led.err, led.flushErr = nil, errors.New("database is locked")
	require.ErrorContains(t, f.tr.Reconcile(context.Background()), "memory keeps counting")
	assert.NotEmpty(t, f.tr.Admit())
	assert.Equal(t, 1.5, spendOf(f.tr).today)
}

// TestLoadFromARealLedger: the totals at start are the ledger's rows of the
// local day and month.
func TestLoadFromARealLedger(t *testing.T) {
	loc := berlin(t)
	now := time.Date(2026, 8, 5, 9, 0, 0, 0, loc)
	w, err := ledger.Open(filepath.Join(t.TempDir(), "usage.db"), ledger.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, w.Close(context.Background())) }()
	for _, r := range []ledger.Row{
		{Time: now.Add(-time.Hour), CostUSD: 0.5, CostKnown: true, WebSearches: 2},
		{Time: now.Add(-time.Minute)}, // cost unknown
		{Time: time.Date(2026, 8, 4, 23, 59, 0, 0, loc), CostUSD: 1, CostKnown: true},  // yesterday
		{Time: time.Date(2026, 7, 31, 23, 59, 0, 0, loc), CostUSD: 4, CostKnown: true}, // last month
	} {
		w.Add(r)
	}
	f := newFixture(t, now, Options{MonthlyUSD: 1.5, Ledger: w})
	require.NoError(t, f.tr.Load(context.Background()), "Load flushes the queue first")
	assert.Equal(t, &statusSpend{0.5, 1.5, 2, 1}, spendOf(f.tr))
	assert.Contains(t, f.tr.Admit(), "monthly budget is used up: $1.50 spent this month of $1.50")
}

// TestRecordCountsAndWritesTheRow: the proxy's rows reach the ledger, and
// their cost the totals; a Tracker without a ledger counts all the same.
func TestRecordCountsAndWritesTheRow(t *testing.T) {
	now := time.Date(2026, 8, 5, 9, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "usage.db")
	w, err := ledger.Open(path, ledger.Options{})
	require.NoError(t, err)
	with := newFixture(t, now, Options{DailyUSD: 1, Ledger: w})
	without := newFixture(t, now, Options{DailyUSD: 1})
	for _, f := range []*fixture{with, without} {
		f.tr.Record(ledger.Row{Time: now, Endpoint: "chat", Status: 200, CostUSD: 0.75, CostKnown: true, WebSearches: 1})
		f.tr.Record(ledger.Row{Time: now, Endpoint: "chat", Status: 200})
		assert.Equal(t, &statusSpend{0.75, 0.75, 1, 1}, spendOf(f.tr))
	}
	require.NoError(t, w.Close(context.Background()))
	r, err := ledger.OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	sp, err := r.SpendSince(context.Background(), now.Add(-time.Hour), now.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(2), sp.Day.Requests)
	assert.Equal(t, 0.75, sp.Day.CostUSD)
}

func TestRunReconcilesUntilCancelled(t *testing.T) {
	led := &fakeLedger{}
	f := newFixture(t, time.Date(2026, 8, 5, 9, 0, 0, 0, time.UTC), Options{DailyUSD: 1, Ledger: led, ReconcileEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.tr.Run(ctx)
	}()
	led.set(3, 3)
	require.Eventually(t, func() bool { return f.tr.Admit() != "" }, 10*time.Second, time.Millisecond,
		"the ledger's spend arrives by reconciliation")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}

// statusSpend and statusBudget are the status sections in positional form,
// for short assertions.
type statusSpend struct {
	today, month      float64
	searches, unknown int64
}

func spendOf(tr *Tracker) *statusSpend {
	s := tr.Spend()
	return &statusSpend{round(s.TodayUSD), round(s.MonthUSD), s.WebSearchesToday, s.UnknownCostToday}
}

type statusBudget struct {
	daily, monthly, warnAt float64
	exhausted              string
}

func budgetOf(tr *Tracker) *statusBudget {
	b := tr.Budget()
	return &statusBudget{b.DailyUSD, b.MonthlyUSD, b.WarnAt, b.Exhausted}
}

func round(v float64) float64 { return float64(int64(v*1e6+0.5)) / 1e6 }
