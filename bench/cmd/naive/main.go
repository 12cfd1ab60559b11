// Command naive is the baseline a Go programmer writes first: an
// httputil.ReverseProxy on http.DefaultTransport that sets the Authorization
// header and does nothing else. The benchmarks compare orproxy with it.
//
// With -tuned it is instead the least net/http can do as a proxy: the same
// ReverseProxy on orproxy's transport (proxy.NewUpstreamTransport: a pool of
// idle upstream connections instead of Go's default 2, 2 KiB buffers, no
// compression) with 2 KiB copy buffers, run on one thread as `orproxy
// serve` is. What orproxy costs above it is orproxy's own work.
//
//	naive -addr 127.0.0.1:9000 -upstream http://127.0.0.1:8766 -key sk-or-v1-… [-tuned]
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
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/internal/loopserve"
	"github.com/orproxy/orproxy/proxy"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8766")
	key := flag.String("key", "", "the key sent as Authorization: Bearer (a dummy one for benchmarks)")
	tuned := flag.Bool("tuned", false, "orproxy's transport and buffer settings, one thread")
	flag.Parse()
	if err := run(*addr, *upstream, *key, *tuned); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(addr, upstream, key string, tuned bool) error {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream %q is not a URL", upstream)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("Authorization", "Bearer "+key)
	}}
	if tuned {
		// orproxy's own transport, so that the floor follows any change to
		// its settings; it is a plain *http.Transport.
		t, err := proxy.NewUpstreamTransport()
		if err != nil {
			return err
		}
		rp.Transport = t
		rp.BufferPool = smallBuffers{}
		runtime.GOMAXPROCS(1)
	}
	ln, err := loopserve.Listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return loopserve.Serve(ctx, srv, func() error { return srv.Serve(ln) })
}

// smallBuffers hands ReverseProxy 2 KiB copy buffers, the size of proxy's
// own (unexported) pool.
type smallBuffers struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 2<<10); return &b }}

func (smallBuffers) Get() []byte  { return *buffers.Get().(*[]byte) }
func (smallBuffers) Put(b []byte) { buffers.Put(&b) }
