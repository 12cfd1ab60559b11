// Package soak runs orproxy under steady load for a while, through key
// revocations and faults (a broker handing out dead keys and healing, a
// burst of 429s, clients that stall mid-body), phase by phase, and reports
// whether each phase kept its promise and whether anything grew. The daemon
// runs in this process (internal/daemon, as `orproxy serve` runs it) in
// front of the fake OpenRouter and the fake broker, all on loopback.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/daemon"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// Options shape a soak run. Zero values take the defaults noted.
type Options struct {
	// Duration of the load; default 60 s. With Phases set it is their sum.
	Duration time.Duration
	// Phases is the plan; nil means DefaultPhases(Duration). The heal
	// phase may run past its length, until requests succeed again.
	Phases []Phase
	// BodyReadTimeout is the daemon's limits.body_read_timeout; default 2 s.
	BodyReadTimeout time.Duration
	// SlowClients is the number of stalled clients in a slow-clients
	// phase; default 8.
	SlowClients int
	// Clients is the number of concurrent clients; default 64.
	Clients int
	// Rate is the requests per second the clients start together; default 200.
	Rate float64
	// StreamEvery makes every n-th request a streaming (SSE) one, the rest
	// JSON; default 2 (half and half).
	StreamEvery int
	// RevokeEvery is how often the current key is revoked behind the
	// daemon's back; default 5 s.
	RevokeEvery time.Duration
	// SampleEvery is how often goroutines and RSS are sampled; default 5 s.
	SampleEvery time.Duration
	// ChunkDelay spaces the fake's SSE events; default 10 ms.
	ChunkDelay time.Duration
	// Progress, if set, receives a line per sample.
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.Clients <= 0 {
		o.Clients = 64
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.StreamEvery <= 0 {
		o.StreamEvery = 2
	}
	if o.RevokeEvery <= 0 {
		o.RevokeEvery = 5 * time.Second
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 5 * time.Second
	}
	if o.ChunkDelay <= 0 {
		o.ChunkDelay = 10 * time.Millisecond
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = 2 * time.Second
	}
	if o.SlowClients <= 0 {
		o.SlowClients = 8
	}
	if o.Phases == nil {
		o.Phases = DefaultPhases(o.Duration)
	}
	o.Duration = 0
	for _, p := range o.Phases {
		o.Duration += p.Length
	}
}

// Sample is the process's state at one moment.
type Sample struct {
	At         time.Duration `json:"at"`
	Goroutines int           `json:"goroutines"`
	RSS        int64         `json:"rss_bytes"`
	HeapInUse  uint64        `json:"heap_in_use_bytes"`
	Sent       int64         `json:"sent"`
}

// Report is what a run found.
type Report struct {
	Options Options
	Elapsed time.Duration
	// Loaded is how long the load ran (the heal phase may stretch it).
	Loaded time.Duration
	Sent   int64
	// Failed counts the requests that failed in a way their phase does not
	// allow (see PhaseReport.Unexpected).
	Failed    int64
	JSON, SSE int64
	// Revocations are those of the normal phases.
	Revocations int
	// Rotations is how often the broker rotated; DaemonRotations is the
	// daemon's own count (/status rotation_count), which counts the dead
	// keys too.
	Rotations, DaemonRotations int
	// Phases are the phases as they ran, in order.
	Phases []PhaseReport
	// Latency of the whole answer, by kind: JSON, and SSE up to [DONE].
	JSONLatency, SSELatency Latency
	// Before is the process with the daemon up and no load yet, Samples
	// are taken under load, After once the load stopped and the pooled
	// connections were closed, the daemon still up.
	Before, After Sample
	Samples       []Sample
}

// Run starts the fakes and the daemon, loads it for opts.Duration and
// reports. It returns an error only when the run itself could not be set up;
// failed requests are in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	started := time.Now()
	rep := &Report{Options: opts}

	or := openrouter.New(openrouter.Options{ChunkDelay: opts.ChunkDelay, MaxRecorded: 100})
	orSrv := httptest.NewServer(or.Handler())
	defer orSrv.Close()
	broker, err := broker.New(broker.Options{Issuer: broker.ServerIssuer(or)})
	if err != nil {
		return nil, err
	}
	calls := &callLog{}
	bSrv := httptest.NewServer(calls.wrap(broker.Handler()))
	defer bSrv.Close()
	dir, err := os.MkdirTemp("", "orproxy-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store := auth.NewStore(filepath.Join(dir, "credentials.json"))
	if err := login(ctx, bSrv.URL, store); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}

	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = orSrv.URL + "/api/v1"
	cfg.Broker.URL = bSrv.URL
	cfg.Broker.Timeout = 5 * time.Second
	cfg.Credentials.File = store.Path()
	// The ledger is on, as by default, but never the user's own.
	cfg.Usage.File = filepath.Join(dir, "usage.db")
	cfg.Credentials.ValidateOnStart = false
	cfg.Limits.BodyReadTimeout = opts.BodyReadTimeout
	if problems := cfg.Validate(); len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	// Warnings and errors only: a request line each would be the whole log.
	logger := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(os.Stderr), zapcore.WarnLevel))
	dctx, stopDaemon := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(dctx, cfg, daemon.Options{Logger: logger, DrainTimeout: 5 * time.Second, Ready: func(a net.Addr) { ready <- a }})
	}()
	stop := sync.OnceValue(func() error {
		stopDaemon()
		return <-done
	})
	defer stop()
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case <-time.After(10 * time.Second):
		return nil, errors.New("daemon did not start")
	}
	base := "http://" + addr
	runtime.GC()
	rep.Before = sample(started, 0)

	tr := &http.Transport{MaxIdleConnsPerHost: opts.Clients, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	l := &load{client: client, base: base, streamEvery: opts.StreamEvery, begun: make(chan struct{})}
	r := &runner{opts: opts, broker: broker, or: or, client: client, base: base, addr: addr, load: l, calls: calls}

	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadStarted := time.Now()
	tokens := make(chan int64)
	var wg sync.WaitGroup
	for range opts.Clients {
		wg.Go(func() {
			for n := range tokens {
				l.one(lctx, n)
			}
		})
	}
	wg.Go(func() { // the steady rate, from the first phase's start
		defer close(tokens)
		select {
		case <-l.begun:
		case <-lctx.Done():
			return
		}
		interval := time.Duration(float64(time.Second) / opts.Rate)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for n := int64(0); ; n++ {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			select {
			case tokens <- n:
			case <-lctx.Done():
				return
			}
		}
	})
	var current atomic.Value // the phase's name, for the progress line
	current.Store("")
	wg.Go(func() {
		tick := time.NewTicker(opts.SampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			s := sample(started, l.sent.Load())
			rep.Samples = append(rep.Samples, s)
			if ps := l.phase.Load(); opts.Progress != nil && ps != nil {
				fmt.Fprintf(opts.Progress, "%6.0fs  %-12s sent %7d  ok %7d  401 %5d  429 %5d  other %d  rotations %d  goroutines %5d  rss %6.1f MiB\n",
					s.At.Seconds(), current.Load(), s.Sent, ps.ok.Load(), ps.explained.Load(), ps.limited.Load(), ps.other.Load(),
					broker.Stats().RotateCalls, s.Goroutines, mib(s.RSS))
			}
		}
	})
	var runs []*phaseRun
	var phaseErr error
	for i, ph := range opts.Phases {
		if ctx.Err() != nil {
			break
		}
		current.Store(fmt.Sprintf("%d %s", i+1, ph.Kind))
		pr, err := r.phase(ctx, ph)
		if err != nil {
			phaseErr = fmt.Errorf("phase %d (%s): %w", i+1, ph.Kind, err)
			break
		}
		runs = append(runs, pr)
	}
	stopLoad()
	wg.Wait()
	if phaseErr != nil {
		return nil, phaseErr
	}
	rep.Loaded = time.Since(loadStarted)
	rep.Elapsed = time.Since(started)
	rep.Sent, rep.JSON, rep.SSE = l.sent.Load(), l.json.Load(), l.sse.Load()
	var prev *PhaseReport
	for _, pr := range runs {
		p := pr.report(prev, calls, opts.BodyReadTimeout)
		rep.Phases = append(rep.Phases, p)
		rep.Failed += p.Unexpected()
		if p.Kind == PhaseNormal {
			rep.Revocations += p.Revocations
		}
		prev = &p
	}
	rep.Rotations = broker.Stats().RotateCalls
	if st, err := daemonStatus(client, base); err == nil {
		rep.DaemonRotations = st.rotations
	}
	rep.JSONLatency, rep.SSELatency = l.jsonLat.summary(), l.sseLat.summary()

	// Idle, with the daemon still serving: once the pooled connections on
	// both sides of it are closed, its goroutines should be back to where
	// they were before the load.
	tr.CloseIdleConnections()
	orSrv.CloseClientConnections()
	bSrv.CloseClientConnections()
	rep.After = settle(started, rep.Before.Goroutines, l.sent.Load())
	if err := stop(); err != nil {
		return rep, fmt.Errorf("daemon: %w", err)
	}
	return rep, nil
}

// login does what `orproxy login` does through the broker, with this code as
// the browser, and stores the credential.
func login(ctx context.Context, brokerURL string, store *auth.Store) error {
	bc, err := auth.NewBrokerClient(brokerURL, nil, 5*time.Second, nil)
	if err != nil {
		return err
	}
	start, err := bc.StartURL(ctx, "http://127.0.0.1:1/callback?state=soak")
	if err != nil {
		return err
	}
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(start)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	answer, err := bc.Exchange(ctx, secret.New(loc.Query().Get("code")))
	if err != nil {
		return err
	}
	return store.Save(ctx, answer.Credential(brokerURL))
}

type load struct {
	client      *http.Client
	base        string
	streamEvery int
	// phase counts the answers that end now; begun is closed once it is
	// set.
	phase     atomic.Pointer[phaseStats]
	begun     chan struct{}
	beginOnce sync.Once

	sent, json, sse atomic.Int64
	jsonLat, sseLat histogram
}

const (
	jsonBody   = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}`
	streamBody = `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hi"}]}`
)

// enter makes ps the phase that counts the answers from now on.
func (l *load) enter(ps *phaseStats) {
	l.phase.Store(ps)
	l.beginOnce.Do(func() { close(l.begun) })
}

// one sends request n and records how it went, in the phase current when
// the answer ended. A request cut by the end of the run is not counted.
func (l *load) one(ctx context.Context, n int64) {
	stream := n%int64(l.streamEvery) == 0
	body := jsonBody
	if stream {
		body = streamBody
	}
	start := time.Now()
	o := l.do(ctx, body, stream)
	if !o.ok && ctx.Err() != nil {
		return
	}
	end := time.Now()
	l.sent.Add(1)
	if stream {
		l.sse.Add(1)
	} else {
		l.json.Add(1)
	}
	l.phase.Load().record(o, end)
	if !o.ok {
		return
	}
	if stream {
		l.sseLat.add(end.Sub(start))
	} else {
		l.jsonLat.add(end.Sub(start))
	}
}

// outcome is how one request went.
type outcome struct {
	ok     bool
	status int // 0: no answer
	// explained: a 401 whose error message names the broker.
	explained bool
	// limitHeaders: a 429 with Retry-After and X-RateLimit-Limit,
	// -Remaining and -Reset.
	limitHeaders bool
	err          error // why it is not ok
}

func (l *load) do(ctx context.Context, body string, stream bool) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/api/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer dummy")
	resp, err := l.client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		o.err = fmt.Errorf("status %d, reading the answer: %w", resp.StatusCode, err)
		return o
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		o.err = fmt.Errorf("status %d: %.300s", resp.StatusCode, data)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			o.explained = strings.Contains(errorMessage(data), "broker")
		case http.StatusTooManyRequests:
			o.limitHeaders = hasLimitHeaders(resp.Header)
			if !o.limitHeaders {
				o.err = fmt.Errorf("status 429 without Retry-After or X-RateLimit-* (%v): %.200s", resp.Header, data)
			}
		}
	case stream && !bytes.HasSuffix(data, []byte("data: [DONE]\n\n")):
		o.err = fmt.Errorf("stream ended without [DONE]: %.200s", data)
	case !stream && !bytes.Contains(data, []byte(`"choices"`)):
		o.err = fmt.Errorf("answer without choices: %.200s", data)
	default:
		o.ok = true
	}
	return o
}

// errorMessage is error.message of an error answer, "" if it has none.
func errorMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Message
}

// hasLimitHeaders reports whether h carries what a client needs to back
// off from OpenRouter's rate limiter.
func hasLimitHeaders(h http.Header) bool {
	for _, name := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if h.Get(name) == "" {
			return false
		}
	}
	return true
}

// histogram keeps latencies in buckets 1 % wide, so a run of any length
// uses the same memory and the soak measures the proxy's growth, not its own.
type histogram struct {
	mu     sync.Mutex
	counts [histBuckets]int64
	n      int64
	max    time.Duration
}

// histBuckets of 1 % from 1 µs reach beyond ten minutes.
const histBuckets = 2100

var histStep = math.Log(1.01)

func (h *histogram) add(d time.Duration) {
	b := 0
	if us := d.Microseconds(); us > 1 {
		b = min(int(math.Log(float64(us))/histStep), histBuckets-1)
	}
	h.mu.Lock()
	h.counts[b]++
	h.n++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// Latency summarises a histogram; percentiles are the upper edge of their
// bucket, so at most 1 % high.
type Latency struct {
	Count         int64
	P50, P99, Max time.Duration
}

func (h *histogram) summary() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Latency{Count: h.n, Max: h.max}
	if h.n == 0 {
		return s
	}
	at := func(p float64) time.Duration {
		target := int64(math.Ceil(p * float64(h.n)))
		var seen int64
		for b, c := range h.counts {
			if seen += c; seen >= target {
				return min(time.Duration(math.Exp(float64(b+1)*histStep)*float64(time.Microsecond)), h.max)
			}
		}
		return h.max
	}
	s.P50, s.P99 = at(0.50), at(0.99)
	return s
}

// daemonState is what the soak reads from /status.
type daemonState struct {
	rotations   int
	rateLimited int64
}

func daemonStatus(c *http.Client, base string) (daemonState, error) {
	resp, err := c.Get(base + "/status")
	if err != nil {
		return daemonState{}, err
	}
	defer resp.Body.Close()
	var st struct {
		Credential struct {
			RotationCount int `json:"rotation_count"`
		} `json:"credential"`
		Requests struct {
			RateLimited int64 `json:"rate_limited"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return daemonState{}, fmt.Errorf("decoding /status: %w", err)
	}
	return daemonState{st.Credential.RotationCount, st.Requests.RateLimited}, nil
}

func sample(started time.Time, sent int64) Sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Sample{At: time.Since(started), Goroutines: runtime.NumGoroutine(), RSS: rss(), HeapInUse: ms.HeapInuse, Sent: sent}
}

// settle waits (up to 5 s) for the goroutines of finished connections to
// exit, then samples.
func settle(started time.Time, target int, sent int64) Sample {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > target && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling for exits, bounded
	}
	runtime.GC()
	return sample(started, sent)
}

// rss is the resident set size from /proc (Linux); 0 elsewhere.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "soak: %s of load in %d phases, %d clients, %.0f requests/s (1 in %d streaming, the rest JSON), key revoked every %s in normal phases\n",
		round(r.Loaded), len(r.Phases), o.Clients, o.Rate, o.StreamEvery, o.RevokeEvery)
	fmt.Fprintf(w, "requests:    %d sent (%d JSON, %d SSE), %d failed unexpectedly, %.1f/s achieved\n",
		r.Sent, r.JSON, r.SSE, r.Failed, float64(r.Sent)/max(r.Loaded.Seconds(), 1e-9))
	fmt.Fprintf(w, "keys:        %d revocations in normal phases, %d broker rotations, %d rotations counted by the daemon\n", r.Revocations, r.Rotations, r.DaemonRotations)
	r.printPhases(w)
	j, e := r.JSONLatency, r.SSELatency
	fmt.Fprintf(w, "JSON:        p50 %s, p99 %s, max %s (whole answer)\n", round(j.P50), round(j.P99), round(j.Max))
	fmt.Fprintf(w, "SSE:         p50 %s, p99 %s, max %s (whole stream to [DONE]; the fake spaces its events %s)\n",
		round(e.P50), round(e.P99), round(e.Max), o.ChunkDelay)
	first, last := r.Before, r.Before
	if len(r.Samples) > 0 {
		first, last = r.Samples[0], r.Samples[len(r.Samples)-1]
	}
	fmt.Fprintf(w, "goroutines:  %d before, %d at the first sample under load, %d at the last, %d after (idle)\n",
		r.Before.Goroutines, first.Goroutines, last.Goroutines, r.After.Goroutines)
	fmt.Fprintf(w, "RSS:         %.1f MiB before, %.1f MiB at the first sample under load, %.1f MiB at the last, %.1f MiB after\n",
		mib(r.Before.RSS), mib(first.RSS), mib(last.RSS), mib(r.After.RSS))
	fmt.Fprintf(w, "heap in use: %.1f MiB at the first sample under load, %.1f MiB at the last, %.1f MiB after\n",
		mib(int64(first.HeapInUse)), mib(int64(last.HeapInUse)), mib(int64(r.After.HeapInUse)))
	if len(r.Samples) > 0 {
		g0, g1, m0, m1 := first.Goroutines, first.Goroutines, first.RSS, first.RSS
		for _, s := range r.Samples {
			g0, g1, m0, m1 = min(g0, s.Goroutines), max(g1, s.Goroutines), min(m0, s.RSS), max(m1, s.RSS)
		}
		fmt.Fprintf(w, "under load:  %d samples, goroutines %d–%d, RSS %.1f–%.1f MiB\n", len(r.Samples), g0, g1, mib(m0), mib(m1))
	}
	if g, ok := r.Growth(); ok {
		verdict := "no growth"
		if g.Grew() {
			verdict = "GREW"
		}
		if !g.RSSJudged {
			verdict += " (heap only: RSS is not measured here or includes the race detector's shadow memory)"
		}
		fmt.Fprintf(w, "growth:      median of the first third under load vs the last (%d samples each, %d warm-up left out): RSS %.1f → %.1f MiB (%+.1f%%), heap in use %.1f → %.1f MiB (%+.1f%%); fails past %+.0f%% and %+.0f MiB both: %s\n",
			g.PerThird, g.WarmUp, mib(g.RSS[0]), mib(g.RSS[1]), pct(g.RSS), mib(g.Heap[0]), mib(g.Heap[1]), pct(g.Heap),
			growthSlackRatio*100, mib(growthSlackBytes), verdict)
	} else {
		fmt.Fprintf(w, "growth:      not judged: %d samples under load, %d needed\n", len(r.Samples), minGrowthSamples)
	}
	fmt.Fprintf(w, "(one process: daemon, fakes and clients; before and after are idle with the daemon up)\n")
}

// printPhases writes the phase table, then each phase's details.
func (r *Report) printPhases(w io.Writer) {
	if len(r.Phases) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%-16s %8s %8s %8s %9s %10s %13s  %s\n", "phase", "length", "sent", "ok", "expected", "unexpected", "broker calls", "verdict")
	for i, p := range r.Phases {
		var expected int64
		calls := fmt.Sprintf("%d", p.BrokerCalls)
		switch p.Kind {
		case PhaseDeadKey, PhaseHeal:
			expected = p.Explained401
		case PhaseBurst429:
			expected = p.Limited429
		}
		if p.BrokerAllowed >= 0 {
			calls = fmt.Sprintf("%d of ≤%d", p.BrokerCalls, p.BrokerAllowed)
		} else if p.Revocations > 0 {
			calls = fmt.Sprintf("%d for %d", p.BrokerCalls, p.Revocations)
		}
		verdict := "ok"
		if len(p.Problems) > 0 {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%-16s %7.1fs %8d %8d %9d %10d %13s  %s\n",
			fmt.Sprintf("%d %s", i+1, p.Kind), p.Length.Seconds(), p.Sent, p.OK, expected, p.Unexpected(), calls, verdict)
	}
	fmt.Fprintln(w)
	for i, p := range r.Phases {
		name := fmt.Sprintf("%d %s:", i+1, p.Kind)
		switch p.Kind {
		case PhaseNormal:
			fmt.Fprintf(w, "%-16s %d revocations, each rotated once: %v\n", name, p.Revocations, p.BrokerCalls == p.Revocations)
		case PhaseDeadKey:
			fmt.Fprintf(w, "%-16s %d × 401 naming the broker; broker asked %d times (backoff allows %d in %s) at %s\n",
				name, p.Explained401, p.BrokerCalls, p.BrokerAllowed, p.Length.Round(100*time.Millisecond), offsets(p.CallTimes))
		case PhaseHeal:
			state := fmt.Sprintf("recovered %s after the broker healed (limit %s)", p.Recovery.Round(10*time.Millisecond), RecoveryLimit)
			if !p.Recovered {
				state = "NOT recovered by the phase's end"
			}
			fmt.Fprintf(w, "%-16s %s; %d × 401 before; broker asked %d times at %s\n", name, state, p.Explained401, p.BrokerCalls, offsets(p.CallTimes))
		case PhaseBurst429:
			fmt.Fprintf(w, "%-16s burst of %d: %d × 429 with Retry-After and X-RateLimit-* reached the clients, /status rate_limited +%d, %d rotations\n",
				name, p.Burst, p.Limited429, p.DaemonRateLimited, p.BrokerCalls)
		case PhaseSlowClients:
			s := p.Slow
			fmt.Fprintf(w, "%-16s %d stalled clients, %d connections: %d cut with 408, %d closed, after %s–%s (body_read_timeout %s)\n",
				name, s.Clients, s.Attempts, s.By408, s.ByClose, round(s.MinCut), round(s.MaxCut), r.Options.BodyReadTimeout)
		}
		if p.Example401 != "" {
			fmt.Fprintf(w, "%16s 401: %s\n", "", p.Example401)
		}
		if p.Example429 != "" {
			fmt.Fprintf(w, "%16s 429: %s\n", "", p.Example429)
		}
		for _, f := range p.Failures {
			fmt.Fprintf(w, "%16s failure: %s\n", "", f)
		}
		for _, prob := range p.Problems {
			fmt.Fprintf(w, "%16s FAIL: %s\n", "", prob)
		}
	}
	fmt.Fprintln(w)
}

func offsets(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.1fs", d.Seconds())
	}
	return strings.Join(parts, " ")
}

// OK reports whether the run met its targets: every phase passed its
// checks (PhaseReport.Problems), the daemon counted every rotation the
// broker made, the goroutines came back down once the load stopped, and
// memory under load did not grow (see Growth; not judged with fewer than
// minGrowthSamples samples).
func (r *Report) OK() error {
	var problems []string
	for i, p := range r.Phases {
		for _, prob := range p.Problems {
			problems = append(problems, fmt.Sprintf("phase %d (%s): %s", i+1, p.Kind, prob))
		}
	}
	if r.Sent == 0 {
		problems = append(problems, "no request was sent")
	}
	if r.DaemonRotations != r.Rotations {
		problems = append(problems, fmt.Sprintf("%d broker rotations but %d counted by the daemon", r.Rotations, r.DaemonRotations))
	}
	if r.Revocations == 0 {
		problems = append(problems, "no revocation happened; make the normal phases longer than the revocation interval")
	}
	if r.After.Goroutines > r.Before.Goroutines+goroutineSlack {
		problems = append(problems, fmt.Sprintf("%d goroutines after the load, %d before", r.After.Goroutines, r.Before.Goroutines))
	}
	if g, ok := r.Growth(); ok && g.Grew() {
		problems = append(problems, fmt.Sprintf("memory grew under load: RSS %.1f → %.1f MiB, heap in use %.1f → %.1f MiB (median of the first third vs the last; slack %+.0f%% and %+.0f MiB)",
			mib(g.RSS[0]), mib(g.RSS[1]), mib(g.Heap[0]), mib(g.Heap[1]), growthSlackRatio*100, mib(growthSlackBytes)))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// goroutineSlack allows for runtime and library goroutines started once
// (timers, the HTTP/2 probe) that are not leaks.
const goroutineSlack = 10

// Growth compares memory early and late under load: the median of the first
// third of the samples with the median of the last third, after leaving out
// the first sixth (at least one sample) as warm-up, when pools and buffers
// fill. Each pair is {first third, last third}.
type Growth struct {
	WarmUp, PerThird int
	RSS, Heap        [2]int64
	// RSSJudged is false where RSS is not measured (0) or is not the
	// process's own (built with -race); the heap is judged alone then.
	RSSJudged bool
}

// Memory has grown when it is beyond both slacks: a ratio for the small
// figures, an absolute amount for noise (GC timing, a busy machine) in the
// large ones. A healthy run stays within a few percent; a leak of one
// buffer per request passes both within seconds at 200 requests/s.
const (
	growthSlackRatio = 0.5
	growthSlackBytes = 20 << 20
	// minGrowthSamples is the fewest samples under load that are judged:
	// one of warm-up and one per third.
	minGrowthSamples = 4
)

// Growth returns the comparison, or false with too few samples to judge.
func (r *Report) Growth() (Growth, bool) {
	n := len(r.Samples)
	if n < minGrowthSamples {
		return Growth{}, false
	}
	g := Growth{WarmUp: max(1, n/6)}
	judged := r.Samples[g.WarmUp:]
	g.PerThird = len(judged) / 3
	first, last := judged[:g.PerThird], judged[len(judged)-g.PerThird:]
	rss := func(s Sample) int64 { return s.RSS }
	heap := func(s Sample) int64 { return int64(s.HeapInUse) }
	g.RSS = [2]int64{median(first, rss), median(last, rss)}
	g.Heap = [2]int64{median(first, heap), median(last, heap)}
	g.RSSJudged = g.RSS[0] > 0 && !raceEnabled
	return g, true
}

// Grew says whether RSS (where judged) or the heap in use grew beyond both
// slacks.
func (g Growth) Grew() bool {
	grew := func(p [2]int64) bool {
		return p[0] > 0 && float64(p[1]) > float64(p[0])*(1+growthSlackRatio) && p[1]-p[0] > growthSlackBytes
	}
	return (g.RSSJudged && grew(g.RSS)) || grew(g.Heap)
}

func median(samples []Sample, v func(Sample) int64) int64 {
	vs := make([]int64, len(samples))
	for i, s := range samples {
		vs[i] = v(s)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// pct is the change from p[0] to p[1] in percent.
func pct(p [2]int64) float64 {
	if p[0] == 0 {
		return 0
	}
	return (float64(p[1])/float64(p[0]) - 1) * 100
}
