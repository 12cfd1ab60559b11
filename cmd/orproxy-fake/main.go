// Command orproxy-fake runs the fakes of OpenRouter and the credential broker
// as processes, for end-to-end tests and the demo. It prints the base URL on
// its first line of output, so a caller can start it on port 0.
//
//	orproxy-fake openrouter [--listen 127.0.0.1:0] [--key sk-or-v1-…]… [--chunk-delay 50ms]
//	orproxy-fake broker --openrouter-admin http://127.0.0.1:PORT [--listen 127.0.0.1:0]
//	    [--naive-append] [--start-header "Name: value"]… [--missing-headers-status 403]
//	    [--omit-rotated-refresh-token] [--rotate-refresh-tokens] [--key-ttl 720h]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"

	"github.com/orproxy/orproxy/internal/loopserve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orproxy-fake:", err)
		os.Exit(1)
	}
}

const usage = "usage: orproxy-fake openrouter|broker [flags]"

// help is what `orproxy-fake --help` prints.
const help = `orproxy-fake runs a fake of OpenRouter or of the credential broker on
loopback, for end-to-end tests and the demo. It prints its base URL on the
first line of output and serves until interrupted.

  orproxy-fake openrouter [--listen 127.0.0.1:0] [--key sk-or-v1-…]… [--chunk-delay 50ms]
  orproxy-fake broker --openrouter-admin http://127.0.0.1:PORT [--listen 127.0.0.1:0] …

Run "orproxy-fake openrouter --help" or "orproxy-fake broker --help" for the flags.
`

// run serves the fake named by args[0] until ctx ends. Asking for help is
// not an error: the help goes to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	var err error
	switch args[0] {
	case "-h", "-help", "--help", "help":
		_, err = io.WriteString(stdout, help)
		return err
	case "openrouter":
		err = runOpenRouter(ctx, args[1:], stdout)
	case "broker":
		err = runBroker(ctx, args[1:], stdout)
	default:
		return fmt.Errorf("unknown fake %q (known: openrouter, broker; --help says more)", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlagSet is a flag set whose --help goes to stdout; a flag error is
// returned whole, for main to print once.
func newFlagSet(name, what string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: orproxy-fake %s [flags]\n\n%s\n\nFlags:\n", name, what)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

func runOpenRouter(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("openrouter", "A fake OpenRouter API (chat, Responses, Messages, /key, /models, /auth) at <URL>/api/v1.", stdout)
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
	fake := openrouter.New(openrouter.Options{Keys: keys, ChunkDelay: *delay, Reply: *reply, MaxRecorded: 10000})
	return serve(ctx, *listen, fake.Handler(), stdout, func(base string) string { return base + "/api/v1" })
}

func runBroker(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("broker", "A fake credential broker that mints and revokes keys at the fake OpenRouter given by --openrouter-admin.", stdout)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	admin := fs.String("openrouter-admin", "", "base URL of the fake OpenRouter that mints and revokes keys (required)")
	var opts broker.Options
	fs.BoolVar(&opts.NaiveAppend, "naive-append", false, `append "?code=…" to return_to without parsing it`)
	fs.BoolVar(&opts.ExactReturnTo, "exact-return-to", false, "refuse (400) a return_to other than exactly http://127.0.0.1:<port>/callback, one with ?state=… included")
	fs.Func("start-header", `a "Name: value" header the start page requires (repeatable)`, func(s string) error {
		opts.StartHeaders = append(opts.StartHeaders, s)
		return nil
	})
	fs.IntVar(&opts.MissingHeadersStatus, "missing-headers-status", 403, "answer to a start request without the headers: 403 or 200 (HTML page)")
	fs.BoolVar(&opts.OmitRotatedRefreshToken, "omit-rotated-refresh-token", false, "leave broker_refresh_token out of rotate answers")
	fs.BoolVar(&opts.RotateRefreshTokens, "rotate-refresh-tokens", false, "issue a new refresh token on every rotation")
	fs.DurationVar(&opts.KeyTTL, "key-ttl", broker.DefaultKeyTTL, "lifetime of issued keys; negative for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *admin == "" {
		return errors.New("broker: --openrouter-admin is required (the URL the openrouter fake printed)")
	}
	// Accept the URL the openrouter fake prints (…/api/v1) as well as its origin.
	base := strings.TrimSuffix(strings.TrimSuffix(*admin, "/"), "/api/v1")
	opts.Issuer = &openrouter.AdminClient{BaseURL: base}
	fake, err := broker.New(opts)
	if err != nil {
		return err
	}
	return serve(ctx, *listen, fake.Handler(), stdout, func(base string) string { return base })
}

// serve listens, prints the URL, and serves until ctx ends.
func serve(ctx context.Context, listen string, h http.Handler, stdout io.Writer, urlOf func(base string) string) error {
	ln, err := loopserve.Listen(listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if _, err := fmt.Fprintln(stdout, urlOf(strings.TrimSuffix(base, "/"))); err != nil {
		_ = ln.Close()
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return loopserve.Serve(ctx, srv, func() error { return srv.Serve(ln) })
}
