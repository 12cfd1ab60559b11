// Package daemon wires orproxy's parts from a loaded configuration and runs
// the proxy until its context ends. `orproxy serve` and the system service
// both run it.
package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/version"
	"github.com/orproxy/orproxy/internal/warm"
	"github.com/orproxy/orproxy/login"
	"github.com/orproxy/orproxy/proxy"
	"github.com/orproxy/orproxy/websearch"
)

// Options are what Run needs besides the configuration.
type Options struct {
	Logger   *zap.Logger
	Scrubber *logging.Scrubber
	// DrainTimeout bounds how long open requests may finish after shutdown
	// begins; default 30 s.
	DrainTimeout time.Duration
	// Ready, if set, is called with the listening address once requests are served.
	Ready func(addr net.Addr)
	// WebSearch tunes the model catalogue refresh and cooldowns; zero values
	// take the defaults.
	WebSearch websearch.Options
	// LoginTimeout bounds an automatic login (login.auto_login); default 5 min.
	LoginTimeout time.Duration
	// ConfigFile is the config file in use, which a used-up budget's
	// message tells the user to edit; empty says "orproxy's config file"
	// (a guess could name the wrong one: serve may have been given
	// --config).
	ConfigFile string
}

// Run serves until ctx is done and then shuts down gracefully.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	upstream, err := url.Parse(cfg.Upstream)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	transport, err := proxy.NewUpstreamTransport()
	if err != nil {
		return err
	}
	defer transport.CloseIdleConnections()
	credFile, err := cfg.CredentialsFile()
	if err != nil {
		return fmt.Errorf("find the credential file: %w", err)
	}
	store := auth.NewStore(credFile)
	checked := newStartCheck()
	keys := auth.NewManager(auth.ManagerOptions{
		Store:              store,
		Broker:             brokerFactory(cfg, transport),
		BrokerURL:          cfg.Broker.URL,
		BrokerTimeout:      cfg.Broker.Timeout,
		Check:              keyChecker(cfg.Upstream, transport, checked),
		ValidateOnStart:    cfg.Credentials.ValidateOnStart,
		RotateBeforeExpiry: cfg.Credentials.RotateBeforeExpiry,
		Logger:             log.Named("credentials"),
		Scrubber:           opts.Scrubber,
		AutoLogin:          autoLogin(cfg, store, transport, log.Named("login")),
		LoginTimeout:       opts.LoginTimeout,
		LoginCommand:       loginCommand(cfg),
	})
	// Before anything uses the transport: the keeper counts its dials.
	keeper := warm.New(transport, warm.Options{
		Enabled:   cfg.Keepalive.Enabled,
		RecentUse: cfg.Keepalive.RecentUse,
		Upstream:  cfg.Upstream,
		Key:       keys.UsableKey,
		Logger:    log.Named("keepalive"),
	})

	search, err := websearch.New(websearch.Settings{
		Enabled:       cfg.WebSearch.Enabled,
		Engine:        cfg.WebSearch.Engine,
		MaxResults:    cfg.WebSearch.MaxResults,
		MaxCharacters: cfg.WebSearch.MaxCharacters,
		ExcludeModels: cfg.WebSearch.ExcludeModels,

		MaxTotalResults:   cfg.WebSearch.MaxTotalResults,
		SearchContextSize: cfg.WebSearch.SearchContextSize,
		AllowedDomains:    cfg.WebSearch.AllowedDomains,
		ExcludedDomains:   cfg.WebSearch.ExcludedDomains,
		Messages:          cfg.WebSearch.Messages,
	}, cfg.Upstream, &http.Client{Transport: transport}, log, opts.WebSearch)
	if err != nil {
		return fmt.Errorf("web search: %w", err)
	}

	// The ledger, budgets and key poller (spend.go). Closed last, after the
	// drain, so the rows of the requests that finished during it are written.
	money := openMoney(cfg, opts.ConfigFile, transport, keys, log)
	defer money.close(drainOf(opts))

	host, _, _ := net.SplitHostPort(cfg.Listen)
	handler, err := proxy.NewHandler(proxy.Options{
		Upstream:        upstream,
		Keys:            keys,
		Patcher:         search,
		AccessToken:     secret.New(cfg.AccessToken),
		AllowAnyHost:    !netaddr.IsLoopbackHost(host),
		MaxRequestBody:  int64(cfg.Limits.MaxRequestBody),
		BodyReadTimeout: cfg.Limits.BodyReadTimeout,
		Transport:       keeper.Observe(transport),
		Logger:          log,
		Version:         version.String(),
		Listen:          cfg.Listen,
		Spending:        money.spending(),
		Account:         money.poller,
		RotateOnLimit:   cfg.Credentials.RotateOnLimit,
		Attribution:     attribution(cfg),
		StatusSections: func(doc *statusdoc.Document) {
			money.status(doc)
			doc.WarmConnection = keeper.Status()
		},
	})
	if err != nil {
		return err
	}
	ln, err := proxy.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	keys.Start()
	defer keys.Close()
	money.start(ctx, checked.coming(cfg, keys))
	defer money.halt() // before the key manager closes: the poller asks it
	bg, stopBackground := context.WithCancel(context.Background())
	searchDone := make(chan struct{})
	go func() {
		defer close(searchDone)
		search.Run(bg)
	}()
	keeperDone := make(chan struct{})
	go func() {
		defer close(keeperDone)
		keeper.Run(bg)
	}()
	defer func() {
		stopBackground()
		<-searchDone
		<-keeperDone
	}()
	log.Info("orproxy serving",
		zap.String("listen", "http://"+ln.Addr().String()+"/api/v1"),
		zap.String("upstream", upstream.Redacted()),
		zap.String("credentials", credFile),
		zap.String("version", version.String()))
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	serverOpts := proxy.ServerOptions{DrainTimeout: opts.DrainTimeout, Logger: log}
	return proxy.Serve(ctx, proxy.NewServer(handler, serverOpts), ln, serverOpts)
}

// brokerFactory builds broker clients on the upstream transport, so the
// broker is reached through the same proxy settings and CA file.
func brokerFactory(cfg config.Config, transport http.RoundTripper) func(string) (auth.Rotator, error) {
	return func(baseURL string) (auth.Rotator, error) {
		return auth.NewBrokerClient(baseURL, cfg.Broker.StartHeaders, cfg.Broker.Timeout, transport)
	}
}

// autoLogin runs the login.method login (broker or openrouter) from the
// daemon for login.auto_login, whenever no credential is usable and no
// rotation can bring one. The URL goes to the log, /status and the client's
// 401, and to a browser when one can be opened.
func autoLogin(cfg config.Config, store *auth.Store, transport http.RoundTripper, log *zap.Logger) func(context.Context, func(string)) error {
	if !cfg.Login.AutoLogin {
		return nil
	}
	switch cfg.Login.Method {
	case login.MethodBroker:
		if cfg.Broker.URL == "" {
			return nil
		}
	case login.MethodOpenRouter:
	default:
		// A pasted key needs a terminal; the configuration refuses it.
		return nil
	}
	return func(ctx context.Context, show func(string)) error {
		opts := login.Options{
			Method:               cfg.Login.Method,
			Upstream:             cfg.Upstream,
			HTTP:                 &http.Client{Transport: transport},
			CallbackPort:         cfg.Login.CallbackPort,
			OpenBrowser:          cfg.Login.OpenBrowser,
			ReturnToWithoutState: !cfg.Broker.ReturnToState,
			OnURL:                show,
			Timeout:              time.Until(deadlineOf(ctx)),
			Logger:               log,
		}
		if cfg.Login.Method == login.MethodBroker {
			broker, err := auth.NewBrokerClient(cfg.Broker.URL, cfg.Broker.StartHeaders, cfg.Broker.Timeout, transport)
			if err != nil {
				return err
			}
			opts.Broker = broker
		}
		_, err := login.Run(ctx, store, opts)
		return err
	}
}

// loginCommand is the login a failed automatic login suggests.
func loginCommand(cfg config.Config) string {
	if cfg.Login.AutoLogin && cfg.Login.Method == login.MethodOpenRouter {
		return "`orproxy login --method openrouter`"
	}
	return auth.LoginCommand(cfg.Broker.URL)
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(auth.DefaultLoginTimeout)
}

// keyChecker is the key manager's Check. The first check's outcome goes to
// first, for the key poller.
func keyChecker(upstream string, transport http.RoundTripper, first *startCheck) func(context.Context, secret.Secret) error {
	client := &http.Client{Transport: transport, Timeout: keyCheckTimeout}
	return func(ctx context.Context, key secret.Secret) error {
		// GetKey, not CheckKey: the limit and usage in the answer are the
		// poller's first reading.
		a, err := auth.GetKey(ctx, client, upstream, key)
		first.settle(a, err)
		return err
	}
}
