package soak

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
)

// TestShortSoak is the soak in about fifteen seconds, with the race detector
// in `make test`: steady JSON and SSE load from 64 clients through every
// phase, briefly. Normal phases revoke the key behind the daemon's back every
// second and nothing may fail; in the dead-key phase requests get the 401
// that names the broker and the broker is asked no more than the backoff
// allows; after the heal requests succeed again within 30 s; a burst of
// 429s reaches the clients with its headers and rotates nothing; stalled
// clients are cut at limits.body_read_timeout (1 s here) while the load
// succeeds. The goroutines come back down once the load stops, and memory
// under load does not grow (sampled every 500 ms so there are enough
// samples to judge). `make soak` runs the long version.
func TestShortSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Phases: []Phase{
			{PhaseNormal, 2500 * time.Millisecond},
			{PhaseDeadKey, 2500 * time.Millisecond},
			{PhaseHeal, 1500 * time.Millisecond},
			{PhaseBurst429, 1500 * time.Millisecond},
			{PhaseSlowClients, 2500 * time.Millisecond},
			{PhaseNormal, 2500 * time.Millisecond},
		},
		Clients:         64,
		Rate:            100,
		RevokeEvery:     time.Second,
		SampleEvery:     500 * time.Millisecond,
		BodyReadTimeout: time.Second,
		SlowClients:     4,
		// The progress line reads counters the load is updating: under
		// -race, this proves it does so safely.
		Progress: io.Discard,
	})
	require.NoError(t, err)
	rep.Print(os.Stderr)
	require.NoError(t, rep.OK())
	require.Len(t, rep.Phases, 6)
	assert.GreaterOrEqual(t, rep.Revocations, 2)
	dead, heal, burst, slow := rep.Phases[1], rep.Phases[2], rep.Phases[3], rep.Phases[4]
	assert.Positive(t, dead.Explained401, "dead-key: 401s that name the broker")
	assert.GreaterOrEqual(t, dead.BrokerCalls, auth.FailuresBeforeBackoff, "dead-key: the daemon tried the broker")
	assert.True(t, heal.Recovered)
	assert.Positive(t, burst.Limited429, "429s with their headers")
	assert.Positive(t, slow.Slow.By408+slow.Slow.ByClose, "stalled clients cut")
	if _, ok := rep.Growth(); !ok {
		t.Fatalf("growth not judged: %d samples under load", len(rep.Samples))
	}
}

// TestGrowthFailsTheRun checks the growth verdict on made-up samples: noise
// and a bump in the warm-up pass, steady growth past both slacks fails,
// growth past only one of them passes, and too few samples are not judged.
// The table's figures are both RSS and heap, so that a -race build, which
// judges the heap alone, gives the same verdicts.
func TestGrowthFailsTheRun(t *testing.T) {
	const mb = 1 << 20
	report := func(mem ...int64) *Report {
		r := &Report{Sent: 1, Revocations: 1, Rotations: 1, DaemonRotations: 1}
		for i, m := range mem {
			r.Samples = append(r.Samples, Sample{At: time.Duration(i+1) * time.Second, RSS: m * mb, HeapInUse: uint64(m) * mb})
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		rss   []int64
		fails bool
	}{
		{"flat with noise", []int64{12, 18, 17, 18, 19, 17, 18, 18, 17, 19, 18, 18}, false},
		{"a bump in the warm-up only", []int64{80, 90, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18}, false},
		{"one outlier late", []int64{18, 18, 18, 18, 18, 18, 18, 18, 18, 90, 18, 18}, false},
		{"grows past both slacks", []int64{18, 18, 20, 22, 24, 28, 32, 36, 40, 44, 48, 52}, true},
		{"+30 MiB but under +50%", []int64{100, 100, 100, 100, 100, 110, 115, 120, 125, 130, 130, 130}, false},
		{"+80% but under +20 MiB", []int64{10, 10, 10, 10, 10, 12, 14, 16, 17, 18, 18, 18}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := report(tc.rss...)
			g, ok := r.Growth()
			if !ok {
				t.Fatal("not judged")
			}
			if g.Grew() != tc.fails {
				t.Fatalf("Grew() = %v, want %v (%+v)", g.Grew(), tc.fails, g)
			}
			err := r.OK()
			if (err != nil) != tc.fails {
				t.Fatalf("OK() = %v, want failing %v", err, tc.fails)
			}
			var out strings.Builder
			r.Print(&out)
			verdict := "no growth"
			if tc.fails {
				verdict = "GREW"
				if !strings.Contains(err.Error(), "memory grew under load") {
					t.Errorf("OK() = %v", err)
				}
			}
			if !strings.Contains(out.String(), verdict) {
				t.Errorf("the report does not say %q:\n%s", verdict, out.String())
			}
		})
	}

	// The heap and RSS are judged each on its own; RSS not with -race.
	r := report(20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20)
	for i := range r.Samples {
		r.Samples[i].HeapInUse = uint64(4+i*5) * mb
	}
	if g, _ := r.Growth(); !g.Grew() {
		t.Errorf("heap growth from 4 to 59 MiB passed: %+v", g)
	}
	r = report(18, 18, 20, 22, 24, 28, 32, 36, 40, 44, 48, 52)
	for i := range r.Samples {
		r.Samples[i].HeapInUse = 4 * mb
	}
	if g, _ := r.Growth(); g.Grew() != !raceEnabled || g.RSSJudged != !raceEnabled {
		t.Errorf("RSS growth from 18 to 52 MiB with a flat heap: Grew() = %v, built with -race %v", g.Grew(), raceEnabled)
	}

	r = report(18, 30, 60)
	if _, ok := r.Growth(); ok {
		t.Error("three samples were judged")
	}
	if err := r.OK(); err != nil {
		t.Errorf("OK() = %v with too few samples to judge", err)
	}
	var out strings.Builder
	r.Print(&out)
	if !strings.Contains(out.String(), "not judged") {
		t.Errorf("the report does not say growth was not judged:\n%s", out.String())
	}
}

// TestAllowedBrokerCalls: three at once, then one per backoff window begun
// (windows of 1 s doubling to 30 s, from the phase's start).
func TestAllowedBrokerCalls(t *testing.T) {
	for _, tc := range []struct {
		within time.Duration
		want   int
	}{
		{0, 3},
		{500 * time.Millisecond, 4},    // window [0, 1 s)
		{time.Second, 4},               // the next begins at 1 s
		{2500 * time.Millisecond, 5},   // [1 s, 3 s)
		{3500 * time.Millisecond, 6},   // [3 s, 7 s)
		{27 * time.Second, 8},          // [15 s, 31 s)
		{31500 * time.Millisecond, 9},  // [31 s, 61 s): the cap of 30 s
		{90 * time.Second, 10},         // [61 s, 91 s)
		{91500 * time.Millisecond, 11}, // [91 s, 121 s)
	} {
		assert.Equal(t, tc.want, AllowedBrokerCalls(tc.within), "within %s", tc.within)
	}
}

// TestPhaseVerdicts judges made-up phases: each passes as the contract
// says, and each way of breaking it fails with a reason, which OK reports
// with the phase.
func TestPhaseVerdicts(t *testing.T) {
	const timeout = 2 * time.Second
	normal := PhaseReport{Kind: PhaseNormal, Sent: 100, OK: 100, Revocations: 2, BrokerCalls: 2, BrokerAllowed: -1}
	dead := PhaseReport{Kind: PhaseDeadKey, Sent: 100, OK: 2, Explained401: 98, BrokerCalls: 5, BrokerAllowed: 5}
	heal := PhaseReport{Kind: PhaseHeal, Sent: 100, OK: 90, Explained401: 10, BrokerCalls: 1, BrokerAllowed: 1,
		Recovered: true, Recovery: 29 * time.Second}
	burst := PhaseReport{Kind: PhaseBurst429, Sent: 100, OK: 60, Limited429: 40, Burst: 40, DaemonRateLimited: 40, BrokerAllowed: -1}
	slow := PhaseReport{Kind: PhaseSlowClients, Sent: 100, OK: 100, BrokerAllowed: -1,
		Slow: SlowReport{Clients: 8, Attempts: 8, By408: 7, ByClose: 1, MinCut: 2010 * time.Millisecond, MaxCut: 2900 * time.Millisecond}}
	with := func(p PhaseReport, change func(*PhaseReport)) PhaseReport {
		change(&p)
		return p
	}
	for _, tc := range []struct {
		name       string
		phase      PhaseReport
		unexpected int64
		want       []string // the problems, by a part of each; none: it passes
	}{
		{"normal", normal, 0, nil},
		{"normal with a failure", with(normal, func(p *PhaseReport) { p.OK, p.Other = 99, 1 }), 1, []string{"1 of 100 requests failed"}},
		{"normal with a 401 naming the broker", with(normal, func(p *PhaseReport) { p.OK, p.Explained401 = 99, 1 }), 1, []string{"1 of 100 requests failed"}},
		{"normal, a revocation not rotated", with(normal, func(p *PhaseReport) { p.BrokerCalls = 1 }), 0, []string{"2 revocations but 1 broker rotations"}},
		{"normal, nothing sent", with(normal, func(p *PhaseReport) { p.Sent, p.OK = 0, 0 }), 0, []string{"no request ended"}},

		{"dead-key", dead, 0, nil},
		{"dead-key, one call past the backoff", with(dead, func(p *PhaseReport) { p.BrokerCalls = 6 }), 0, []string{"asked the broker 6 times; its backoff allows 5"}},
		{"dead-key, a 401 that does not explain", with(dead, func(p *PhaseReport) { p.Explained401, p.Other = 97, 1 }), 1, []string{"1 requests failed otherwise than with orproxy's 401"}},
		{"dead-key, a 429", with(dead, func(p *PhaseReport) { p.Explained401, p.Limited429 = 97, 1 }), 1, []string{"failed otherwise"}},
		{"dead-key without a 401", with(dead, func(p *PhaseReport) { p.OK, p.Explained401 = 100, 0 }), 0, []string{"no request got the 401"}},

		{"heal within 30 s", heal, 0, nil},
		{"heal after 31 s", with(heal, func(p *PhaseReport) { p.Recovery = 31 * time.Second }), 0, []string{"only 31s after the broker healed"}},
		{"heal never", with(heal, func(p *PhaseReport) { p.Recovered = false }), 0, []string{"did not succeed again"}},
		{"heal, calls past the backoff", with(heal, func(p *PhaseReport) { p.BrokerCalls = 2 }), 0, []string{"asked the broker 2 times; its backoff allows 1"}},

		{"429 burst", burst, 0, nil},
		{"429 without its headers", with(burst, func(p *PhaseReport) { p.Limited429, p.Other = 39, 1 }), 1,
			[]string{"1 requests failed otherwise than with OpenRouter's 429", "answered 40 requests with 429 but clients got 39", "/status counted 40 rate-limited requests, clients got 39"}},
		{"429 burst swallowed", with(burst, func(p *PhaseReport) { p.OK, p.Limited429, p.DaemonRateLimited = 70, 30, 30 }), 0,
			[]string{"answered 40 requests with 429 but clients got 30"}},
		{"429 not counted by /status", with(burst, func(p *PhaseReport) { p.DaemonRateLimited = 0 }), 0, []string{"/status counted 0"}},
		{"429 rotates", with(burst, func(p *PhaseReport) { p.BrokerCalls = 1 }), 0, []string{"1 broker rotations though no key was revoked"}},

		{"slow clients", slow, 0, nil},
		{"slow client cut late", with(slow, func(p *PhaseReport) { p.Slow.MaxCut = 3100 * time.Millisecond }), 0, []string{"cut after 2.01s–3.1s"}},
		{"slow client cut early", with(slow, func(p *PhaseReport) { p.Slow.MinCut = time.Second }), 0, []string{"cut after 1s–2.9s"}},
		{"slow client never cut", with(slow, func(p *PhaseReport) { p.Slow.Problems = []string{"still connected 6s after it stalled"} }), 0,
			[]string{"stalled client: still connected"}},
		{"no slow client cut", with(slow, func(p *PhaseReport) { p.Slow = SlowReport{Clients: 8} }), 0, []string{"no stalled client was cut"}},
		{"slow clients, a request failed", with(slow, func(p *PhaseReport) { p.OK, p.Other = 99, 1 }), 1, []string{"1 of 100 requests failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.unexpected, tc.phase.Unexpected())
			problems := tc.phase.judge(timeout)
			require.Len(t, problems, len(tc.want), "%q", problems)
			for i, w := range tc.want {
				assert.Contains(t, problems[i], w)
			}
			r := &Report{Sent: 1, Revocations: 1, Phases: []PhaseReport{tc.phase}}
			r.Phases[0].Problems = problems
			err := r.OK()
			if len(tc.want) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "phase 1 ("+string(tc.phase.Kind)+"): "+problems[0])
		})
	}
}
