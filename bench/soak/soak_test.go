package soak

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestShortSoak is the soak in a few seconds, with the race detector in
// `make test`: steady JSON and SSE load from 64 clients while the key is
// revoked behind the daemon's back every 1.5 s. Nothing may fail, every
// revocation is followed by exactly one rotation, the goroutines come back
// down once the load stops, and memory under load does not grow (sampled
// every 500 ms so there are enough samples to judge). `make soak` runs the
// long version.
func TestShortSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Duration:    6 * time.Second,
		Clients:     64,
		Rate:        100,
		RevokeEvery: 1500 * time.Millisecond,
		SampleEvery: 500 * time.Millisecond,
		// The progress line reads counters the load is updating: under
		// -race, this proves it does so safely.
		Progress: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.Print(os.Stderr)
	if err := rep.OK(); err != nil {
		t.Fatal(err)
	}
	if rep.Revocations < 2 {
		t.Fatalf("only %d revocations", rep.Revocations)
	}
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
