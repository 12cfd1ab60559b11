// Command relay forwards TCP connections on loopback with a fixed delay in
// each direction, so that a benchmark on one machine sees the round trips
// of a distant server:
//
//	relay -listen 127.0.0.1:8443 -target 127.0.0.1:8444 -one-way 25ms
//
// is a 50 ms round trip. -handshake also delays each connection's first
// bytes by a round trip, as a TCP handshake over the link would.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/orproxy/orproxy/bench/internal/relay"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	target := flag.String("target", "", "address to relay to (required)")
	oneWay := flag.Duration("one-way", 0, "delay of each direction")
	handshake := flag.Bool("handshake", false, "delay each connection's first bytes by a round trip more, as a TCP handshake would")
	flag.Parse()
	if *target == "" || *oneWay < 0 {
		flag.Usage()
		os.Exit(2)
	}
	r, err := relay.Start(relay.Options{Listen: *listen, Target: *target, OneWay: *oneWay, Handshake: *handshake})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(r.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = r.Close()
}
