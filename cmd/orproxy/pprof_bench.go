//go:build benchpprof

// Only in builds with -tags benchpprof (bench/run.sh with BENCH_PPROF_PORT):
// net/http/pprof on its own loopback listener named by ORPROXY_PPROF_ADDR,
// for profiles taken under load. The product never serves it.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
)

func init() {
	addr := os.Getenv("ORPROXY_PPROF_ADDR")
	if addr == "" {
		return
	}
	// ORPROXY_MEMPROFILERATE=1 records every allocation, for exact heap profiles.
	if n, err := strconv.Atoi(os.Getenv("ORPROXY_MEMPROFILERATE")); err == nil && n > 0 {
		runtime.MemProfileRate = n
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		os.Exit(1)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		fmt.Fprintln(os.Stderr, "pprof: ORPROXY_PPROF_ADDR must be a loopback address")
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() { _ = http.Serve(ln, mux) }()
}
