package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orproxy/orproxy/bench/internal/loadstat"
)

// streamURL adds the stub's stream shape to the URL's query.
func streamURL(raw string, events int, interval time.Duration) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("events", fmt.Sprint(events))
	q.Set("interval", interval.String())
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// openStream runs one stream to its end.
func openStream(ctx context.Context, client *http.Client, u string, keep bool, onFirst func()) (streamResult, error) {
	start := time.Now()
	resp, err := post(ctx, client, u, streamBody)
	if err != nil {
		return streamResult{}, err
	}
	defer resp.Body.Close()
	res, err := readStream(resp.Body, start, keep, onFirst)
	if err == nil && !res.done {
		err = errStreamIncomplete
	}
	return res, err
}

type sseResult struct {
	Kind     string         `json:"kind"`
	Target   string         `json:"target"`
	Round    int            `json:"round"`
	Conc     int            `json:"conc"`
	Streams  int            `json:"streams"`
	Events   int            `json:"events"`
	Errors   int            `json:"errors"`
	Failures map[string]int `json:"failures,omitempty"`
	// Time to first event, from the start of the request.
	TTFEp50us float64 `json:"ttfe_p50_us"`
	TTFEp90us float64 `json:"ttfe_p90_us"`
	// Per-event latency: received − sent.
	EvP50us float64 `json:"event_p50_us"`
	EvP90us float64 `json:"event_p90_us"`
	EvP99us float64 `json:"event_p99_us"`
	EvMaxus float64 `json:"event_max_us"`
}

func cmdSSE(args []string) error {
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	var c common
	c.register(fs)
	conc := fs.Int("c", 16, "concurrent streams")
	dur := fs.Duration("d", 3*time.Second, "start new streams for this long")
	events := fs.Int("events", 25, "events per stream")
	interval := fs.Duration("interval", 20*time.Millisecond, "time between events")
	_ = fs.Parse(args)
	if err := c.check(); err != nil {
		return err
	}
	u, err := streamURL(c.url, *events, *interval)
	if err != nil {
		return err
	}
	client := newClient(*conc)
	defer client.CloseIdleConnections()
	streamTime := time.Duration(*events) * *interval
	ctx, cancel := context.WithTimeout(context.Background(), *dur+streamTime+c.timeout)
	defer cancel()
	deadline := time.Now().Add(*dur)

	var mu sync.Mutex
	var ttfe, lat []time.Duration
	res := sseResult{Kind: "sse", Target: c.target, Round: c.round, Conc: *conc}
	tally := errorTally{}
	var wg sync.WaitGroup
	for w := range *conc {
		wg.Go(func() {
			// Spread the workers over one interval, so that the streams'
			// events do not all fall due at the same moment.
			time.Sleep(time.Duration(w) * *interval / time.Duration(*conc))
			// Each worker's first stream dials and warms up; it is not counted.
			for i := 0; i == 0 || time.Now().Before(deadline); i++ {
				sctx, scancel := context.WithTimeout(ctx, streamTime+c.timeout)
				r, err := openStream(sctx, client, u, i > 0, nil)
				scancel()
				mu.Lock()
				if err != nil {
					tally.add(err)
					res.Errors++
				} else if i > 0 {
					res.Streams++
					res.Events += r.events
					ttfe = append(ttfe, r.firstEvent)
					lat = append(lat, r.latencies...)
				}
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if res.Errors > 0 {
		res.Failures = tally
	}
	t := loadstat.Summarize(ttfe)
	e := loadstat.Summarize(lat)
	res.TTFEp50us, res.TTFEp90us = us(t.P50), us(t.P90)
	res.EvP50us, res.EvP90us, res.EvP99us, res.EvMaxus = us(e.P50), us(e.P90), us(e.P99), us(e.Max)
	return emit(res)
}

type holdResult struct {
	Kind      string         `json:"kind"`
	Target    string         `json:"target"`
	Round     int            `json:"round"`
	N         int            `json:"n"`
	Completed int            `json:"completed"`
	Errors    int            `json:"errors"`
	Failures  map[string]int `json:"failures,omitempty"`
	// MaxOpen is the most streams open at once (first event seen, not ended).
	MaxOpen int `json:"max_open"`
	// Memory of the measured process before the streams and at the peak
	// while MaxOpen streams were open; 0 without -pid.
	RSSIdleKiB int64   `json:"rss_idle_kib,omitempty"`
	RSSOpenKiB int64   `json:"rss_open_kib,omitempty"`
	PSSIdleKiB int64   `json:"pss_idle_kib,omitempty"`
	PSSOpenKiB int64   `json:"pss_open_kib,omitempty"`
	Seconds    float64 `json:"seconds"`
}

func cmdHold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 1000, "streams to hold open at once")
	events := fs.Int("events", 10, "events per stream")
	interval := fs.Duration("interval", time.Second, "time between events")
	ramp := fs.Duration("ramp", time.Second, "open the streams over this time")
	_ = fs.Parse(args)
	if err := c.check(); err != nil {
		return err
	}
	u, err := streamURL(c.url, *events, *interval)
	if err != nil {
		return err
	}
	client := newClient(*n)
	defer client.CloseIdleConnections()
	streamTime := time.Duration(*events-1) * *interval
	ctx, cancel := context.WithTimeout(context.Background(), *ramp+streamTime+c.timeout)
	defer cancel()

	res := holdResult{Kind: "hold", Target: c.target, Round: c.round, N: *n}
	proc := c.proc()
	if proc != nil {
		idle, err := proc.Read()
		if err != nil {
			return err
		}
		res.RSSIdleKiB, res.PSSIdleKiB = idle.RSSKiB, idle.PSSKiB
	}

	var open, maxOpen atomic.Int64
	type sample struct {
		open int64
		use  loadstat.Usage
	}
	var samples []sample
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if proc == nil {
			return
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			o := open.Load()
			if use, err := proc.Read(); err == nil && o > 0 {
				samples = append(samples, sample{o, use})
			}
		}
	}()

	start := time.Now()
	var mu sync.Mutex
	tally := errorTally{}
	var wg sync.WaitGroup
	step := *ramp / time.Duration(*n)
	for i := range *n {
		if i > 0 && step > 0 {
			time.Sleep(step)
		}
		wg.Go(func() {
			opened := false
			r, err := openStream(ctx, client, u, false, func() {
				opened = true
				o := open.Add(1)
				for m := maxOpen.Load(); o > m && !maxOpen.CompareAndSwap(m, o); m = maxOpen.Load() {
				}
			})
			if opened {
				open.Add(-1)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				tally.add(err)
				res.Errors++
			case r.events != *events:
				tally.add(fmt.Errorf("%d of %d events", r.events, *events))
				res.Errors++
			default:
				res.Completed++
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	close(stopSampling)
	<-sampled
	res.MaxOpen = int(maxOpen.Load())
	// The peak among the samples taken while the most streams were open.
	best := int64(0)
	for _, s := range samples {
		if s.open > best {
			best = s.open
		}
	}
	for _, s := range samples {
		if s.open == best && s.use.RSSKiB > res.RSSOpenKiB {
			res.RSSOpenKiB, res.PSSOpenKiB = s.use.RSSKiB, s.use.PSSKiB
		}
	}
	if res.Errors > 0 {
		res.Failures = tally
	}
	return emit(res)
}
