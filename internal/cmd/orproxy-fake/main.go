// Command orproxy-fake runs the fakes of OpenRouter (and, later, the broker) as
// processes, for end-to-end tests and the demo. It prints the base URL on its
// first line of output, so a caller can start it on port 0.
//
//	orproxy-fake openrouter [--listen 127.0.0.1:0] [--key sk-or-v1-…]… [--chunk-delay 50ms]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/internal/fakeopenrouter"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "orproxy-fake:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: orproxy-fake openrouter [flags]")
	}
	switch args[0] {
	case "openrouter":
		return runOpenRouter(args[1:])
	default:
		return fmt.Errorf("unknown fake %q (known: openrouter)", args[0])
	}
}

func runOpenRouter(args []string) error {
	fs := flag.NewFlagSet("openrouter", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	delay := fs.Duration("chunk-delay", 0, "pause between SSE events")
	reply := fs.String("reply", "", "assistant reply text")
	var keys []string
	fs.Func("key", "a key valid from the start (repeatable)", func(s string) error {
		keys = append(keys, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	fake := fakeopenrouter.New(fakeopenrouter.Options{Keys: keys, ChunkDelay: *delay, Reply: *reply, MaxRecorded: 10000})
	return serve(*listen, fake.Handler(), func(base string) string { return base + "/api/v1" })
}

// serve listens, prints the URL, and serves until SIGINT or SIGTERM.
func serve(listen string, h http.Handler, urlOf func(base string) string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || !(host == "127.0.0.1" || host == "localhost" || host == "::1") {
		return fmt.Errorf("--listen %q: the fakes listen on loopback only", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Println(urlOf(strings.TrimSuffix(base, "/")))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	return nil
}
