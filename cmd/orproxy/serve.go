package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/daemon"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/proxy"
	"github.com/orproxy/orproxy/service"
)

// serveFlags map serve's flags to config keys; flags win over everything.
var serveFlags = map[string]string{
	"listen":     "listen",
	"upstream":   "upstream",
	"broker-url": "broker.url",
	"log-level":  "log.level",
	"log-format": "log.format",
}

func newServeCmd(g *globalFlags, s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy in the foreground until SIGINT or SIGTERM",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g, cmd, serveFlags)
			if err != nil {
				return err
			}
			limitProcs()
			scrubber := &logging.Scrubber{}
			log, err := logging.New(logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format, Output: s.err, Scrubber: scrubber})
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				// After the first signal, a second one ends the process at once.
				<-ctx.Done()
				stop()
			}()
			// Under systemd or launchd, kardianos' Run turns the manager's
			// stop request into the same graceful drain as SIGTERM, and
			// waits for it a little longer than the drain may take.
			drain := proxy.DefaultDrainTimeout
			// A person reading JSON logs on a terminal still gets the one
			// line that says the proxy is ready, as plain text.
			plain := logging.IsTerminal(s.err) && cfg.Log.Format == "json"
			return service.RunServe(ctx, drain, func(ctx context.Context) error {
				return daemon.Run(ctx, cfg.Config, daemon.Options{Logger: log, Scrubber: scrubber, DrainTimeout: drain, ConfigFile: cfg.File,
					Ready: func(addr net.Addr) { announceReady(log, plainOut(plain, s.err), cfg.Config, addr) }})
			})
		},
		Example: `  orproxy serve                         # on 127.0.0.1:8765, until Ctrl-C
  orproxy serve --listen 127.0.0.1:9000
  ORPROXY_BROKER_URL=https://broker.example orproxy serve --log-level debug`,
	}
	addServeFlags(cmd)
	return cmd
}

// serveProcs is how many threads run the daemon's Go code at once. With
// more, each request's hand-offs between net/http's goroutines wake idle
// threads that spin looking for work: at 2 the proxy spent about 30 % more
// CPU per request, for no more throughput (bench/README.md). One thread
// serves thousands of requests a second, far beyond what one person's
// tools send.
const serveProcs = 1

// limitProcs applies serveProcs, unless GOMAXPROCS is set: the runtime has
// read it already, and the person who set it chose.
func limitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(serveProcs)
	}
}

func plainOut(on bool, w io.Writer) io.Writer {
	if on {
		return w
	}
	return nil
}

// announceReady says in one line that the proxy serves: where to point a
// client, the key it sends (redacted) or what to do without one, and
// whether web search is added. plain, when set, gets the line as text too.
func announceReady(log *zap.Logger, plain io.Writer, cfg config.Config, addr net.Addr) {
	host := addr.String()
	if a, err := netaddr.DialAddress(host); err == nil {
		host = a
	}
	base := "http://" + host + "/api/v1"
	credential, key := "no credential: run "+auth.LoginCommand(cfg.Broker.URL), ""
	if file, err := cfg.CredentialsFile(); err == nil {
		switch c := auth.Describe(auth.NewStore(file), cfg.Broker.URL); {
		case c.Usable:
			credential, key = "key "+c.Key, c.Key
		case c.LoggedIn || c.FileError != "":
			credential, key = "no usable credential: "+c.Problem, c.Key
		}
	}
	search := "off"
	if cfg.WebSearch.Enabled {
		search = "on"
	}
	line := fmt.Sprintf("orproxy ready: %s, %s, web search %s", base, credential, search)
	log.Info(line, zap.String("base_url", base), zap.String("key", key), zap.Bool("web_search", cfg.WebSearch.Enabled))
	if plain != nil {
		fmt.Fprintln(plain, line)
	}
}

// addServeFlags defines the flags of serveFlags, for serve and for `config
// show`, which shows what serve would run with.
func addServeFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("listen", "", "address to listen on (default 127.0.0.1:8765; env ORPROXY_LISTEN)")
	f.String("upstream", "", "OpenRouter API base URL (default https://openrouter.ai/api/v1; env ORPROXY_UPSTREAM)")
	f.String("broker-url", "", "credential broker base URL (env ORPROXY_BROKER_URL)")
	f.String("log-level", "", "debug, info, warn or error (default info)")
	f.String("log-format", "", "auto, console or json (default auto)")
}
