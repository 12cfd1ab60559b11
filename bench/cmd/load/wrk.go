package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/orproxy/orproxy/bench/internal/loadstat"
)

// wrkScript makes wrk send smallBody as a POST and, at the end, print one
// line the run parses: wrk's own text output has no stable format.
const wrkScript = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %%d %%d %%d %%d %%d %%d %%d %%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), e.timeout))
end
`

// wrkSummary is what the script's done function printed.
type wrkSummary struct {
	requests, durationUS, ioErrors, statusErrors int64
	p50, p90, p99, timeouts                      float64
}

// parseWrk finds the script's WRKRESULT line in wrk's output.
func parseWrk(out []byte) (wrkSummary, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 9 || fields[0] != "WRKRESULT" {
			continue
		}
		var n [8]float64
		for i, f := range fields[1:] {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return wrkSummary{}, fmt.Errorf("wrk result field %d %q: %w", i+1, f, err)
			}
			n[i] = v
		}
		return wrkSummary{
			requests: int64(n[0]), durationUS: int64(n[1]), ioErrors: int64(n[2]), statusErrors: int64(n[3]),
			p50: n[4], p90: n[5], p99: n[6], timeouts: n[7],
		}, nil
	}
	return wrkSummary{}, fmt.Errorf("wrk printed no result line; its output was:\n%s", out)
}

// cmdWrk is the json mode with wrk as the load generator: a C client that
// spends far less of the shared cores than a Go one, so the proxy's CPU per
// request and its throughput are not masked by the load client's own cost.
func cmdWrk(args []string) error {
	fs := flag.NewFlagSet("wrk", flag.ExitOnError)
	var c common
	c.register(fs)
	conc := fs.Int("c", 1, "open connections, one request in flight on each")
	dur := fs.Duration("d", 3*time.Second, "measured duration (whole seconds)")
	warm := fs.Duration("warmup", time.Second, "unmeasured warm-up before it (whole seconds)")
	threads := fs.Int("t", 0, "wrk threads; 0 = min(c, 2)")
	_ = fs.Parse(args)
	if err := c.check(); err != nil {
		return err
	}
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk is not installed (Debian: apt-get install wrk)")
	}
	if *threads <= 0 {
		*threads = min(*conc, 2)
	}
	dir, err := os.MkdirTemp("", "load-wrk")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, smallBody), 0o600); err != nil {
		return err
	}
	run := func(d time.Duration) (wrkSummary, error) {
		secs := max(1, int(d.Round(time.Second)/time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*conc),
			"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", script, c.url)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return wrkSummary{}, fmt.Errorf("wrk: %w: %s", err, out)
		}
		return parseWrk(out)
	}
	if *warm > 0 {
		if _, err := run(*warm); err != nil {
			return err
		}
	}
	proc := c.proc()
	var before loadstat.Usage
	if proc != nil {
		if before, err = proc.Read(); err != nil {
			return err
		}
	}
	s, err := run(*dur)
	if err != nil {
		return err
	}
	res := jsonResult{Kind: "json", Tool: "wrk", Target: c.target, Round: c.round, Conc: *conc,
		Seconds: float64(s.durationUS) / 1e6, Requests: int(s.requests),
		P50us: s.p50, P90us: s.p90, P99us: s.p99}
	if bad := s.ioErrors + s.statusErrors; bad > 0 {
		res.Errors = int(bad)
		res.Failures = map[string]int{}
		if s.statusErrors > 0 {
			res.Failures["status other than 2xx/3xx"] = int(s.statusErrors)
		}
		if s.ioErrors > 0 {
			res.Failures[fmt.Sprintf("connect, read, write or timeout error (%d timeouts)", int64(s.timeouts))] = int(s.ioErrors)
		}
	}
	if res.Seconds > 0 {
		// wrk counts answers with a bad status as requests too.
		res.RPS = float64(s.requests-s.statusErrors) / res.Seconds
	}
	if proc != nil && s.requests > 0 {
		after, err := proc.Read()
		if err != nil {
			return err
		}
		res.CPUus = us(after.CPU-before.CPU) / float64(s.requests)
	}
	return emit(res)
}
