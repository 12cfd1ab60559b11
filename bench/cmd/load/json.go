package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/orproxy/orproxy/bench/internal/loadstat"
)

type jsonResult struct {
	Kind string `json:"kind"`
	// Tool is the load generator: "wrk", or empty for this program.
	Tool     string         `json:"tool,omitempty"`
	Target   string         `json:"target"`
	Round    int            `json:"round"`
	Conc     int            `json:"conc"`
	Seconds  float64        `json:"seconds"`
	Requests int            `json:"requests"`
	Errors   int            `json:"errors"`
	Failures map[string]int `json:"failures,omitempty"`
	RPS      float64        `json:"rps"`
	P50us    float64        `json:"p50_us"`
	P90us    float64        `json:"p90_us"`
	P99us    float64        `json:"p99_us"`
	// CPUus is the measured process's CPU time per request; 0 without -pid.
	CPUus float64 `json:"cpu_us_per_req,omitempty"`
}

func cmdJSON(args []string) error {
	fs := flag.NewFlagSet("json", flag.ExitOnError)
	var c common
	c.register(fs)
	conc := fs.Int("c", 1, "concurrent requests")
	dur := fs.Duration("d", 3*time.Second, "measured duration")
	warm := fs.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up before it")
	_ = fs.Parse(args)
	if err := c.check(); err != nil {
		return err
	}
	c.timeout = min(c.timeout, 10*time.Second)
	client := newClient(*conc)
	defer client.CloseIdleConnections()

	runJSON(client, c, *conc, *warm, false)
	proc := c.proc()
	var before loadstat.Usage
	if proc != nil {
		u, err := proc.Read()
		if err != nil {
			return err
		}
		before = u
	}
	start := time.Now()
	lat, tally := runJSON(client, c, *conc, *dur, true)
	elapsed := time.Since(start)
	res := jsonResult{Kind: "json", Target: c.target, Round: c.round, Conc: *conc, Seconds: elapsed.Seconds(), Requests: len(lat)}
	for _, n := range tally {
		res.Errors += n
	}
	if res.Errors > 0 {
		res.Failures = tally
	}
	if proc != nil {
		after, err := proc.Read()
		if err != nil {
			return err
		}
		if res.Requests > 0 {
			res.CPUus = us(after.CPU-before.CPU) / float64(res.Requests)
		}
	}
	s := loadstat.Summarize(lat)
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	res.P50us, res.P90us, res.P99us = us(s.P50), us(s.P90), us(s.P99)
	return emit(res)
}

// runJSON keeps conc requests in flight for d and returns the latencies of
// the successful ones.
func runJSON(client *http.Client, c common, conc int, d time.Duration, keep bool) ([]time.Duration, errorTally) {
	ctx, cancel := context.WithTimeout(context.Background(), d+c.timeout)
	defer cancel()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	tally := errorTally{}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var lat []time.Duration
			if keep {
				lat = make([]time.Duration, 0, 4096)
			}
			local := errorTally{}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := oneJSON(ctx, client, c.url, c.timeout)
				if err != nil {
					local.add(err)
					if ctx.Err() != nil {
						break
					}
					time.Sleep(time.Millisecond) // a failing target must not spin
					continue
				}
				if keep {
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			for k, v := range local {
				tally[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, tally
}

func oneJSON(ctx context.Context, client *http.Client, u string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := post(ctx, client, u, smallBody)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
