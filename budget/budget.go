// Package budget keeps what requests through orproxy cost in the current
// local day and month, and refuses requests to models once a budget
// (budget.daily_usd, budget.monthly_usd) is used up.
//
// The totals live in memory: they are loaded from the usage ledger at start,
// grow with each request's cost as its answer ends, and are reconciled with
// the ledger every few minutes. Reconciling keeps the larger of the two
// figures: the ledger can only be lower when it dropped rows (a full queue,
// a broken disk), and it is higher when another orproxy writes to the same
// file. So a ledger that stops working never switches a budget off; it only
// stops a second process's spending from counting.
//
// Asking whether a request may go (Admit) is one atomic load and a clock
// read: it runs for every request.
package budget

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/ledger"
)

// Ledger is where each request's row goes, and what the totals are loaded
// from and reconciled with; *ledger.Writer is one.
type Ledger interface {
	// Add queues a row without blocking.
	Add(row ledger.Row)
	// Flush writes the rows queued so far, so that SpendSince sees them.
	Flush(ctx context.Context) error
	// SpendSince sums the ledger's costs since the two instants.
	SpendSince(ctx context.Context, dayStart, monthStart time.Time) (ledger.Spend, error)
}

// DefaultReconcileEvery is Options.ReconcileEvery's default.
const DefaultReconcileEvery = 5 * time.Minute

// reconcileTimeout bounds one reconciliation (a flush and a sum).
const reconcileTimeout = 30 * time.Second

// Options configure a Tracker. Zero values take the defaults noted.
type Options struct {
	// DailyUSD and MonthlyUSD are the budgets of the local day and month;
	// 0 is none.
	DailyUSD   float64
	MonthlyUSD float64
	// WarnAt is the share of a budget at which one warning per period is
	// logged; 0 warns only when it is used up.
	WarnAt float64
	// Ledger gets every row Record sees, and is where the totals come from
	// at start and are reconciled with; nil (an untyped nil, not a nil
	// *ledger.Writer) counts this process's requests only.
	Ledger Ledger
	// ConfigFile is the config file a refusal tells the user to edit; empty
	// says "orproxy's config file".
	ConfigFile string
	// ReconcileEvery is how often Run reconciles with the ledger; default
	// DefaultReconcileEvery.
	ReconcileEvery time.Duration
	// Location is where days and months begin; nil means time.Local.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// totals is the spend of one period.
type totals struct {
	cost     float64 // USD of the requests whose cost is known
	unknown  int64   // requests whose answer said nothing of its cost
	searches int64   // web searches billed
}

func (t *totals) max(o totals) {
	t.cost = math.Max(t.cost, o.cost)
	t.unknown = max(t.unknown, o.unknown)
	t.searches = max(t.searches, o.searches)
}

func fromLedger(l ledger.Totals) totals {
	return totals{cost: l.CostUSD, unknown: l.UnknownCost, searches: l.WebSearches}
}

// period is one budget's running state: the day's or the month's.
type period struct {
	name    string  // "daily" or "monthly"
	setting string  // the config key of its limit
	limit   float64 // 0: no budget
	start   time.Time
	end     time.Time
	spent   totals
	warned  bool // the warn_at warning was logged this period
	usedUp  bool // the used-up warning was logged this period
}

// Tracker counts spend and admits requests. Its methods are safe for
// concurrent use.
type Tracker struct {
	opts Options
	log  *zap.Logger
	loc  *time.Location

	// blockedUntil is when the used-up budget that lasts longest resets,
	// in Unix nanoseconds; 0 while every budget has room.
	blockedUntil atomic.Int64

	mu    sync.Mutex
	day   period
	month period
}

// New returns a Tracker whose totals start at zero; Load fills them from
// the ledger.
func New(opts Options) *Tracker {
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = DefaultReconcileEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	t := &Tracker{opts: opts, log: opts.Logger, loc: loc,
		day:   period{name: "daily", setting: "budget.daily_usd", limit: opts.DailyUSD},
		month: period{name: "monthly", setting: "budget.monthly_usd", limit: opts.MonthlyUSD},
	}
	t.mu.Lock()
	t.rollLocked(opts.Now())
	t.mu.Unlock()
	return t
}

// bounds are the local day and month around now.
func (t *Tracker) bounds(now time.Time) (dayStart, dayEnd, monthStart, monthEnd time.Time) {
	n := now.In(t.loc)
	y, m, d := n.Date()
	// time.Date, not Add(24h): a day with a daylight-saving change is 23 or
	// 25 hours long.
	dayStart = time.Date(y, m, d, 0, 0, 0, 0, t.loc)
	dayEnd = time.Date(y, m, d+1, 0, 0, 0, 0, t.loc)
	monthStart = time.Date(y, m, 1, 0, 0, 0, 0, t.loc)
	monthEnd = time.Date(y, m+1, 1, 0, 0, 0, 0, t.loc)
	return dayStart, dayEnd, monthStart, monthEnd
}

// rollLocked starts a new day or month when now has left the current one
// (also backwards, when the clock was set back).
func (t *Tracker) rollLocked(now time.Time) {
	if !now.Before(t.day.start) && now.Before(t.day.end) && !now.Before(t.month.start) && now.Before(t.month.end) {
		return
	}
	ds, de, ms, me := t.bounds(now)
	if !ds.Equal(t.day.start) {
		t.day = period{name: t.day.name, setting: t.day.setting, limit: t.day.limit, start: ds, end: de}
	}
	if !ms.Equal(t.month.start) {
		t.month = period{name: t.month.name, setting: t.month.setting, limit: t.month.limit, start: ms, end: me}
	}
	t.updateBlockLocked()
}

// updateBlockLocked publishes, for Admit, until when requests are refused.
func (t *Tracker) updateBlockLocked() {
	var until int64
	for _, p := range []*period{&t.day, &t.month} {
		if p.exhausted() {
			until = max(until, p.end.UnixNano())
		}
	}
	t.blockedUntil.Store(until)
}

func (p *period) exhausted() bool { return p.limit > 0 && p.spent.cost >= p.limit }

// Record counts the row of a request that reached OpenRouter and hands it
// to the ledger. With Admit it makes a Tracker the proxy's Spending.
func (t *Tracker) Record(row ledger.Row) {
	t.Add(row.Time, row.CostUSD, row.CostKnown, row.WebSearches)
	if t.opts.Ledger != nil {
		t.opts.Ledger.Add(row)
	}
}

// Add counts one request that started at at: its cost when known (an
// unknown cost adds 0 and is counted apart) and its web searches. It runs
// as each answer ends, on the request's goroutine, and does not block on
// anything but a short lock.
func (t *Tracker) Add(at time.Time, cost float64, known bool, searches int64) {
	var warn []func()
	t.mu.Lock()
	t.rollLocked(t.opts.Now())
	for _, p := range []*period{&t.day, &t.month} {
		// A request that started before the period (a stream that ran
		// over midnight) belongs to the one before, as in the ledger.
		if at.Before(p.start) {
			continue
		}
		if known {
			p.spent.cost += cost
		} else {
			p.spent.unknown++
		}
		p.spent.searches += searches
		if w := t.warningLocked(p); w != nil {
			warn = append(warn, w)
		}
	}
	t.updateBlockLocked()
	t.mu.Unlock()
	for _, w := range warn {
		w()
	}
}

// warningLocked returns the warning p has earned and not yet logged this
// period, to log after the lock is released: one at warn_at, one when used
// up.
func (t *Tracker) warningLocked(p *period) func() {
	if p.limit <= 0 {
		return nil
	}
	spent, limit, resets := p.spent.cost, p.limit, p.end
	name, setting := p.name, p.setting
	switch {
	case p.exhausted() && !p.usedUp:
		p.usedUp, p.warned = true, true
		return func() {
			t.log.Warn("the "+name+" budget is used up; requests to models are refused until it resets",
				zap.String("spent", usd(spent)), zap.String("budget", usd(limit)),
				zap.Time("resets", resets), zap.String("setting", setting))
		}
	case t.opts.WarnAt > 0 && spent >= t.opts.WarnAt*limit && !p.warned:
		p.warned = true
		return func() {
			t.log.Warn(fmt.Sprintf("%.0f%% of the %s budget is spent", 100*spent/limit, name),
				zap.String("spent", usd(spent)), zap.String("budget", usd(limit)),
				zap.Time("resets", resets), zap.String("setting", setting))
		}
	}
	return nil
}

// Admit says whether a new request to a model may go: "" when it may,
// else the message of the 402 that refuses it. A request already running
// is never stopped; only new ones are asked about.
func (t *Tracker) Admit() string {
	until := t.blockedUntil.Load()
	if until == 0 {
		return ""
	}
	now := t.opts.Now()
	if now.UnixNano() >= until {
		return "" // a new period began; the next Add rolls over
	}
	return t.refusal(now)
}

// refusal says which budget is used up, what was spent, when it resets and
// how to raise it. When both are, it names the one that lasts longer.
func (t *Tracker) refusal(now time.Time) string {
	t.mu.Lock()
	t.rollLocked(now)
	var p *period
	for _, q := range []*period{&t.day, &t.month} {
		if q.exhausted() && (p == nil || q.end.After(p.end)) {
			p = q
		}
	}
	if p == nil {
		t.mu.Unlock()
		return ""
	}
	name, setting, spent, limit, end := p.name, p.setting, p.spent.cost, p.limit, p.end
	t.mu.Unlock()
	span, resets := "today", "at midnight ("+end.Format("Mon 2 Jan 15:04 MST")+")"
	if name == "monthly" {
		span, resets = "this month", "on "+end.Format("Mon 2 Jan 15:04 MST")
	}
	file := "orproxy's config file (`orproxy config path`)"
	if t.opts.ConfigFile != "" {
		file = t.opts.ConfigFile
	}
	return fmt.Sprintf("orproxy's %s budget is used up: %s spent %s of %s. It resets %s, local time; "+
		"to spend more now, raise %s in %s and restart orproxy.",
		name, usd(spent), span, usd(limit), resets, setting, file)
}

// usd formats an amount of dollars to the cent, as a person reads it; an
// amount under a cent (a test budget, a cheap model) keeps its digits.
func usd(v float64) string {
	if v > 0 && v < 0.01 {
		return "$" + strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprintf("$%.2f", v)
}

// Load fills the totals from the ledger, at start. On an error the totals
// stay what they were (zero at start), and the error says why.
func (t *Tracker) Load(ctx context.Context) error {
	return t.Reconcile(ctx)
}

// Reconcile writes the ledger's queue and sums its rows of the current day
// and month, then keeps, for each figure, the larger of memory and ledger.
// Without a ledger it does nothing.
func (t *Tracker) Reconcile(ctx context.Context) error {
	if t.opts.Ledger == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	// A flush that failed dropped its rows; what is in the file still
	// counts, and memory covers the rest.
	flushErr := t.opts.Ledger.Flush(ctx)
	t.mu.Lock()
	t.rollLocked(t.opts.Now())
	dayStart, monthStart := t.day.start, t.month.start
	t.mu.Unlock()
	sp, err := t.opts.Ledger.SpendSince(ctx, dayStart, monthStart)
	if err != nil {
		return fmt.Errorf("budget: read the spend from the usage ledger: %w", err)
	}
	var warn []func()
	t.mu.Lock()
	// A period that rolled over meanwhile is not given the last one's sums.
	if t.day.start.Equal(dayStart) {
		t.day.spent.max(fromLedger(sp.Day))
	}
	if t.month.start.Equal(monthStart) {
		t.month.spent.max(fromLedger(sp.Month))
	}
	for _, p := range []*period{&t.day, &t.month} {
		if w := t.warningLocked(p); w != nil {
			warn = append(warn, w)
		}
	}
	t.updateBlockLocked()
	t.mu.Unlock()
	for _, w := range warn {
		w()
	}
	if flushErr != nil {
		return fmt.Errorf("budget: the usage ledger could not write its queue before the spend was read (memory keeps counting): %w", flushErr)
	}
	return nil
}

// Run reconciles with the ledger every ReconcileEvery until ctx ends. A
// failure is logged at debug level: the ledger reports its own failures,
// and the totals in memory go on counting.
func (t *Tracker) Run(ctx context.Context) {
	if t.opts.Ledger == nil {
		return
	}
	tick := time.NewTicker(t.opts.ReconcileEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.Reconcile(ctx); err != nil && ctx.Err() == nil {
				t.log.Debug("budget: reconciling with the usage ledger failed; counting on from memory", zap.Error(err))
			}
		}
	}
}

// Spend is /status's spend section.
func (t *Tracker) Spend() *statusdoc.Spend {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rollLocked(t.opts.Now())
	return &statusdoc.Spend{
		TodayUSD:         t.day.spent.cost,
		MonthUSD:         t.month.spent.cost,
		WebSearchesToday: t.day.spent.searches,
		UnknownCostToday: t.day.spent.unknown,
	}
}

// Budget is /status's budget section: the limits and the used-up one.
func (t *Tracker) Budget() *statusdoc.Budget {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rollLocked(t.opts.Now())
	b := &statusdoc.Budget{DailyUSD: t.day.limit, MonthlyUSD: t.month.limit, WarnAt: t.opts.WarnAt}
	switch {
	case t.month.exhausted():
		b.Exhausted = t.month.name
	case t.day.exhausted():
		b.Exhausted = t.day.name
	}
	return b
}
