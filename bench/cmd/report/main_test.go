package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `
{"kind":"json","target":"direct","round":1,"conc":64,"rps":20000,"p50_us":3000,"p99_us":9000}
{"kind":"json","target":"orproxy","round":1,"conc":64,"rps":7000,"p50_us":8000,"p99_us":20000,"cpu_us_per_req":70}
{"kind":"json","target":"orproxy","round":2,"conc":64,"rps":9000,"p50_us":7000,"p99_us":20000,"cpu_us_per_req":60}
{"kind":"json","target":"orproxy","round":3,"conc":64,"rps":8000,"p50_us":7500,"p99_us":20000,"cpu_us_per_req":65}
{"kind":"json","tool":"wrk","target":"nginx","round":1,"conc":64,"rps":14000,"p50_us":4000,"p99_us":10000,"cpu_us_per_req":15}
{"kind":"json","tool":"wrk","target":"orproxy_noledger","round":1,"conc":64,"rps":9000,"p50_us":7000,"p99_us":20000,"cpu_us_per_req":62}
{"kind":"sse","target":"direct","round":1,"ttfe_p50_us":1000,"event_p50_us":100,"event_p90_us":200,"event_p99_us":900}
{"kind":"sse","target":"direct","round":2,"ttfe_p50_us":2000,"event_p50_us":100,"event_p90_us":200,"event_p99_us":900}
{"kind":"sse","target":"orproxy","round":1,"ttfe_p50_us":1200,"event_p50_us":150,"event_p90_us":260,"event_p99_us":900}
{"kind":"sse","target":"orproxy","round":2,"ttfe_p50_us":2200,"event_p50_us":150,"event_p90_us":260,"event_p99_us":900}
{"kind":"sse","target":"orproxy_noledger","round":1,"ttfe_p50_us":1200,"event_p50_us":140,"event_p90_us":230,"event_p99_us":900}
{"kind":"sse","target":"nginx","round":1,"ttfe_p50_us":1100,"event_p50_us":160,"event_p90_us":250,"event_p99_us":800}
{"kind":"hold","target":"orproxy","round":1,"n":1000,"completed":1000,"rss_idle_kib":10240,"rss_open_kib":51200}
{"kind":"hold","target":"orproxy","round":2,"n":1000,"completed":999,"rss_idle_kib":10240,"rss_open_kib":51200,"failures":{"unexpected EOF":1}}
{"kind":"hold","target":"nginx","round":1,"n":1000,"completed":1000,"rss_idle_kib":4096,"rss_open_kib":40960}
{"kind":"patch","impl":"encoding/json","size":"1MiB","bytes":1048600,"ns_per_op":20000000,"allocs_per_op":80000}
{"kind":"patch","impl":"node","size":"1MiB","bytes":1048600,"ns_per_op":5000000}
`

const goBenchOut = `goos: linux
goarch: amd64
pkg: github.com/orproxy/orproxy/websearch
cpu: AMD EPYC
BenchmarkPatch/10KB-2         	  100000	     11000 ns/op	 930.91 MB/s	   10752 B/op	       3 allocs/op
BenchmarkPatch/1MiB-2         	    1000	   1000000 ns/op	1048.58 MB/s	 1057000 B/op	       5 allocs/op
PASS
`

func TestParseAndMedians(t *testing.T) {
	r, err := parseResults(strings.NewReader(sample))
	require.NoError(t, err)
	assert.Equal(t, []string{"direct", "orproxy", "orproxy_noledger", "nginx"}, r.orderedTargets())
	assert.Equal(t, 8000.0, r.median("orproxy", "json64.rps"))
	assert.Equal(t, 65.0, r.median("orproxy", "json64.cpu"))
	// Added latency is per round against direct of the same round.
	assert.Equal(t, 200.0, r.median("orproxy", "sse.ttfe.added"))
	assert.Equal(t, 60.0, r.median("orproxy", "sse.ev90.added"))
	assert.InDelta(t, 40.96, r.median("orproxy", "hold.perstream"), 1e-9)
	assert.Equal(t, 3, r.rounds())
	assert.Equal(t, 1000, r.streams)
}

func TestParseGoBench(t *testing.T) {
	got := parseGoBench(goBenchOut)
	assert.Equal(t, []patchResult{
		{impl: "websearch-pkg", size: "10KB", nsPerOp: 11000, allocs: 3},
		{impl: "websearch-pkg", size: "1MiB", nsPerOp: 1e6, allocs: 5},
	}, got)
}

func TestRenderChecksTargets(t *testing.T) {
	r, err := parseResults(strings.NewReader(sample))
	require.NoError(t, err)
	table := render(r)
	row := func(prefix string) string { return rowOf(t, table, prefix) }
	assert.Contains(t, row("small JSON, c=64: throughput"), "8.00k/s (0.40×D, 0.57×N)")
	assert.Contains(t, row("small JSON, c=64: throughput"), "| yes |")
	assert.Contains(t, row("small JSON, c=64: proxy CPU per request |"), "| **no** |", "65 > 4 × 15")
	assert.Contains(t, row("small JSON, c=64: proxy CPU per request, ledger"), "(1.05×) | yes |", "65 ≤ 1.10 × 62")
	assert.Contains(t, row("SSE: per-event latency added, p90"), "| **no** |", "60 µs > 1.15 × 30 µs, and off's only round is 30 µs")
	assert.Contains(t, row("SSE: per-event latency added, p50"), "| **no** |", "50 µs > 1.15 × 40 µs, and off's only round is 40 µs")
	r.set(ledgerOff, "sse.ev50.added", 2, 35)
	r.set(ledgerOff, "sse.ev50.added", 3, 60)
	table = render(r)
	assert.Contains(t, row("SSE: per-event latency added, p50"), "| yes |", "50 µs > 1.15 × the median 40 µs, but within off's rounds (35 to 60 µs)")
	assert.Contains(t, table, "Small-JSON rows measured with bench/cmd/load and wrk;")
	assert.Contains(t, row("1000 open SSE streams: completed"), "| **no** |", "one round lost a stream")
	assert.Contains(t, row("1000 open SSE streams: proxy RSS"), "50.0 MiB (1.25×N)")
	assert.Contains(t, row("1000 open SSE streams: proxy RSS"), "| yes |")
	assert.Contains(t, row("body patch, 1MiB"), "not available yet")
	assert.Contains(t, row("body patch, 1MiB"), "| n/a |")
	assert.Contains(t, table, "orproxy: 1 × hold: unexpected EOF")

	r.patch = append(r.patch, parseGoBench(goBenchOut)...)
	r.patch = append(r.patch, patchResult{impl: "websearch", size: "1MiB", bytes: 1048600, nsPerOp: 1.2e6, allocs: 2})
	table = render(r)
	assert.Contains(t, row("body patch, 1MiB"), "1.00 ms, 5 allocs (package benchmark)")
	assert.Contains(t, row("body patch, 1MiB"), "same body: websearch 1.20 ms, 2 allocs")
	assert.Contains(t, row("body patch, 1MiB"), "encoding/json 20.00 ms (16.7× slower)")
	assert.Contains(t, row("body patch, 1MiB"), "Node parse+stringify 5.00 ms (4.2× slower)")
	assert.Contains(t, row("body patch, 1MiB"), "| yes |")

	// Rounds: the median counts, not the last or best one.
	r.patch = append(r.patch,
		patchResult{impl: "websearch", size: "1MiB", bytes: 1048600, nsPerOp: 3e6, allocs: 2},
		patchResult{impl: "websearch", size: "1MiB", bytes: 1048600, nsPerOp: 2.9e6, allocs: 2})
	table = render(r)
	assert.Contains(t, row("body patch, 1MiB"), "same body: websearch 2.90 ms")
	assert.Contains(t, row("body patch, 1MiB"), "| **no** |", "Node only 1.7× slower")
}

func TestDeployedTableOnlyWithBothTargets(t *testing.T) {
	r, err := parseResults(strings.NewReader(sample))
	require.NoError(t, err)
	assert.NotContains(t, render(r), "As deployed")

	const deployed = `
{"kind":"json","target":"orproxy_h2","round":1,"conc":64,"rps":6000,"p50_us":9000,"p99_us":20000,"cpu_us_per_req":150}
{"kind":"json","target":"nginx_tls","round":1,"conc":64,"rps":16000,"p50_us":4000,"p99_us":10000,"cpu_us_per_req":50}
{"kind":"sse","target":"orproxy_h2","round":1,"ttfe_p50_us":1300,"event_p50_us":150,"event_p90_us":260,"event_p99_us":900}
{"kind":"sse","target":"nginx_tls","round":1,"ttfe_p50_us":1200,"event_p50_us":150,"event_p90_us":260,"event_p99_us":900}
{"kind":"hold","target":"orproxy_h2","round":1,"n":1000,"completed":1000,"rss_idle_kib":20480,"rss_open_kib":66560}
{"kind":"hold","target":"nginx_tls","round":1,"n":1000,"completed":1000,"rss_idle_kib":20480,"rss_open_kib":78848}
`
	r, err = parseResults(strings.NewReader(sample + deployed))
	require.NoError(t, err)
	table := render(r)
	_, part, found := strings.Cut(table, "As deployed")
	require.True(t, found, table)
	row := func(prefix string) string { return rowOf(t, part, prefix) }
	assert.Contains(t, row("small JSON, c=64: proxy CPU"), "150 µs (3.00×) | 50.0 µs | ≤ 4.0× nginx_tls | yes |")
	assert.Contains(t, row("small JSON, c=64: throughput"), "6.00k/s (0.38×) | 16.00k/s | ≥ 0.4× nginx_tls | **no** |")
	// Added against direct of the same round: 300 against 200 µs.
	assert.Contains(t, row("SSE: time to first event added"), "300 µs (1.50×) | 200 µs | ≤ 2.0× nginx_tls | yes |")
	assert.Contains(t, row("1000 open SSE streams: proxy RSS"), "65.0 MiB (0.84×) | 77.0 MiB | ≤ 1.5× nginx_tls | yes |")
}

// rowOf is the line of table whose first cell starts with prefix.
func rowOf(t *testing.T, table, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "| "+prefix) {
			return l
		}
	}
	t.Fatalf("no row %q in\n%s", prefix, table)
	return ""
}
