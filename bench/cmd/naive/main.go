// Command naive is the baseline a Go programmer writes first: an
// httputil.ReverseProxy on http.DefaultTransport that sets the Authorization
// header and does nothing else. The benchmarks compare orproxy with it.
//
//	naive -addr 127.0.0.1:9000 -upstream http://127.0.0.1:8766 -key sk-or-v1-…
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/internal/loopserve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8766")
	key := flag.String("key", "", "the key sent as Authorization: Bearer (a dummy one for benchmarks)")
	flag.Parse()
	if err := run(*addr, *upstream, *key); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(addr, upstream, key string) error {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream %q is not a URL", upstream)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("Authorization", "Bearer "+key)
	}}
	ln, err := loopserve.Listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return loopserve.Serve(ctx, srv, func() error { return srv.Serve(ln) })
}
