// Command soak loads orproxy for a while through key revocations and faults,
// phase by phase (normal, dead-key, heal, 429 burst, slow clients, normal),
// and reports each phase's figures and verdict, latency, goroutines and
// memory; it exits 1 when a phase failed its checks (see bench/README.md),
// the goroutines did not come back down, or memory grew under load.
// `make soak` runs it for ten minutes.
//
//	soak [-duration 60s] [-faults=true] [-clients 64] [-rate 200] [-stream-every 2] [-revoke-every 5s]
//	     [-sample-every 5s] [-body-read-timeout 2s] [-slow-clients 8]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/bench/soak"
)

func main() {
	var o soak.Options
	faults := flag.Bool("faults", true, "run the fault phases; false: one normal phase (revocations only)")
	flag.DurationVar(&o.Duration, "duration", time.Minute, "how long to load the proxy, all phases together (the heal phase may add up to 30 s)")
	flag.IntVar(&o.Clients, "clients", 64, "concurrent clients")
	flag.Float64Var(&o.Rate, "rate", 200, "requests per second, all clients together")
	flag.IntVar(&o.StreamEvery, "stream-every", 2, "every n-th request streams (SSE); the others are JSON")
	flag.DurationVar(&o.RevokeEvery, "revoke-every", 5*time.Second, "how often the current key is revoked in normal phases")
	flag.DurationVar(&o.SampleEvery, "sample-every", 5*time.Second, "how often goroutines and RSS are sampled")
	flag.DurationVar(&o.BodyReadTimeout, "body-read-timeout", 2*time.Second, "the daemon's limits.body_read_timeout (1s–1h)")
	flag.IntVar(&o.SlowClients, "slow-clients", 8, "stalled clients in the slow-clients phase")
	flag.Parse()
	if !*faults {
		o.Phases = []soak.Phase{{Kind: soak.PhaseNormal, Length: o.Duration}}
	}
	o.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %d CPUs, %s %s/%s\n", host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	rep, err := soak.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	rep.Print(os.Stdout)
	if err := rep.OK(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("PASS")
}
