package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/daemon"
	"github.com/orproxy/orproxy/internal/logging"
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
			return service.RunServe(ctx, drain, func(ctx context.Context) error {
				return daemon.Run(ctx, cfg.Config, daemon.Options{Logger: log, Scrubber: scrubber, DrainTimeout: drain})
			})
		},
	}
	addServeFlags(cmd)
	return cmd
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
