package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/tlsenv"
	"github.com/orproxy/orproxy/login"
)

func newLoginCmd(g *globalFlags, s streams) *cobra.Command {
	var noBrowser, paste, headless bool
	var timeout = auth.DefaultLoginTimeout
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and store an OpenRouter key",
		Long: `Log in and store an OpenRouter key in the credential file.

  --method broker      the company broker (default; needs broker.url)
  --method openrouter  your OpenRouter account (OAuth PKCE); --headless to paste a code
  --method key         a key read from standard input (never from the command line)

The browser flows print the URL to open on a line of its own. On a machine
without a browser, open it elsewhere and paste the final redirect URL here.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadStore(g, cmd, map[string]string{"method": "login.method"})
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %v: give a positive duration such as 5m", timeout)}
			}
			if headless && cfg.Login.Method != login.MethodOpenRouter {
				return usageError{fmt.Errorf("--headless is for --method openrouter")}
			}
			transport, err := tlsenv.Transport()
			if err != nil {
				return err
			}
			var broker *auth.BrokerClient
			if cfg.Broker.URL != "" {
				if broker, err = auth.NewBrokerClient(cfg.Broker.URL, cfg.Broker.StartHeaders, cfg.Broker.Timeout, transport); err != nil {
					return err
				}
			}
			log, err := logging.New(logging.Options{Level: "warn", Format: "console", Output: s.err})
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			// Ctrl-C ends the login through its context instead of killing
			// the process: the key prompt has switched the terminal's echo
			// off, and only a login that returns switches it back on.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = login.Run(ctx, store, login.Options{
				Method:          cfg.Login.Method,
				Broker:          broker,
				Upstream:        cfg.Upstream,
				HTTP:            &http.Client{Transport: transport},
				CallbackPort:    cfg.Login.CallbackPort,
				OpenBrowser:     cfg.Login.OpenBrowser && !noBrowser,
				Paste:           paste,
				Headless:        headless,
				Timeout:         timeout,
				Stdin:           s.in,
				StdinIsTerminal: logging.IsTerminal(s.in),
				Stdout:          s.out,
				Stderr:          s.err,
				Logger:          log,
			})
			if err != nil && ctx.Err() != nil && cmd.Context().Err() == nil {
				return errors.New("login canceled; nothing was stored")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.String("method", "", "broker, openrouter or key (default login.method, broker)")
	f.BoolVar(&noBrowser, "no-browser", false, "print the URL but do not open a browser (also "+config.EnvNoBrowser+"=1)")
	f.BoolVar(&paste, "paste", false, "also accept the final redirect URL pasted on standard input")
	f.BoolVar(&headless, "headless", false, "with --method openrouter: paste the code OpenRouter shows instead of a callback")
	f.DurationVar(&timeout, "timeout", timeout, "give up after this long")
	return cmd
}

// loadStore loads the configuration (with the flags the user set on cmd, by
// config key) and opens the credential store it names.
func loadStore(g *globalFlags, cmd *cobra.Command, flagKeys map[string]string) (*config.Loaded, *auth.Store, error) {
	cfg, err := loadConfig(g, cmd, flagKeys)
	if err != nil {
		return nil, nil, err
	}
	path, err := cfg.CredentialsFile()
	if err != nil {
		return nil, nil, fmt.Errorf("find the credential file: %w", err)
	}
	return cfg, auth.NewStore(path), nil
}

func newLogoutCmd(g *globalFlags, s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the stored credential",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, store, err := loadStore(g, cmd, nil)
			if err != nil {
				return err
			}
			removed, err := store.Remove(cmd.Context())
			if err != nil {
				return err
			}
			if !removed {
				fmt.Fprintf(s.out, "Not logged in: there is no credential file at %s.\n", store.Path())
				return nil
			}
			fmt.Fprintf(s.out, "Logged out: removed %s. A running daemon answers 401 until the next `orproxy login`.\n", store.Path())
			return nil
		},
	}
}

func newRotateCmd(g *globalFlags, s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the key through the broker now",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadStore(g, cmd, nil)
			if err != nil {
				return err
			}
			transport, err := tlsenv.Transport()
			if err != nil {
				return err
			}
			brokerFor := func(url string) (auth.Rotator, error) {
				return auth.NewBrokerClient(url, cfg.Broker.StartHeaders, cfg.Broker.Timeout, transport)
			}
			old, next, err := auth.RotateStored(cmd.Context(), store, brokerFor, cfg.Broker.URL)
			if errors.Is(err, auth.ErrRotatedMeanwhile) {
				fmt.Fprintf(s.out, "Not rotated again: another orproxy process replaced %s with %s a moment ago (in %s).\n", old.APIKey, next.APIKey, store.Path())
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "Rotated: %s replaced by %s in %s. A running daemon uses it on its next request.\n", old.APIKey, next.APIKey, store.Path())
			return nil
		},
	}
}
