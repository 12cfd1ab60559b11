// Package login runs `orproxy login`'s interactive flows (through the company
// broker, OpenRouter's own PKCE login, a pasted key) and stores what they
// yield in the auth.Store; the daemon's automatic login runs the broker or
// OpenRouter flow.
package login

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/humantime"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/secret"
)

// Login methods, the values of Options.Method and login.method.
const (
	MethodBroker     = "broker"
	MethodOpenRouter = "openrouter"
	MethodKey        = "key"
)

// Options configure Run. Zero values are usable defaults, except that
// the broker method needs Broker and the other two need Upstream.
type Options struct {
	// Method is broker (the default when empty), openrouter or key.
	Method string
	// Broker is the configured broker; nil when none is, which makes the
	// broker method fail with a hint.
	Broker *auth.BrokerClient
	// Upstream is OpenRouter's API base, e.g. https://openrouter.ai/api/v1.
	// The PKCE consent page is its origin plus /auth.
	Upstream string
	// HTTP calls OpenRouter (/auth/keys, /key); nil means a default client.
	// Each call is bounded to 30 s regardless.
	HTTP *http.Client
	// CallbackPort fixes the callback server's port; 0 picks a free one.
	CallbackPort int
	// OpenBrowser opens the login page in a browser, unless this is an SSH
	// session or there is no display.
	OpenBrowser bool
	// Paste accepts the final redirect address on Stdin even when Stdin is
	// not a terminal: --paste, or Stdin is a pipe. A terminal always may.
	// Input that ends (a closed pipe, /dev/null) only stops the reading:
	// the browser can still answer.
	Paste bool
	// Force, for the key method, stores a key OpenRouter could not be
	// asked about, and replaces a broker login without asking.
	Force bool
	// Headless uses OpenRouter's headless mode (method openrouter): no
	// callback, the user pastes the code the page shows.
	Headless bool
	// ReturnToWithoutState sends the broker a return_to without the
	// ?state= query (broker.return_to_state: false), for a broker that
	// compares it with its registered address exactly. The callback server
	// then takes the first code that reaches it within the timeout.
	ReturnToWithoutState bool
	// KeyLabel names the key OpenRouter's login issues (its key_label), so
	// the user can tell it apart in OpenRouter's settings; empty means
	// DefaultKeyLabel.
	KeyLabel string
	// Timeout bounds the wait for the browser or the user; zero means 5m.
	Timeout time.Duration
	// Stdin supplies pasted addresses, codes and keys. Run may leave one
	// read of it pending when it returns (a blocked read cannot be
	// abandoned); whatever that read returns is discarded.
	Stdin           io.Reader
	StdinIsTerminal bool
	// Stdout gets the address to open, on a line of its own, and the final
	// result; Stderr gets guidance and warnings. Nil discards.
	Stdout, Stderr io.Writer
	// OnURL, when set, also receives the address to open (a daemon puts it
	// in its log and /status).
	OnURL func(url string)
	// OpenURL replaces the browser opener, for tests: it is called whenever
	// OpenBrowser is set, display or not. Nil means OpenBrowser.
	OpenURL func(ctx context.Context, url string) error
	// Logger gets diagnostics, secrets only in redacted form; nil discards.
	Logger *zap.Logger

	getenv func(string) string // tests
}

// Run runs the login flow of opts.Method and stores the credential it
// yields in store. It returns only after the credential is saved, and
// returns what was saved.
func Run(ctx context.Context, store *auth.Store, opts Options) (*auth.Credential, error) {
	l, err := newFlow(store, opts)
	if err != nil {
		return nil, err
	}
	defer l.stop()
	if l.opts.Headless && l.opts.Method != MethodOpenRouter {
		return nil, errors.New("--headless works with --method openrouter only")
	}
	switch l.opts.Method {
	case MethodBroker:
		return l.broker(ctx)
	case MethodOpenRouter:
		if l.opts.Headless {
			return l.openRouterHeadless(ctx)
		}
		return l.openRouter(ctx)
	case MethodKey:
		return l.pastedKey(ctx)
	}
	return nil, fmt.Errorf("login method %q is not one of broker, openrouter, key", l.opts.Method)
}

// flow is the state of one Run.
type flow struct {
	store  *auth.Store
	opts   Options
	log    *zap.Logger
	stdout io.Writer
	stderr io.Writer
	lines  *lineReader

	bg     sync.WaitGroup // goroutines that must end before Run returns
	cancel context.CancelFunc
	bgCtx  context.Context
}

func newFlow(store *auth.Store, opts Options) (*flow, error) {
	if store == nil {
		return nil, errors.New("login: no credential store")
	}
	if opts.Method == "" {
		opts.Method = MethodBroker
	}
	if opts.Timeout <= 0 {
		opts.Timeout = auth.DefaultLoginTimeout
	}
	if opts.Stdin == nil {
		opts.Stdin = strings.NewReader("")
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.getenv == nil {
		opts.getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var mu sync.Mutex // one lock for both streams: they often share a terminal
	l := &flow{
		store:  store,
		opts:   opts,
		log:    log.With(zap.String("login_method", opts.Method)),
		stdout: &lockedWriter{mu: &mu, w: opts.Stdout},
		stderr: &lockedWriter{mu: &mu, w: opts.Stderr},
	}
	l.bgCtx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

// stop ends the goroutines this login started.
func (l *flow) stop() {
	l.cancel()
	l.bg.Wait()
	if l.lines != nil {
		l.lines.stop()
	}
}

func (l *flow) say(format string, args ...any) {
	fmt.Fprintf(l.stderr, format+"\n", args...)
}

// showURL prints the address to open on a line of its own, so it can be
// copied whole, and opens the browser unless told not to.
func (l *flow) showURL(intro, u string) {
	l.say("%s", intro)
	fmt.Fprintln(l.stdout, u)
	if l.opts.OnURL != nil {
		l.opts.OnURL(u)
	}
	if !l.opts.OpenBrowser {
		return
	}
	open := l.opts.OpenURL
	if open == nil {
		if !canOpenBrowser(l.opts.getenv) {
			l.log.Debug("not opening a browser: SSH session or no display")
			return
		}
		open = OpenBrowser
	}
	l.bg.Go(func() {
		if err := open(l.bgCtx, u); err != nil && l.bgCtx.Err() == nil {
			l.log.Debug("could not open a browser", zap.Error(err))
			l.say("Could not open a browser (%v); open the address above yourself.", err)
		}
	})
}

// browserFlow runs a login whose browser comes back to the callback server
// with a code: pageURL builds the address to open from the callback
// address, exchange turns the code into the stored credential. The browser
// that delivered the code waits for the outcome, so its page tells the truth.
// withState puts a fresh random state in the callback address and refuses
// answers without it; without, the address has no query and the first code
// to arrive within the timeout is the one.
func (l *flow) browserFlow(ctx context.Context, intro string, withState bool, pageURL func(callback string) (string, error),
	exchange func(context.Context, arrival) (*auth.Credential, error)) (*auth.Credential, error) {
	state := ""
	if withState {
		var err error
		if state, err = randomToken(); err != nil {
			return nil, err
		}
	}
	g := newGate()
	cs, err := startCallbackServer(l.opts.CallbackPort, state, g, l.log)
	if err != nil {
		return nil, err
	}
	defer cs.close()
	u, err := pageURL(cs.URL())
	if err != nil {
		return nil, err
	}
	if leadsTo(u, cs.URL()) {
		// The broker approved at once (its start headers said who the user
		// is) and sent us straight back: the address holds the one-time
		// code, so it is followed here, neither printed nor opened.
		l.say("The broker approved this login without a browser.")
		l.followOwnCallback(u)
	} else {
		l.showURL(intro, u)
		l.say("Waiting up to %s for the browser to come back to %s ...", humantime.Duration(l.opts.Timeout), callbackPath)
		if l.acceptsPaste() {
			l.say("If the browser runs on another machine, paste the address it ends on (http://127.0.0.1:…/callback?…) here and press Enter.")
			l.readPastedCallbacks(state, g)
		}
	}
	a, err := l.wait(ctx, g)
	if err != nil {
		return nil, err
	}
	if a.refused != nil {
		err = a.refused
	}
	var c *auth.Credential
	if err == nil {
		c, err = exchange(ctx, a)
	}
	if a.outcome != nil {
		a.outcome <- err
	}
	return c, err
}

// leadsTo reports whether u goes to the callback server at callback.
func leadsTo(u, callback string) bool {
	a, err := url.Parse(u)
	if err != nil {
		return false
	}
	b, err := url.Parse(callback)
	if err != nil {
		return false
	}
	return a.Scheme == "http" && a.Port() == b.Port() && a.Path == b.Path && netaddr.IsLoopbackHost(a.Hostname())
}

// followOwnCallback plays the browser for a redirect that leads straight
// back to our callback server, which then checks it like any other.
func (l *flow) followOwnCallback(u string) {
	l.bg.Go(func() {
		ctx, cancel := context.WithTimeout(l.bgCtx, l.opts.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return
		}
		resp, err := loopbackClient.Do(req)
		if err != nil && l.bgCtx.Err() == nil {
			// The login then times out with its own message. The address
			// holds the code: only the cause is logged.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			l.log.Warn("could not follow the broker's redirect to the callback", zap.Error(err))
		}
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
}

// loopbackClient reaches our own callback server: never through a proxy.
var loopbackClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// acceptsPaste reports whether the user can paste the redirect address.
func (l *flow) acceptsPaste() bool { return l.opts.StdinIsTerminal || l.opts.Paste }

// timeoutError is the message for a login nobody answered. It suggests
// only the flags this login did not have already.
func (l *flow) timeoutError() error {
	msg := fmt.Sprintf("no answer from the browser within %s; run `%s` again", humantime.Duration(l.opts.Timeout), l.command())
	var flags []string
	if l.opts.OpenBrowser {
		flags = append(flags, "--no-browser")
	}
	if !l.acceptsPaste() {
		flags = append(flags, "--paste")
	}
	if len(flags) > 0 {
		return fmt.Errorf("%s, with %s on a machine without a browser: open the address elsewhere and paste here the address the browser ends on", msg, strings.Join(flags, " "))
	}
	return fmt.Errorf("%s; on a machine without a browser, open the address elsewhere and paste here the address the browser ends on", msg)
}

// command is the command that runs this login again.
func (l *flow) command() string {
	if l.opts.Method == MethodBroker {
		return "orproxy login"
	}
	return "orproxy login --method " + l.opts.Method
}

// wait returns the first arrival, or fails at the timeout or when ctx ends.
func (l *flow) wait(ctx context.Context, g *gate) (arrival, error) {
	t := time.NewTimer(l.opts.Timeout)
	defer t.Stop()
	select {
	case a := <-g.arrivals:
		return a, nil
	case <-t.C:
		return arrival{}, l.timeoutError()
	case <-ctx.Done():
		return arrival{}, fmt.Errorf("login canceled: %w", context.Cause(ctx))
	}
}

// readPastedCallbacks accepts redirect addresses typed or piped into Stdin
// until one with the right state arrives, the callback server wins, or input
// ends. A wrong paste says why and keeps waiting.
func (l *flow) readPastedCallbacks(state string, g *gate) {
	lines := l.stdinLines()
	l.bg.Go(func() {
		for {
			line, ok := lines.next(l.bgCtx)
			if !ok || g.isTaken() {
				return
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			p, err := parsePastedCallback(line)
			if err == nil {
				err = p.checkState(state)
			}
			switch {
			case err != nil && !errors.Is(err, errWrongState):
				l.say("That is not the address the browser ended on: %v. Paste it again, or wait for the browser.", err)
				continue
			case err != nil:
				l.say("That address belongs to a different login (its state does not match this one). Paste the address from this login, or wait for the browser.")
				continue
			}
			a := arrival{code: p.Code}
			if p.Error != "" {
				a.refused = refusalError(p)
			}
			if g.deliver(a) {
				l.log.Debug("pasted login address accepted")
			}
			return
		}
	})
}

func (l *flow) stdinLines() *lineReader {
	if l.lines == nil {
		l.lines = newLineReader(l.opts.Stdin)
	}
	return l.lines
}

// finish stores c and reports it.
func (l *flow) finish(ctx context.Context, c *auth.Credential, what string) (*auth.Credential, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Set here rather than by Save, so the credential returned is the one stored.
	stored := c.Clone()
	if stored.UpdatedAt.IsZero() {
		stored.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	}
	if err := l.store.Save(ctx, stored); err != nil {
		return nil, fmt.Errorf("store the new credential: %w", err)
	}
	l.log.Info("logged in", zap.String("source", string(stored.Source)), secret.Field("key", stored.APIKey),
		zap.String("key_label", stored.KeyLabel), zap.String("file", l.store.Path()))
	label := ""
	if stored.KeyLabel != "" {
		label = " (" + auth.Sanitize(stored.KeyLabel) + ")"
	}
	fmt.Fprintf(l.stdout, "Logged in %s. Key %s%s saved to %s\n", what, stored.APIKey, label, l.store.Path())
	return stored, nil
}

// lineReader reads Stdin in a goroutine, because a read from a terminal or
// pipe cannot be abandoned; the goroutine stops at the first line read after
// stop, or at the end of input.
type lineReader struct {
	lines chan string
	done  chan struct{}
	once  sync.Once
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan string), done: make(chan struct{})}
	go func() {
		defer close(lr.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			select {
			case lr.lines <- sc.Text():
			case <-lr.done:
				return
			}
		}
	}()
	return lr
}

// next returns the next line; false at the end of input or when ctx ends.
func (lr *lineReader) next(ctx context.Context) (string, bool) {
	select {
	case line, ok := <-lr.lines:
		return line, ok
	case <-ctx.Done():
		return "", false
	}
}

func (lr *lineReader) stop() { lr.once.Do(func() { close(lr.done) }) }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// origin is scheme://host of an absolute URL.
func origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("upstream %q is not an absolute http(s) URL", auth.Sanitize(raw))
	}
	return u.Scheme + "://" + u.Host, nil
}
