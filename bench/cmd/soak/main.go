// Command soak loads orproxy for a while through key revocations and reports
// failures, rotations, latency, goroutines and memory; it exits 1 when a
// request failed, a revocation did not get exactly one rotation, the
// goroutines did not come back down, or memory grew under steady load.
// `make soak` runs it for ten minutes.
//
//	soak [-duration 60s] [-clients 64] [-rate 200] [-stream-every 2] [-revoke-every 5s] [-sample-every 5s]
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
	flag.DurationVar(&o.Duration, "duration", time.Minute, "how long to load the proxy")
	flag.IntVar(&o.Clients, "clients", 64, "concurrent clients")
	flag.Float64Var(&o.Rate, "rate", 200, "requests per second, all clients together")
	flag.IntVar(&o.StreamEvery, "stream-every", 2, "every n-th request streams (SSE); the others are JSON")
	flag.DurationVar(&o.RevokeEvery, "revoke-every", 5*time.Second, "how often the current key is revoked")
	flag.DurationVar(&o.SampleEvery, "sample-every", 5*time.Second, "how often goroutines and RSS are sampled")
	flag.Parse()
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
