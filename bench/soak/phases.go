package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// PhaseKind names what a phase does to the daemon while the load goes on.
type PhaseKind string

const (
	// PhaseNormal revokes the current key behind the daemon's back every
	// Options.RevokeEvery; the daemon rotates it through the broker and
	// retries. Every request must succeed, and every revocation gets
	// exactly one rotation.
	PhaseNormal PhaseKind = "normal"
	// PhaseDeadKey makes the broker hand out keys OpenRouter rejects (the
	// fake's dead_keys) and revokes the current key: requests get
	// orproxy's 401 that names the broker, and the daemon asks the broker
	// no more often than its backoff allows.
	PhaseDeadKey PhaseKind = "dead-key"
	// PhaseHeal clears the broker's fault: requests must succeed again
	// within RecoveryLimit. It lasts its length, and past it until they do
	// (at most RecoveryLimit and a little).
	PhaseHeal PhaseKind = "heal"
	// PhaseBurst429 makes the fake OpenRouter answer a burst of chat
	// requests (a quarter of the phase's at the set rate) with its
	// rate limiter's 429: clients get it with Retry-After and the
	// X-RateLimit-* headers, and no key is rotated.
	PhaseBurst429 PhaseKind = "429-burst"
	// PhaseSlowClients adds Options.SlowClients clients that announce a
	// body, send part of it and stall: the daemon must cut each at
	// limits.body_read_timeout (a 408, or the connection closed) while the
	// load's requests all succeed.
	PhaseSlowClients PhaseKind = "slow-clients"
)

// Phase is one stretch of the run.
type Phase struct {
	Kind   PhaseKind
	Length time.Duration
}

// DefaultPhases is the plan of a run of d: normal 30 %, dead-key 15 %,
// heal 15 %, 429 burst 10 %, slow clients 15 %, normal 15 %.
func DefaultPhases(d time.Duration) []Phase {
	plan := []struct {
		kind  PhaseKind
		share float64
	}{
		{PhaseNormal, .30}, {PhaseDeadKey, .15}, {PhaseHeal, .15},
		{PhaseBurst429, .10}, {PhaseSlowClients, .15}, {PhaseNormal, .15},
	}
	phases := make([]Phase, len(plan))
	for i, p := range plan {
		phases[i] = Phase{p.kind, time.Duration(float64(d) * p.share).Round(100 * time.Millisecond)}
	}
	return phases
}

// The contract's limits.
const (
	// RecoveryLimit is how soon after the broker heals requests must
	// succeed again: the longest backoff window.
	RecoveryLimit = 30 * time.Second
	// SlowCutGrace is how long after limits.body_read_timeout a stalled
	// client may still be connected.
	SlowCutGrace = time.Second
	// slowCutEarly is how much before limits.body_read_timeout a cut counts
	// as the timeout's all the same (clock granularity).
	slowCutEarly = 100 * time.Millisecond
	// recoveryQuiet is how long requests must all succeed before the heal
	// phase counts them as recovered and may end.
	recoveryQuiet = time.Second
)

// The daemon's broker backoff (auth.ManagerOptions defaults, which the
// config does not set): after auth.FailuresBeforeBackoff failed rotations in
// a row, attempts wait 1 s, doubling up to 30 s.
const (
	backoffBase = time.Second
	backoffMax  = 30 * time.Second
)

// AllowedBrokerCalls is how many rotations the daemon may ask of a broker
// that hands out only dead keys within t of the first:
// auth.FailuresBeforeBackoff at once, then one per backoff window begun
// within t (the call that ends the window in progress may fall just past t).
// The windows are counted from the phase's start, which is before the
// failures that start them, so the allowance is never short.
func AllowedBrokerCalls(t time.Duration) int {
	n := auth.FailuresBeforeBackoff
	for start, w := time.Duration(0), backoffBase; start < t; start, w = start+w, min(w*2, backoffMax) {
		n++
	}
	return n
}

// PhaseReport is what one phase found. Expected failures are the ones its
// fault brings (a 401 naming the broker, a 429 with its headers); any other
// is unexpected and fails the phase.
type PhaseReport struct {
	Kind            PhaseKind
	Planned, Length time.Duration
	// Sent counts the requests that ended in the phase (whenever they
	// began): a fault reaches those in flight when it starts.
	Sent, OK int64
	// Explained401 are 401s whose message names the broker;
	// Limited429 are 429s with Retry-After and X-RateLimit-*; Other are
	// all other failures.
	Explained401, Limited429, Other int64
	// Example401, Example429 and Failures are the first of each, for the
	// reader.
	Example401, Example429 string
	Failures               []string
	Revocations            int
	// BrokerCalls counts the broker's rotate calls. BrokerAllowed is the
	// backoff's allowance for a dead-key phase, and for the heal after it
	// what is left of the allowance up to recovery; -1 elsewhere.
	BrokerCalls, BrokerAllowed int
	// CallTimes are the rotate calls' offsets from the phase's start
	// (dead-key and heal).
	CallTimes []time.Duration
	// Recovery is how long after the heal the last failure ended; every
	// request after it succeeded (Recovered).
	Recovery  time.Duration
	Recovered bool
	// Burst is how many 429s the fake was set to answer;
	// DaemonRateLimited is /status requests.rate_limited's growth.
	Burst             int
	DaemonRateLimited int64
	Slow              SlowReport
	// Problems are the phase's failed checks; none means it passed.
	Problems []string
}

// SlowReport is what happened to the stalled clients.
type SlowReport struct {
	Clients, Attempts int
	// By408 were answered 408; ByClose had the connection closed without
	// an answer.
	By408, ByClose int
	MinCut, MaxCut time.Duration
	// Problems are attempts that were not cut as they should have been.
	Problems []string
}

// Unexpected counts the requests that failed in a way the phase does not
// allow.
func (p *PhaseReport) Unexpected() int64 {
	switch p.Kind {
	case PhaseDeadKey, PhaseHeal:
		return p.Other + p.Limited429
	case PhaseBurst429:
		return p.Other + p.Explained401
	}
	return p.Sent - p.OK
}

// judge checks the phase against the contract; bodyTimeout is
// limits.body_read_timeout.
func (p *PhaseReport) judge(bodyTimeout time.Duration) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if p.Sent == 0 {
		add("no request ended in the phase")
	}
	switch p.Kind {
	case PhaseNormal, PhaseSlowClients:
		if n := p.Unexpected(); n > 0 {
			add("%d of %d requests failed", n, p.Sent)
		}
	case PhaseDeadKey, PhaseHeal:
		if n := p.Unexpected(); n > 0 {
			add("%d requests failed otherwise than with orproxy's 401 that names the broker", n)
		}
	case PhaseBurst429:
		if n := p.Unexpected(); n > 0 {
			add("%d requests failed otherwise than with OpenRouter's 429 and its Retry-After and X-RateLimit-* headers", n)
		}
	}
	switch p.Kind {
	case PhaseDeadKey:
		if p.Explained401 == 0 {
			add("no request got the 401 that names the broker: the dead keys did not reach the clients")
		}
	case PhaseHeal:
		switch {
		case !p.Recovered:
			add("requests did not succeed again within the phase (%s after the broker healed)", p.Length.Round(100*time.Millisecond))
		case p.Recovery > RecoveryLimit:
			add("requests succeeded again only %s after the broker healed; the limit is %s", p.Recovery.Round(10*time.Millisecond), RecoveryLimit)
		}
	case PhaseBurst429:
		if int64(p.Burst) != p.Limited429 {
			add("the fake answered %d requests with 429 but clients got %d with Retry-After and X-RateLimit-*", p.Burst, p.Limited429)
		}
		if p.DaemonRateLimited != p.Limited429 {
			add("/status counted %d rate-limited requests, clients got %d 429s", p.DaemonRateLimited, p.Limited429)
		}
	case PhaseSlowClients:
		s := p.Slow
		if s.By408+s.ByClose == 0 {
			add("no stalled client was cut: make the phase longer than limits.body_read_timeout + %s", SlowCutGrace)
		}
		for _, prob := range s.Problems {
			add("stalled client: %s", prob)
		}
		if s.By408+s.ByClose > 0 && (s.MaxCut > bodyTimeout+SlowCutGrace || s.MinCut < bodyTimeout-slowCutEarly) {
			add("stalled clients were cut after %s–%s; limits.body_read_timeout is %s (allowed up to %s more)",
				round(s.MinCut), round(s.MaxCut), bodyTimeout, SlowCutGrace)
		}
	}
	switch {
	case p.BrokerAllowed >= 0:
		if p.BrokerCalls > p.BrokerAllowed {
			add("the daemon asked the broker %d times; its backoff allows %d", p.BrokerCalls, p.BrokerAllowed)
		}
	case p.Revocations == 0 && p.BrokerCalls > 0:
		add("%d broker rotations though no key was revoked", p.BrokerCalls)
	case p.BrokerCalls != p.Revocations:
		add("%d revocations but %d broker rotations", p.Revocations, p.BrokerCalls)
	}
	return problems
}

// phaseStats counts the answers that end while its phase is current.
type phaseStats struct {
	sent, ok, explained, limited, other atomic.Int64
	lastOK, lastFail                    atomic.Int64 // UnixNano of the last to end; 0: none
	revocations                         atomic.Int64
	mu                                  sync.Mutex
	example401, example429              string
	failures                            []string
}

func (p *phaseStats) record(o outcome, at time.Time) {
	p.sent.Add(1)
	if o.ok {
		p.ok.Add(1)
		storeMax(&p.lastOK, at.UnixNano())
		return
	}
	storeMax(&p.lastFail, at.UnixNano())
	var slot *string
	switch {
	case o.status == http.StatusUnauthorized && o.explained:
		p.explained.Add(1)
		slot = &p.example401
	case o.status == http.StatusTooManyRequests && o.limitHeaders:
		p.limited.Add(1)
		slot = &p.example429
	default:
		p.other.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case slot == nil && len(p.failures) < 5:
		p.failures = append(p.failures, o.err.Error())
	case slot != nil && *slot == "":
		*slot = o.err.Error()
	}
}

// recovered reports whether, at now, requests have all succeeded for
// recoveryQuiet since the phase began at start or the last failure.
func (p *phaseStats) recovered(start, now time.Time) bool {
	since := max(p.lastFail.Load(), start.UnixNano())
	return p.lastOK.Load() > since && now.UnixNano()-since >= int64(recoveryQuiet)
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// phaseRun is a phase as it ran.
type phaseRun struct {
	Phase
	stats                       *phaseStats
	start, end                  time.Time
	callsBefore, callsAfter     int
	limitedBefore, limitedAfter int64
	burst                       int
	slow                        *slowStats
}

// runner drives the phases against one daemon and its fakes.
type runner struct {
	opts   Options
	broker *broker.Server
	or     *openrouter.Server
	client *http.Client
	base   string // http://host:port of the daemon
	addr   string // host:port
	load   *load
	calls  *callLog
}

// phase runs ph to its end and returns what it saw; the load keeps running
// across phases.
func (r *runner) phase(ctx context.Context, ph Phase) (*phaseRun, error) {
	pr := &phaseRun{Phase: ph, stats: &phaseStats{}}
	if ph.Kind == PhaseDeadKey {
		// The revocation must hit the key the daemon uses, not one a late
		// rotation is about to replace.
		if err := r.caughtUp(ctx); err != nil {
			return nil, err
		}
	}
	pr.callsBefore = r.broker.Stats().RotateCalls
	if ph.Kind == PhaseBurst429 {
		st, err := daemonStatus(r.client, r.base)
		if err != nil {
			return nil, fmt.Errorf("429 burst: reading /status: %w", err)
		}
		pr.limitedBefore = st.rateLimited
	}
	pr.start = time.Now()
	// Switched before the fault starts, so every answer the fault changes
	// is counted in its phase.
	r.load.enter(pr.stats)
	pctx, cancel := context.WithDeadline(ctx, pr.start.Add(ph.Length))
	defer cancel()
	var wg sync.WaitGroup
	switch ph.Kind {
	case PhaseNormal:
		wg.Go(func() { r.revoke(pctx, pr) })
		<-pctx.Done()
	case PhaseDeadKey:
		r.broker.SetFault(broker.Fault{DeadKeys: true})
		if _, err := r.broker.RevokeCurrentKey(ctx); err != nil {
			return nil, fmt.Errorf("dead-key phase: %w", err)
		}
		<-pctx.Done()
	case PhaseHeal:
		r.broker.SetFault(broker.Fault{})
		r.awaitRecovery(ctx, pr)
	case PhaseBurst429:
		pr.burst = max(1, int(r.opts.Rate*ph.Length.Seconds()/4))
		r.or.SetFault(openrouter.Fault{Status: http.StatusTooManyRequests, StatusTimes: pr.burst, RetryAfter: 2})
		<-pctx.Done()
		// A burst the load did not use up must not spill into the next
		// phase; the count of 429s shows it.
		r.or.SetFault(openrouter.Fault{})
	case PhaseSlowClients:
		pr.slow = &slowStats{SlowReport: SlowReport{Clients: r.opts.SlowClients}}
		end := pr.start.Add(ph.Length)
		for range r.opts.SlowClients {
			wg.Go(func() { r.stall(ctx, pr.slow, end) })
		}
		<-pctx.Done()
	default:
		return nil, fmt.Errorf("unknown phase %q", ph.Kind)
	}
	wg.Wait()
	pr.end = time.Now()
	pr.callsAfter = r.broker.Stats().RotateCalls
	if ph.Kind == PhaseBurst429 {
		st, err := daemonStatus(r.client, r.base)
		if err != nil {
			return nil, fmt.Errorf("429 burst: reading /status: %w", err)
		}
		pr.limitedAfter = st.rateLimited
	}
	return pr, nil
}

// caughtUp waits (up to 5 s) until the broker's current key is not revoked:
// every revocation has had its rotation.
func (r *runner) caughtUp(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := r.broker.Stats()
		if st.CurrentKey == nil || !st.CurrentKey.Revoked {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the daemon did not rotate the last revoked key within 5 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling, bounded
		}
	}
}

// revoke revokes the broker's current key every RevokeEvery, but only once
// the daemon has rotated away from the previous one, and not in the last
// half interval, so every revocation has its rotation within the phase.
func (r *runner) revoke(ctx context.Context, pr *phaseRun) {
	every := r.opts.RevokeEvery
	end, _ := ctx.Deadline()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Until(end) < every/2 {
			return
		}
		if r.broker.Stats().RotateCalls < pr.callsBefore+int(pr.stats.revocations.Load()) {
			continue
		}
		if _, err := r.broker.RevokeCurrentKey(context.Background()); err != nil {
			// Counted as no revocation: the rotation count shows it.
			continue
		}
		pr.stats.revocations.Add(1)
	}
}

// awaitRecovery runs the heal phase: its length, and past it until
// requests have succeeded for recoveryQuiet, but no longer than
// RecoveryLimit and a little after the heal.
func (r *runner) awaitRecovery(ctx context.Context, pr *phaseRun) {
	giveUp := pr.start.Add(RecoveryLimit + recoveryQuiet + 2*time.Second)
	end := pr.start.Add(pr.Length)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		if !now.Before(end) && (pr.stats.recovered(pr.start, now) || !now.Before(giveUp)) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// slowStats collects the stalled clients' attempts.
type slowStats struct {
	mu sync.Mutex
	SlowReport
}

// stall is one slow client: it opens connections that announce a body,
// send part of it and stall, one after another, while an attempt still ends
// before end.
func (r *runner) stall(ctx context.Context, s *slowStats, end time.Time) {
	timeout := r.opts.BodyReadTimeout
	for ctx.Err() == nil && time.Until(end) >= timeout+SlowCutGrace {
		cut, by408, err := stallOnce(r.addr, timeout)
		s.mu.Lock()
		s.Attempts++
		switch {
		case err != nil:
			if len(s.Problems) < 5 {
				s.Problems = append(s.Problems, err.Error())
			}
		default:
			if by408 {
				s.By408++
			} else {
				s.ByClose++
			}
			if s.By408+s.ByClose == 1 {
				s.MinCut, s.MaxCut = cut, cut
			}
			s.MinCut, s.MaxCut = min(s.MinCut, cut), max(s.MaxCut, cut)
		}
		s.mu.Unlock()
	}
}

// slowDeclared is the body length a stalled client announces; it sends
// slowSent of it.
const (
	slowDeclared = 1000
	slowSent     = `{"model":"openai/gpt-4o-mini","messages":[`
)

// stallOnce opens a connection, sends a request's headers and part of its
// body, stalls, and reports how long after its last byte the daemon cut it,
// and whether with a 408 (which must close the connection) or by closing.
func stallOnce(addr string, timeout time.Duration) (cut time.Duration, by408 bool, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, false, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close()
	// Long enough to see a cut that comes late, bounded if none comes.
	_ = conn.SetDeadline(time.Now().Add(timeout + SlowCutGrace + 3*time.Second))
	head := "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/json\r\nAuthorization: Bearer dummy\r\nContent-Length: " +
		fmt.Sprint(slowDeclared) + "\r\n\r\n" + slowSent
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, false, fmt.Errorf("sending the request head: %w", err)
	}
	sent := time.Now()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	cut = time.Since(sent)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return cut, false, fmt.Errorf("still connected %s after it stalled (limits.body_read_timeout %s)", round(cut), timeout)
	case err != nil:
		return cut, false, nil // closed without an answer
	}
	// Read whole: with Connection: close, Close would leave the body in br.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		return cut, false, fmt.Errorf("answered %d, not 408, after %s", resp.StatusCode, round(cut))
	}
	// What is left of the body is still on the wire: the daemon must not
	// read it as another request.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		return cut, true, fmt.Errorf("the connection stayed open after the 408 (read: %v)", err)
	}
	return cut, true, nil
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// callLog notes when the broker's rotate endpoint was called.
type callLog struct {
	mu sync.Mutex
	at []time.Time
}

func (c *callLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/credentials/rotate" {
			c.mu.Lock()
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	})
}

// between returns the calls in [from, to) as offsets from from.
func (c *callLog) between(from, to time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.at {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t.Sub(from))
		}
	}
	return out
}

// report turns the run into its verdict; prev is the phase before (nil for
// the first).
func (pr *phaseRun) report(prev *PhaseReport, calls *callLog, bodyTimeout time.Duration) PhaseReport {
	s := pr.stats
	p := PhaseReport{
		Kind: pr.Kind, Planned: pr.Phase.Length, Length: pr.end.Sub(pr.start),
		Sent: s.sent.Load(), OK: s.ok.Load(),
		Explained401: s.explained.Load(), Limited429: s.limited.Load(), Other: s.other.Load(),
		Revocations: int(s.revocations.Load()),
		BrokerCalls: pr.callsAfter - pr.callsBefore, BrokerAllowed: -1,
		Burst: pr.burst, DaemonRateLimited: pr.limitedAfter - pr.limitedBefore,
	}
	s.mu.Lock()
	p.Example401, p.Example429, p.Failures = s.example401, s.example429, s.failures
	s.mu.Unlock()
	if pr.slow != nil {
		pr.slow.mu.Lock()
		p.Slow = pr.slow.SlowReport
		pr.slow.mu.Unlock()
	}
	switch pr.Kind {
	case PhaseDeadKey:
		p.BrokerAllowed = AllowedBrokerCalls(p.Length)
		p.CallTimes = calls.between(pr.start, pr.end)
	case PhaseHeal:
		if last := s.lastFail.Load(); last > pr.start.UnixNano() {
			p.Recovery = time.Duration(last - pr.start.UnixNano())
		}
		p.Recovered = s.lastOK.Load() > s.lastFail.Load()
		p.CallTimes = calls.between(pr.start, pr.end)
		if prev != nil && prev.Kind == PhaseDeadKey {
			// One backoff from the dead keys to the recovery.
			p.BrokerAllowed = max(0, AllowedBrokerCalls(prev.Length+p.Recovery)-prev.BrokerCalls)
		}
	}
	p.Problems = p.judge(bodyTimeout)
	return p
}
