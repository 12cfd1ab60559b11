// Command report turns the JSON lines of a benchmark run (bench/run.sh) into
// one markdown table: every figure is the median over the rounds, with its
// ratio to the direct run (client → stub) and to nginx, and orproxy's
// targets checked.
//
//	report -results results.jsonl [-gobench websearch-bench.txt]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/orproxy/orproxy/bench/internal/loadstat"
)

func main() {
	results := flag.String("results", "", "JSON lines from load, patchbench and node")
	gobench := flag.String("gobench", "", "output of go test -bench BenchmarkPatch -benchmem ./websearch/, if any")
	flag.Parse()
	if err := run(os.Stdout, *results, *gobench); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, resultsFile, gobenchFile string) error {
	f, err := os.Open(resultsFile)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := parseResults(f)
	if err != nil {
		return err
	}
	if gobenchFile != "" {
		b, err := os.ReadFile(gobenchFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		data.patch = append(data.patch, parseGoBench(string(b))...)
	}
	_, err = io.WriteString(w, render(data))
	return err
}

// line is any one result line; the fields used depend on kind.
type line struct {
	Kind     string         `json:"kind"`
	Tool     string         `json:"tool"`
	Target   string         `json:"target"`
	Round    int            `json:"round"`
	Conc     int            `json:"conc"`
	Errors   int            `json:"errors"`
	Failures map[string]int `json:"failures"`

	RPS   float64 `json:"rps"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	CPUus float64 `json:"cpu_us_per_req"`

	TTFEp50us float64 `json:"ttfe_p50_us"`
	EvP50us   float64 `json:"event_p50_us"`
	EvP90us   float64 `json:"event_p90_us"`
	EvP99us   float64 `json:"event_p99_us"`

	N          int   `json:"n"`
	Completed  int   `json:"completed"`
	RSSIdleKiB int64 `json:"rss_idle_kib"`
	RSSOpenKiB int64 `json:"rss_open_kib"`

	Impl        string  `json:"impl"`
	Size        string  `json:"size"`
	Bytes       int     `json:"bytes"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
}

type patchResult struct {
	impl, size string
	bytes      int
	nsPerOp    float64
	allocs     int64 // -1 when unknown
}

// results holds per target, per metric, one value per round.
type results struct {
	targets []string
	// values[target][metric][round]
	values map[string]map[string]map[int]float64
	// failures[target] counts failed requests and streams by message
	failures map[string]map[string]int
	streams  int
	patch    []patchResult
	// jsonTools are the load generators of the small-JSON rows.
	jsonTools []string
}

func (r *results) set(target, metric string, round int, v float64) {
	if !slices.Contains(r.targets, target) {
		r.targets = append(r.targets, target)
	}
	m := r.values[target]
	if m == nil {
		m = map[string]map[int]float64{}
		r.values[target] = m
	}
	if m[metric] == nil {
		m[metric] = map[int]float64{}
	}
	m[metric][round] = v
}

func parseResults(rd io.Reader) (*results, error) {
	r := &results{values: map[string]map[string]map[int]float64{}, failures: map[string]map[string]int{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || !strings.HasPrefix(text, "{") {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		for msg, c := range l.Failures {
			if r.failures[l.Target] == nil {
				r.failures[l.Target] = map[string]int{}
			}
			r.failures[l.Target][l.Kind+": "+msg] += c
		}
		switch l.Kind {
		case "json":
			tool := l.Tool
			if tool == "" {
				tool = "bench/cmd/load"
			}
			if !slices.Contains(r.jsonTools, tool) {
				r.jsonTools = append(r.jsonTools, tool)
			}
			p := fmt.Sprintf("json%d.", l.Conc)
			r.set(l.Target, p+"rps", l.Round, l.RPS)
			r.set(l.Target, p+"p50", l.Round, l.P50us)
			r.set(l.Target, p+"p99", l.Round, l.P99us)
			if l.CPUus > 0 {
				r.set(l.Target, p+"cpu", l.Round, l.CPUus)
			}
			if l.Errors > 0 {
				r.set(l.Target, p+"errors", l.Round, float64(l.Errors))
			}
		case "sse":
			r.set(l.Target, "sse.ttfe", l.Round, l.TTFEp50us)
			r.set(l.Target, "sse.ev50", l.Round, l.EvP50us)
			r.set(l.Target, "sse.ev90", l.Round, l.EvP90us)
			r.set(l.Target, "sse.ev99", l.Round, l.EvP99us)
		case "hold":
			r.streams = l.N
			r.set(l.Target, "hold.completed", l.Round, float64(l.Completed))
			if l.RSSOpenKiB > 0 {
				r.set(l.Target, "hold.rss", l.Round, float64(l.RSSOpenKiB))
				if l.N > 0 {
					r.set(l.Target, "hold.perstream", l.Round, float64(l.RSSOpenKiB-l.RSSIdleKiB)/float64(l.N))
				}
			}
		case "patch":
			allocs := l.AllocsPerOp
			if l.Impl == "node" {
				allocs = -1
			}
			r.patch = append(r.patch, patchResult{impl: l.Impl, size: l.Size, bytes: l.Bytes, nsPerOp: l.NsPerOp, allocs: allocs})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// The added latencies: target − direct within each round, so drift
	// between rounds cancels.
	for _, t := range r.targets {
		if t == "direct" {
			continue
		}
		for _, m := range []string{"sse.ttfe", "sse.ev50", "sse.ev90", "sse.ev99"} {
			for round, v := range r.values[t][m] {
				if d, ok := r.values["direct"][m][round]; ok {
					r.set(t, m+".added", round, v-d)
				}
			}
		}
	}
	return r, nil
}

var goBenchLine = regexp.MustCompile(`^BenchmarkPatch/(\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op.*?(?:\s(\d+) allocs/op)?\s*$`)

// parseGoBench reads BenchmarkPatch/SIZE lines of go test -bench output.
func parseGoBench(out string) []patchResult {
	var res []patchResult
	for _, l := range strings.Split(out, "\n") {
		m := goBenchLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		allocs := int64(-1)
		if m[4] != "" {
			allocs, _ = strconv.ParseInt(m[4], 10, 64)
		}
		res = append(res, patchResult{impl: "websearch-pkg", size: m[1], nsPerOp: ns, allocs: allocs})
	}
	return res
}

// median of a metric over the rounds; NaN when missing.
func (r *results) median(target, metric string) float64 {
	var xs []float64
	for _, v := range r.values[target][metric] {
		xs = append(xs, v)
	}
	return loadstat.Median(xs)
}

func (r *results) rounds() int {
	n := 0
	for _, t := range r.targets {
		for _, byRound := range r.values[t] {
			n = max(n, len(byRound))
		}
	}
	return n
}

// orderedTargets puts the four standard targets first.
func (r *results) orderedTargets() []string {
	out := []string{}
	for _, t := range []string{"direct", "orproxy", ledgerOff, "nginx", "floor", "naive"} {
		if slices.Contains(r.targets, t) {
			out = append(out, t)
		}
	}
	for _, t := range r.targets {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

type unit int

const (
	uRate unit = iota
	uMicros
	uKiB
	uCount
)

func format(v float64, u unit) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch u {
	case uRate:
		if v >= 1000 {
			return fmt.Sprintf("%.2fk/s", v/1000)
		}
		return fmt.Sprintf("%.0f/s", v)
	case uMicros:
		if math.Abs(v) >= 1000 {
			return fmt.Sprintf("%.2f ms", v/1000)
		}
		if math.Abs(v) >= 100 {
			return fmt.Sprintf("%.0f µs", v)
		}
		return fmt.Sprintf("%.1f µs", v)
	case uKiB:
		if v >= 1024 {
			return fmt.Sprintf("%.1f MiB", v/1024)
		}
		return fmt.Sprintf("%.1f KiB", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// ratio is a/b; a ratio to zero or a negative figure (an added latency
// within the noise) means nothing and shows as "—".
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 || a < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// metric is one row measured on every target.
type metric struct {
	key, name string
	u         unit
	// noDirect: the direct run has no such figure (no proxy process, or
	// nothing added).
	noDirect bool
	// vsNginx is the metric's target as a ratio to nginx; check is any
	// other target.
	vsNginx *ratioTarget
	check   func(r *results) (target string, met string)
}

func render(r *results) string {
	var b strings.Builder
	targets := r.orderedTargets()
	b.WriteString("| measure |")
	for _, t := range targets {
		b.WriteString(" " + t + " |")
	}
	b.WriteString(" orproxy target | met |\n|---|")
	for range targets {
		b.WriteString("---|")
	}
	b.WriteString("---|---|\n")

	streams := r.streams
	for _, m := range metrics(streams) {
		fmt.Fprintf(&b, "| %s |", m.name)
		for _, t := range targets {
			v := r.median(t, m.key)
			cell := format(v, m.u)
			if !math.IsNaN(v) && t != "direct" {
				var rs []string
				if !m.noDirect {
					rs = append(rs, ratio(v, r.median("direct", m.key))+"×D")
				}
				if t != "nginx" {
					rs = append(rs, ratio(v, r.median("nginx", m.key))+"×N")
				}
				if len(rs) > 0 {
					cell += " (" + strings.Join(rs, ", ") + ")"
				}
			} else if !math.IsNaN(v) && t == "direct" {
				cell += " (" + ratio(v, r.median("nginx", m.key)) + "×N)"
			}
			b.WriteString(" " + cell + " |")
		}
		target, met := "", ""
		switch {
		case m.vsNginx != nil:
			target, met = m.vsNginx.check(r, "orproxy", "nginx", m.key)
		case m.check != nil:
			target, met = m.check(r)
		}
		fmt.Fprintf(&b, " %s | %s |\n", target, met)
	}
	for _, size := range patchSizes(r.patch) {
		b.WriteString(r.patchRow(targets, size))
	}
	fmt.Fprintf(&b, "\nMedians over %d round(s). (a×D, b×N): ratio to the direct run and to nginx. \"added\" rows are the target's figure minus direct's in the same round.\n", r.rounds())
	if len(r.jsonTools) > 0 {
		fmt.Fprintf(&b, "Small-JSON rows measured with %s; SSE and open-stream rows with bench/cmd/load.\n", strings.Join(r.jsonTools, " and "))
	}
	b.WriteString(r.deployedTable())
	if fails := r.failureLines(targets); len(fails) > 0 {
		b.WriteString("\nFailures (all rounds):\n")
		for _, f := range fails {
			b.WriteString("- " + f + "\n")
		}
	}
	return b.String()
}

// patchRow is the body patch row of one body size. orproxy's figure is the
// websearch package's own benchmark when there is one; the speed-ups compare
// implementations timed on the same bytes (patchbench and Node).
func (r *results) patchRow(targets []string, size string) string {
	pkg, pkgOK := findPatch(r.patch, "websearch-pkg", size)
	ws, wsOK := findPatch(r.patch, "websearch", size)
	ej, ejOK := findPatch(r.patch, "encoding/json", size)
	nd, ndOK := findPatch(r.patch, "node", size)
	own, ownOK := pkg, pkgOK
	if !ownOK {
		own, ownOK = ws, wsOK
	}
	cells := make([]string, len(targets))
	for i := range cells {
		cells[i] = "—"
	}
	if i := slices.Index(targets, "orproxy"); i >= 0 {
		switch {
		case pkgOK:
			cells[i] = fmt.Sprintf("%s, %d allocs (package benchmark)", format(pkg.nsPerOp/1000, uMicros), pkg.allocs)
		case wsOK:
			cells[i] = fmt.Sprintf("%s, %d allocs", format(ws.nsPerOp/1000, uMicros), ws.allocs)
		default:
			cells[i] = "not available yet (websearch is not on main)"
		}
	}
	var cmp []string
	if wsOK {
		cmp = append(cmp, fmt.Sprintf("websearch %s, %d allocs", format(ws.nsPerOp/1000, uMicros), ws.allocs))
	}
	slower := func(name string, p patchResult) string {
		s := name + " " + format(p.nsPerOp/1000, uMicros)
		if wsOK {
			s += fmt.Sprintf(" (%.1f× slower)", p.nsPerOp/ws.nsPerOp)
		}
		return s
	}
	if ejOK {
		cmp = append(cmp, slower("encoding/json", ej))
	}
	if ndOK {
		cmp = append(cmp, slower("Node parse+stringify", nd))
	}
	name := "body patch, " + size + " chat body"
	if ej.bytes > 0 {
		name += fmt.Sprintf(" (%d B)", ej.bytes)
	}
	var row strings.Builder
	fmt.Fprintf(&row, "| %s | %s |", name, strings.Join(cells, " | "))
	text := ""
	if len(cmp) > 0 {
		text = "same body: " + strings.Join(cmp, "; ")
	}
	met := ""
	if size == "1MiB" {
		if text != "" {
			text += "; "
		}
		text += "target: ≥10× faster than encoding/json, ≥2× than Node, < 1.5 ms, ≤ 6 allocs"
		met = "n/a"
		if ownOK && wsOK && ejOK && ndOK {
			met = mark(ej.nsPerOp/ws.nsPerOp >= 10 && nd.nsPerOp/ws.nsPerOp >= 2 && own.nsPerOp < 1.5e6 && own.allocs >= 0 && own.allocs <= 6)
		}
	}
	fmt.Fprintf(&row, " %s | %s |\n", text, met)
	return row.String()
}

func (r *results) failureLines(targets []string) []string {
	var out []string
	for _, t := range targets {
		var msgs []string
		for m := range r.failures[t] {
			msgs = append(msgs, m)
		}
		slices.Sort(msgs)
		for _, m := range msgs {
			out = append(out, fmt.Sprintf("%s: %d × %s", t, r.failures[t][m], m))
		}
	}
	return out
}

func patchSizes(ps []patchResult) []string {
	var sizes []string
	for _, p := range ps {
		if !slices.Contains(sizes, p.size) {
			sizes = append(sizes, p.size)
		}
	}
	return sizes
}

// findPatch returns the median of the measurements of impl on size (one per
// round); allocations are the same in every round.
func findPatch(ps []patchResult, impl, size string) (patchResult, bool) {
	var found []patchResult
	var ns []float64
	for _, p := range ps {
		if p.impl == impl && p.size == size {
			found = append(found, p)
			ns = append(ns, p.nsPerOp)
		}
	}
	if len(found) == 0 {
		return patchResult{}, false
	}
	res := found[0]
	res.nsPerOp = loadstat.Median(ns)
	return res, true
}

func mark(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// ratioTarget is a target set as a ratio to nginx's figure. It is checked
// on orproxy against nginx, and on the pair that reaches the upstream over
// HTTPS (deployedTable).
type ratioTarget struct {
	limit  float64
	atMost bool
}

// check compares subject's median of key with limit × base's.
func (t ratioTarget) check(r *results, subject, base, key string) (target, met string) {
	o, n := r.median(subject, key), r.median(base, key)
	op := "≥"
	if t.atMost {
		op = "≤"
	}
	target = fmt.Sprintf("%s %.1f× %s", op, t.limit, base)
	if math.IsNaN(o) || math.IsNaN(n) {
		return target, "n/a"
	}
	if t.atMost {
		// An added latency can be zero or below for nginx; compare
		// the figures, not a ratio, then.
		return target, mark(o <= t.limit*n || o <= 0)
	}
	return target, mark(o >= t.limit*n)
}

// ledgerOff is the target that runs orproxy with usage.enabled: false.
const ledgerOff = "orproxy_noledger"

// ledgerCost checks that the ledger (on in "orproxy") costs at most limit ×
// the same figure with it off. withinRounds also accepts a median no higher
// than the highest round with it off: per-event latencies of a hundred
// microseconds or so move by tens of them between rounds of the same binary,
// and a cost that stays inside that spread is not one the run can show.
func ledgerCost(key string, limit float64, withinRounds bool) func(r *results) (string, string) {
	return func(r *results) (string, string) {
		on, off := r.median("orproxy", key), r.median(ledgerOff, key)
		target := fmt.Sprintf("ledger on ≤ %.2f× off", limit)
		if withinRounds {
			target += " or within off's rounds"
		}
		if math.IsNaN(on) || math.IsNaN(off) {
			return target, "n/a"
		}
		ok := on <= limit*off
		if withinRounds {
			for _, v := range r.values[ledgerOff][key] {
				ok = ok || on <= v
			}
		}
		return target + fmt.Sprintf(" (%s×)", ratio(on, off)), mark(ok)
	}
}

func metrics(streams int) []metric {
	return []metric{
		{key: "json1.rps", name: "small JSON, c=1: throughput", u: uRate},
		{key: "json1.p50", name: "small JSON, c=1: p50 latency", u: uMicros},
		{key: "json1.p99", name: "small JSON, c=1: p99 latency", u: uMicros},
		{key: "json1.cpu", name: "small JSON, c=1: proxy CPU per request", u: uMicros, noDirect: true},
		{key: "json64.rps", name: "small JSON, c=64: throughput", u: uRate, vsNginx: &ratioTarget{0.4, false}},
		{key: "json64.p50", name: "small JSON, c=64: p50 latency", u: uMicros},
		{key: "json64.p99", name: "small JSON, c=64: p99 latency", u: uMicros},
		{key: "json64.cpu", name: "small JSON, c=64: proxy CPU per request", u: uMicros, noDirect: true, vsNginx: &ratioTarget{4, true}},
		{key: "json64.cpu", name: "small JSON, c=64: proxy CPU per request, ledger on vs off", u: uMicros, noDirect: true, check: ledgerCost("json64.cpu", 1.10, false)},
		{key: "sse.ttfe", name: "SSE: time to first event, p50", u: uMicros},
		{key: "sse.ttfe.added", name: "SSE: time to first event added vs direct", u: uMicros, noDirect: true, vsNginx: &ratioTarget{2, true}},
		{key: "sse.ev50", name: "SSE: per-event latency p50", u: uMicros},
		{key: "sse.ev90", name: "SSE: per-event latency p90", u: uMicros},
		{key: "sse.ev99", name: "SSE: per-event latency p99", u: uMicros},
		{key: "sse.ev50.added", name: "SSE: per-event latency added, p50", u: uMicros, noDirect: true, check: ledgerCost("sse.ev50.added", 1.15, true)},
		{key: "sse.ev90.added", name: "SSE: per-event latency added, p90", u: uMicros, noDirect: true, check: ledgerCost("sse.ev90.added", 1.15, true)},
		{key: "sse.ev99.added", name: "SSE: per-event latency added, p99", u: uMicros, noDirect: true},
		{key: "hold.completed", name: fmt.Sprintf("%d open SSE streams: completed", streams), u: uCount, check: func(r *results) (string, string) {
			v := r.median("orproxy", "hold.completed")
			if math.IsNaN(v) {
				return fmt.Sprintf("all %d", streams), "n/a"
			}
			// Every round, not only the median.
			all := true
			for _, c := range r.values["orproxy"]["hold.completed"] {
				all = all && int(c) == streams
			}
			return fmt.Sprintf("all %d, every round", streams), mark(all)
		}},
		{key: "hold.rss", name: fmt.Sprintf("%d open SSE streams: proxy RSS", streams), u: uKiB, noDirect: true, vsNginx: &ratioTarget{1.5, true}},
		{key: "hold.perstream", name: "… RSS per stream (open − idle) / streams", u: uKiB, noDirect: true},
	}
}

// The pair that reaches the upstream as orproxy reaches OpenRouter: over
// HTTPS, orproxy with HTTP/2 (its transport's choice) and nginx with
// HTTP/1.1 (the only protocol its proxy module speaks upstream).
const (
	deployedOrproxy = "orproxy_h2"
	deployedNginx   = "nginx_tls"
)

// deployedTable checks the targets on that pair, beside the main table's
// plain-HTTP upstream, when the run had both.
func (r *results) deployedTable() string {
	if !slices.Contains(r.targets, deployedOrproxy) || !slices.Contains(r.targets, deployedNginx) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nAs deployed, upstream over HTTPS (%s: HTTP/2; %s: HTTP/1.1 with keepalive):\n\n", deployedOrproxy, deployedNginx)
	fmt.Fprintf(&b, "| measure | %s | %s | target | met |\n|---|---|---|---|---|\n", deployedOrproxy, deployedNginx)
	for _, m := range metrics(r.streams) {
		if m.vsNginx == nil {
			continue
		}
		o, n := r.median(deployedOrproxy, m.key), r.median(deployedNginx, m.key)
		target, met := m.vsNginx.check(r, deployedOrproxy, deployedNginx, m.key)
		fmt.Fprintf(&b, "| %s | %s (%s×) | %s | %s | %s |\n", m.name, format(o, m.u), ratio(o, n), format(n, m.u), target, met)
	}
	return b.String()
}
