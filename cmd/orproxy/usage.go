package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/ledger"
)

// usageClock is the clock and time zone in which `orproxy usage` and
// `orproxy status` read dates and days; tests fix both.
var usageClock = func() (time.Time, *time.Location) { return time.Now(), time.Local }

// usageTimeout bounds the ledger's report: the daemon may hold a write lock
// briefly, never for long.
const usageTimeout = 30 * time.Second

func newUsageCmd(g *globalFlags, s streams) *cobra.Command {
	var since, by string
	var asJSON, asCSV bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show what requests through orproxy cost, from the usage ledger",
		Long: `Show what requests through orproxy cost: requests, tokens, cost, web
searches and errors per day, model, client or endpoint, and a total.

The figures come from the usage ledger (usage.file, by default usage.db in
the user data directory), which the daemon writes as requests go through.
No running daemon is needed, and reading never disturbs one that writes.
Costs are what OpenRouter reported for each answer; an answer that reported
none counts as $0 and is noted.

--since takes a duration back from now (7d, 24h), a local date (2026-11-01,
from its midnight) or a time (2026-11-01T09:00:00Z).`,
		Example: `  orproxy usage
  orproxy usage --since 30d --by model
  orproxy usage --since 2026-11-01 --by client --csv > november.csv`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return usageError{errors.New("--json and --csv print different formats: choose one")}
			}
			now, loc := usageClock()
			group, err := ledger.ParseGroupBy(by)
			if err != nil {
				return usageError{fmt.Errorf("--by: %w", err)}
			}
			from, err := parseSince(since, now, loc)
			if err != nil {
				return usageError{err}
			}
			cfg, err := loadConfig(g, cmd, nil)
			if err != nil {
				return err
			}
			rep, path, err := readUsage(cmd.Context(), cfg, ledger.Query{Since: from, By: group, Location: loc})
			if err != nil {
				return err
			}
			// The ledger counts rows up to the moment it is asked; the
			// report names the moment the command began, in its time zone.
			rep.Since, rep.Until = from.In(loc), now.In(loc)
			switch {
			case asJSON:
				return printUsageJSON(s.out, rep)
			case asCSV:
				return printUsageCSV(s.out, rep)
			}
			printUsageTable(s.out, rep, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "7d", "from when: a duration back from now (7d, 24h), a date (2026-11-01) or a time (RFC 3339)")
	cmd.Flags().StringVar(&by, "by", string(ledger.ByDay), "group by day, model, client or endpoint")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV with a header row (the groups, no total row)")
	return cmd
}

// parseSince reads --since: a duration back from now, a date (its local
// midnight) or an RFC 3339 time.
func parseSince(s string, now time.Time, loc *time.Location) (time.Time, error) {
	v := strings.TrimSpace(s)
	if d, err := config.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q is negative: give how far back to look, such as 7d", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is not a duration (7d, 24h), a date (2026-11-01) or a time (2026-11-01T09:00:00Z)", s)
}

// readUsage reads the report from the ledger, which it only reads.
func readUsage(ctx context.Context, cfg *config.Loaded, q ledger.Query) (ledger.Report, string, error) {
	path, err := ledger.PathFor(cfg.Usage.File)
	if err != nil {
		return ledger.Report{}, "", err
	}
	r, err := ledger.OpenReader(path)
	switch {
	case errors.Is(err, ledger.ErrNoLedger) && !cfg.Usage.Enabled:
		return ledger.Report{}, path, fmt.Errorf("no usage recorded: usage.enabled is off, so the daemon keeps no ledger (%s does not exist); turn it on in the config to record usage", path)
	case errors.Is(err, ledger.ErrNoLedger):
		return ledger.Report{}, path, fmt.Errorf("no usage recorded yet: the ledger %s does not exist; it is created when the daemon forwards its first request (usage.enabled)", path)
	case err != nil:
		// The ledger's errors name the file and say what to do.
		return ledger.Report{}, path, err
	}
	defer r.Close() //nolint:errcheck // read only
	ctx, cancel := context.WithTimeout(ctx, usageTimeout)
	defer cancel()
	rep, err := r.Report(ctx, q)
	if err != nil {
		return ledger.Report{}, path, err
	}
	return rep, path, nil
}

// usageTotals is a report line in --json: DESIGN's fields, and unknown_cost,
// the answers that reported no cost and so add $0 to cost_usd. A reader
// that does not know that field ignores it; one that does can tell $0 from
// "not reported".
type usageTotals struct {
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	WebSearches      int64   `json:"web_searches"`
	Errors           int64   `json:"errors"`
	UnknownCost      int64   `json:"unknown_cost"`
}

type usageGroup struct {
	Name string `json:"name"`
	usageTotals
}

// usageDoc is `orproxy usage --json`.
type usageDoc struct {
	By     string       `json:"by"`
	Since  string       `json:"since"`
	Until  string       `json:"until"`
	Groups []usageGroup `json:"groups"`
	Total  usageTotals  `json:"total"`
}

func totalsOf(t ledger.Totals) usageTotals {
	return usageTotals{
		Requests: t.Requests, PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens,
		CachedTokens: t.CachedTokens, CostUSD: roundCost(t.CostUSD), WebSearches: t.WebSearches,
		Errors: t.Errors, UnknownCost: t.UnknownCost,
	}
}

// roundCost drops the noise of summing binary fractions (0.30000000000000004)
// at a billionth of a dollar, far below any price OpenRouter reports.
func roundCost(v float64) float64 { return math.Round(v*1e9) / 1e9 }

func printUsageJSON(w io.Writer, rep ledger.Report) error {
	doc := usageDoc{
		By:     string(rep.By),
		Since:  rep.Since.Format(time.RFC3339),
		Until:  rep.Until.Format(time.RFC3339),
		Groups: make([]usageGroup, 0, len(rep.Groups)),
		Total:  totalsOf(rep.Total),
	}
	for _, g := range rep.Groups {
		doc.Groups = append(doc.Groups, usageGroup{Name: g.Name, usageTotals: totalsOf(g.Totals)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// printUsageCSV prints one row per group and no total row, so that a
// spreadsheet's sum of a column is the total.
func printUsageCSV(w io.Writer, rep ledger.Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{string(rep.By), "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "web_searches", "errors", "unknown_cost"})
	for _, g := range rep.Groups {
		t := g.Totals
		_ = cw.Write([]string{
			g.Name, itoa(t.Requests), itoa(t.PromptTokens), itoa(t.CompletionTokens), itoa(t.CachedTokens),
			strconv.FormatFloat(roundCost(t.CostUSD), 'f', -1, 64), itoa(t.WebSearches), itoa(t.Errors), itoa(t.UnknownCost),
		})
	}
	cw.Flush()
	return cw.Error()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func printUsageTable(w io.Writer, rep ledger.Report, path string) {
	const when = "2006-01-02 15:04 MST"
	span := fmt.Sprintf("from %s to %s", rep.Since.Format(when), rep.Until.Format(when))
	if len(rep.Groups) == 0 {
		fmt.Fprintf(w, "No requests recorded %s (ledger %s).\n", span, path)
		return
	}
	fmt.Fprintf(w, "Usage by %s %s (ledger %s)\n\n", rep.By, span, path)
	rows := [][]string{{strings.ToUpper(string(rep.By)), "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "CACHED TOKENS", "COST USD ", "WEB SEARCHES", "ERRORS"}}
	line := func(name string, t ledger.Totals) []string {
		cost := tableCost(t.CostUSD)
		if t.UnknownCost > 0 {
			cost += "*"
		} else {
			cost += " "
		}
		return []string{printable(name), grouped(t.Requests), grouped(t.PromptTokens), grouped(t.CompletionTokens),
			grouped(t.CachedTokens), cost, grouped(t.WebSearches), grouped(t.Errors)}
	}
	for _, g := range rep.Groups {
		rows = append(rows, line(g.Name, g.Totals))
	}
	rows = append(rows, line("TOTAL", rep.Total))
	writeColumns(w, rows)
	if n := rep.Total.UnknownCost; n > 0 {
		what := "answers"
		if n == 1 {
			what = "answer"
		}
		fmt.Fprintf(w, "\n* %d %s reported no cost; counted as $0.\n", n, what)
	}
}

// tableCost shows dollars to four decimals, and an amount that would show
// as 0.0000 with two significant digits, so that nothing paid looks free.
func tableCost(v float64) string {
	v = roundCost(v)
	if v == 0 || math.Abs(v) >= 0.00005 {
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	decimals := min(int(-math.Floor(math.Log10(math.Abs(v))))+1, 9)
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// grouped writes n with thousands separators: 1,234,567.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printable keeps a name (a model a client asked for, say) from moving
// the terminal's cursor or colours.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// writeColumns prints rows as columns two spaces apart: the first column
// left-aligned, the numbers right-aligned.
func writeColumns(w io.Writer, rows [][]string) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
