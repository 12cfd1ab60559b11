package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoLedger is wrapped by OpenReader's error when there is no ledger file
// yet.
var ErrNoLedger = errors.New("no usage ledger")

// Totals sums the requests of a span or group. An unknown cost adds 0 to
// CostUSD and 1 to UnknownCost.
type Totals struct {
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	WebSearches      int64   `json:"web_searches"`
	Errors           int64   `json:"errors"`
	UnknownCost      int64   `json:"unknown_cost"`
}

func (t *Totals) add(o Totals) {
	t.Requests += o.Requests
	t.PromptTokens += o.PromptTokens
	t.CompletionTokens += o.CompletionTokens
	t.CachedTokens += o.CachedTokens
	t.CostUSD += o.CostUSD
	t.WebSearches += o.WebSearches
	t.Errors += o.Errors
	t.UnknownCost += o.UnknownCost
}

// aggregates is the select list that fills a Totals, each aggregate limited
// by filter when it is not empty.
func aggregates(filter string) string {
	where := func(cond string) string {
		switch {
		case filter != "" && cond != "":
			cond = filter + " AND " + cond
		case filter != "":
			cond = filter
		case cond == "":
			return ""
		}
		return " FILTER (WHERE " + cond + ")"
	}
	f := where("")
	return "count(*)" + f +
		", coalesce(sum(prompt_tokens)" + f + ", 0)" +
		", coalesce(sum(completion_tokens)" + f + ", 0)" +
		", coalesce(sum(cached_tokens)" + f + ", 0)" +
		", total(cost_usd)" + f +
		", coalesce(sum(web_searches)" + f + ", 0)" +
		", coalesce(sum(error)" + f + ", 0)" +
		", count(*)" + where("cost_usd IS NULL")
}

func (t *Totals) dest() []any {
	return []any{&t.Requests, &t.PromptTokens, &t.CompletionTokens, &t.CachedTokens,
		&t.CostUSD, &t.WebSearches, &t.Errors, &t.UnknownCost}
}

// Spend is what budgets need: the totals since the start of the local day
// and of the local month.
type Spend struct {
	Day   Totals
	Month Totals
}

func spendSince(ctx context.Context, db *sql.DB, dayStart, monthStart time.Time) (Spend, error) {
	day, month := strconv.FormatInt(dayStart.UnixMilli(), 10), strconv.FormatInt(monthStart.UnixMilli(), 10)
	var s Spend
	q := "SELECT " + aggregates("ts_ms >= "+day) + ", " + aggregates("ts_ms >= "+month) +
		" FROM requests WHERE ts_ms >= ?"
	err := db.QueryRowContext(ctx, q, min(dayStart.UnixMilli(), monthStart.UnixMilli())).
		Scan(append(s.Day.dest(), s.Month.dest()...)...)
	if err != nil {
		return Spend{}, fmt.Errorf("usage ledger: sum spend: %w", err)
	}
	return s, nil
}

// GroupBy is what a report's rows stand for.
type GroupBy string

// Groupings for Report.
const (
	ByDay      GroupBy = "day"
	ByModel    GroupBy = "model"
	ByClient   GroupBy = "client"
	ByEndpoint GroupBy = "endpoint"
)

// ParseGroupBy checks a --by value.
func ParseGroupBy(s string) (GroupBy, error) {
	switch g := GroupBy(strings.ToLower(s)); g {
	case ByDay, ByModel, ByClient, ByEndpoint:
		return g, nil
	}
	return "", fmt.Errorf("cannot group usage by %q: use day, model, client or endpoint", s)
}

// Query selects a report: the requests from Since (zero: the first) until
// Until (exclusive; zero: now), grouped By.
type Query struct {
	Since, Until time.Time
	By           GroupBy
	// Location is where days begin for ByDay; nil means time.Local.
	Location *time.Location
}

// Group is one line of a report.
type Group struct {
	// Name is the day (2006-01-02, local), the model served (or asked, when
	// none answered), the client family or the endpoint.
	Name string `json:"name"`
	Totals
}

// Report is the answer to a Query, shaped for `orproxy usage --json`.
type Report struct {
	By     GroupBy   `json:"by"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Groups []Group   `json:"groups"`
	Total  Totals    `json:"total"`
}

// unnamed stands for an empty group name, e.g. a request with no model.
const unnamed = "(none)"

func report(ctx context.Context, db *sql.DB, q Query, now time.Time) (Report, error) {
	span := span{lo: q.Since.UnixMilli(), hi: q.Until.UnixMilli()}
	until := q.Until
	if until.IsZero() {
		// No upper bound in the query: a row of this very millisecond, or
		// one stamped by a clock running ahead, still counts.
		until = now
		span.hi = math.MaxInt64
	}
	if q.Since.IsZero() {
		span.lo = math.MinInt64
	}
	if q.Location == nil {
		q.Location = time.Local
	}
	by, err := ParseGroupBy(string(q.By))
	if err != nil {
		return Report{}, err
	}
	q.By = by
	rep := Report{By: q.By, Since: q.Since, Until: until, Groups: []Group{}}
	if db == nil { // a ledger with no table yet
		return rep, nil
	}
	var groups []Group
	switch q.By {
	case ByDay:
		groups, err = reportByDay(ctx, db, q, span)
	case ByModel:
		groups, err = reportByColumn(ctx, db, q.By, span, "CASE WHEN model_served <> '' THEN model_served ELSE model END")
	case ByClient:
		groups, err = reportByColumn(ctx, db, q.By, span, "client")
	case ByEndpoint:
		groups, err = reportByColumn(ctx, db, q.By, span, "endpoint")
	}
	if err != nil {
		return Report{}, err
	}
	if groups != nil {
		rep.Groups = groups
	}
	for _, g := range rep.Groups {
		rep.Total.add(g.Totals)
	}
	return rep, nil
}

// span is a report's time range in unix milliseconds, hi exclusive.
type span struct{ lo, hi int64 }

func reportByColumn(ctx context.Context, db *sql.DB, by GroupBy, span span, expr string) ([]Group, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+expr+" AS name, "+aggregates("")+
		" FROM requests WHERE ts_ms >= ? AND ts_ms < ? GROUP BY name", span.lo, span.hi)
	if err != nil {
		return nil, fmt.Errorf("usage ledger: report by %s: %w", by, err)
	}
	groups, err := scanGroups(rows)
	if err != nil {
		return nil, fmt.Errorf("usage ledger: report by %s: %w", by, err)
	}
	// Most expensive first: that is what a user looks for.
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.CostUSD, a.CostUSD), cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Name, b.Name))
	})
	return groups, nil
}

// reportByDay groups by local calendar day. The day boundaries come from Go
// (the report's location, with its daylight saving changes) as a VALUES
// table that SQLite joins through the time index, one range per day.
func reportByDay(ctx context.Context, db *sql.DB, q Query, span span) ([]Group, error) {
	var first, last sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT min(ts_ms), max(ts_ms) FROM requests WHERE ts_ms >= ? AND ts_ms < ?",
		span.lo, span.hi).Scan(&first, &last)
	if err != nil {
		return nil, fmt.Errorf("usage ledger: report by day: %w", err)
	}
	if !first.Valid {
		return nil, nil
	}
	// Only days that hold rows matter; starting from the first row keeps
	// an open-ended --since from listing decades.
	end := time.UnixMilli(last.Int64).In(q.Location)
	var b strings.Builder
	b.WriteString("WITH days(name, lo, hi) AS (VALUES ")
	y, m, d := time.UnixMilli(first.Int64).In(q.Location).Date()
	for i := 0; ; i++ {
		start := time.Date(y, m, d+i, 0, 0, 0, 0, q.Location)
		if start.After(end) {
			break
		}
		next := time.Date(y, m, d+i+1, 0, 0, 0, 0, q.Location)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "('%s', %d, %d)", start.Format(time.DateOnly), start.UnixMilli(), next.UnixMilli())
	}
	b.WriteString(") SELECT days.name, " + aggregates("") +
		" FROM days JOIN requests ON ts_ms >= max(days.lo, ?1) AND ts_ms < min(days.hi, ?2)" +
		" GROUP BY days.name ORDER BY days.lo")
	rows, err := db.QueryContext(ctx, b.String(), span.lo, span.hi)
	if err != nil {
		return nil, fmt.Errorf("usage ledger: report by day: %w", err)
	}
	groups, err := scanGroups(rows)
	if err != nil {
		return nil, fmt.Errorf("usage ledger: report by day: %w", err)
	}
	return groups, nil
}

func scanGroups(rows *sql.Rows) ([]Group, error) {
	defer rows.Close() //nolint:errcheck // rows.Err reports
	var groups []Group
	for rows.Next() {
		var g Group
		var name sql.NullString
		if err := rows.Scan(append([]any{&name}, g.dest()...)...); err != nil {
			return nil, err
		}
		g.Name = cmp.Or(name.String, unnamed)
		groups = append(groups, g)
	}
	return groups, rows.Err()
}

// Report sums the ledger's rows as q asks.
func (w *Writer) Report(ctx context.Context, q Query) (Report, error) {
	db, err := w.readDB()
	if err != nil {
		return Report{}, err
	}
	return report(ctx, db, q, w.opts.Now())
}

// SpendSince sums the spend since the start of the day and of the month,
// for budgets to load at start and to reconcile with. Rows still queued are
// not in it: Flush first.
func (w *Writer) SpendSince(ctx context.Context, dayStart, monthStart time.Time) (Spend, error) {
	db, err := w.readDB()
	if err != nil {
		return Spend{}, err
	}
	return spendSince(ctx, db, dayStart, monthStart)
}

func (w *Writer) readDB() (*sql.DB, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.db == nil {
		if w.closed.Load() {
			return nil, fmt.Errorf("usage ledger %s is closed", w.path)
		}
		if w.lastErr == nil { // between closing a replaced file and opening the new one
			return nil, fmt.Errorf("usage ledger %s is being opened again; try again", w.path)
		}
		return nil, fmt.Errorf("usage ledger cannot be read now: %w", w.lastErr)
	}
	return w.db, nil
}

// Reader reads a ledger without writing to it, while the daemon may be
// writing (WAL makes that safe): `orproxy usage` and `orproxy status` need
// no running daemon.
type Reader struct {
	path  string
	db    *sql.DB
	empty bool // a file with no schema yet: every report is empty
	now   func() time.Time
}

// OpenReader opens the ledger at path read-only. A missing file gives an
// error wrapping ErrNoLedger; a file that is not a ledger, one wrapping
// ErrNotLedger.
func OpenReader(path string) (*Reader, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s yet: orproxy records one while `orproxy serve` runs with usage.enabled (the default) and a request has gone through; or set usage.file", ErrNoLedger, path)
	}
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	uri, err := fileURI(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", readDSN(uri, DefaultBusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("usage ledger %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	r := &Reader{path: path, db: db, now: time.Now}
	if err := r.check(); err != nil {
		db.Close() //nolint:errcheck // already failing
		return nil, err
	}
	return r, nil
}

// check refuses a database this build cannot read.
func (r *Reader) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultBusyTimeout+5*time.Second)
	defer cancel()
	var version, appID, objects int
	err := r.db.QueryRowContext(ctx, "SELECT (SELECT user_version FROM pragma_user_version), "+
		"(SELECT application_id FROM pragma_application_id), (SELECT count(*) FROM sqlite_schema)").
		Scan(&version, &appID, &objects)
	if err != nil {
		return explain(r.path, "open read-only", err)
	}
	switch {
	case version == 0 && appID == 0 && objects == 0:
		r.empty = true // created, never migrated
	case appID != applicationID:
		return otherProgram(r.path)
	case version > len(migrations):
		return fmt.Errorf("usage ledger %s was written by a newer orproxy (schema version %d, this one reads up to %d): use that orproxy", r.path, version, len(migrations))
	}
	return nil
}

// Path is the database file.
func (r *Reader) Path() string { return r.path }

// Report sums the ledger's rows as q asks.
func (r *Reader) Report(ctx context.Context, q Query) (Report, error) {
	if r.empty {
		return report(ctx, nil, q, r.now())
	}
	return report(ctx, r.db, q, r.now())
}

// SpendSince sums the spend since the start of the day and of the month.
func (r *Reader) SpendSince(ctx context.Context, dayStart, monthStart time.Time) (Spend, error) {
	if r.empty {
		return Spend{}, nil
	}
	return spendSince(ctx, r.db, dayStart, monthStart)
}

// Close closes the database.
func (r *Reader) Close() error { return r.db.Close() }
