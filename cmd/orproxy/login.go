package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/tlsenv"
	"github.com/orproxy/orproxy/login"
	"github.com/orproxy/orproxy/service"
)

func newLoginCmd(g *globalFlags, s streams) *cobra.Command {
	var noBrowser, paste, headless, force bool
	var timeout = auth.DefaultLoginTimeout
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and store an OpenRouter key",
		Long: `Log in and store an OpenRouter key in the credential file.

  --method broker      the company broker (default; needs broker.url)
  --method openrouter  your OpenRouter account (OAuth PKCE); --headless to paste a code
  --method key         a key read from standard input (never from the command line)

The browser flows print the URL to open on a line of its own. On a machine
without a browser, open it elsewhere and paste the address the browser ends
on (http://127.0.0.1:…/callback?…) into the waiting command; a pipe works
too. A pasted key must look like an OpenRouter key (sk-or-…); it replaces a
broker login only after you confirm, or with --force, which also stores a
key that OpenRouter could not be asked about.`,
		Example: `  orproxy login                           # through the company broker, in a browser
  orproxy login --no-browser              # on a machine without a browser (SSH)
  orproxy login --method openrouter       # with your OpenRouter account
  orproxy login --method openrouter --headless
  orproxy login --method key < keyfile    # a key you already have
  pbpaste | orproxy login --method key --force`,
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
				Method:       cfg.Login.Method,
				Broker:       broker,
				Upstream:     cfg.Upstream,
				HTTP:         &http.Client{Transport: transport},
				CallbackPort: cfg.Login.CallbackPort,
				OpenBrowser:  cfg.Login.OpenBrowser && !noBrowser,
				// A broker that matches return_to exactly refuses one with
				// a query.
				ReturnToWithoutState: !cfg.Broker.ReturnToState,
				// A pipe is read like a terminal: the address the browser
				// ended on can be piped in without --paste.
				Paste:           paste || isPipe(s.in),
				Force:           force,
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
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, nextStep(cmd.Context(), cfg.Config))
			return nil
		},
	}
	f := cmd.Flags()
	f.String("method", "", "broker, openrouter or key (default login.method, broker)")
	f.BoolVar(&noBrowser, "no-browser", false, "print the URL but do not open a browser (also "+config.EnvNoBrowser+"=1)")
	f.BoolVar(&paste, "paste", false, "also read the final redirect URL from standard input when it is a file (a terminal or pipe always is read)")
	f.BoolVar(&headless, "headless", false, "with --method openrouter: paste the code OpenRouter shows instead of a callback")
	f.BoolVar(&force, "force", false, "with --method key: replace a broker login without asking, and store a key OpenRouter could not be asked about")
	f.DurationVar(&timeout, "timeout", timeout, "give up after this long")
	return cmd
}

// isPipe reports whether r is a pipe (`… | orproxy login`), which the
// login reads for a pasted address as it reads a terminal. One at its end
// already only stops the reading.
func isPipe(r any) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeNamedPipe != 0
}

// nextStep is what to do after a login: start the proxy, or, when one
// already answers, nothing but pointing a tool at it.
func nextStep(ctx context.Context, cfg config.Config) string {
	addr, err := netaddr.DialAddress(cfg.Listen)
	if err != nil {
		addr = cfg.Listen
	}
	base := "http://" + addr + "/api/v1"
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		// listen picks a free port each start: serve says which.
		return "Next: orproxy serve; then point your tool at the http://…/api/v1 address it says it is ready on"
	}
	if healthy(ctx, addr) {
		return fmt.Sprintf("Next: the orproxy running at http://%s uses the new key on its next request; point your tool at %s", addr, base)
	}
	return "Next: orproxy service install, or orproxy serve; then point your tool at " + base
}

// healthy asks addr for /healthz (no token needed), briefly: the login is
// done, this only picks the advice.
func healthy(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return service.CheckHealth(ctx, addr) == nil
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
		Use:     "logout",
		Short:   "Remove the stored credential",
		Example: "  orproxy logout\n  orproxy logout --config ~/work/orproxy.yaml",
		Args:    noArgs,
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
		Use:     "rotate",
		Short:   "Rotate the key through the broker now",
		Example: "  orproxy rotate        # a broker login only; a running daemon picks the new key up by itself",
		Args:    noArgs,
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
