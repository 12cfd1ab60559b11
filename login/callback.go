package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/secret"
)

// callbackPath is the only path the callback server answers.
const callbackPath = "/callback"

// maxCodeLen bounds a code; real ones are tens of characters.
const maxCodeLen = 4096

// randomToken returns 256 random bits, base64url without padding: the
// per-login state and the PKCE verifier.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// callbackParams is what a callback (or a pasted address) carries.
type callbackParams struct {
	State string
	Code  secret.Secret
	// Error and ErrorDescription are an OAuth-style refusal, e.g. access_denied.
	Error            string
	ErrorDescription string
}

// parseCallbackQuery reads the query of the callback address. A broker that
// glues "?code=…" onto a return_to that already has a query produces
// "state=S?code=C"; a '?' inside a query is legal but never appears unescaped
// in our state or in a well-formed code, so it is read as a separator.
func parseCallbackQuery(raw string) (callbackParams, error) {
	var p callbackParams
	if len(raw) > 2*maxCodeLen {
		return p, errors.New("the address is too long")
	}
	seen := map[string]string{}
	for _, pair := range strings.Split(strings.ReplaceAll(raw, "?", "&"), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return p, errors.New("the address has a malformed %-escape")
		}
		switch key {
		case "state", "code", "error", "error_description":
		default:
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return p, errors.New("the address has a malformed %-escape")
		}
		if prev, ok := seen[key]; ok && prev != val {
			return p, fmt.Errorf("the address carries two different %q values", key)
		}
		seen[key] = val
	}
	p.State = seen["state"]
	p.Error = seen["error"]
	p.ErrorDescription = seen["error_description"]
	code := seen["code"]
	switch {
	case code == "" && p.Error == "":
		return p, errors.New("the address carries no code")
	case len(code) > maxCodeLen:
		return p, errors.New("the code is too long")
	case strings.ContainsFunc(code+p.State, unicode.IsControl):
		return p, errors.New("the address contains control characters")
	}
	p.Code = secret.New(code)
	return p, nil
}

// parsePastedCallback reads what a user pasted: the full address the browser
// ended on (http://127.0.0.1:PORT/callback?state=…&code=…), or only its query.
func parsePastedCallback(line string) (callbackParams, error) {
	s := strings.TrimSpace(line)
	s = strings.Trim(s, `<>"'`)
	if s == "" {
		return callbackParams{}, errors.New("nothing was pasted")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return callbackParams{}, errors.New("the address contains control characters")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return callbackParams{}, errors.New("that is not an address (paste the whole line from the browser's address bar)")
		}
		s = u.RawQuery
	} else {
		s, _, _ = strings.Cut(strings.TrimPrefix(s, "?"), "#")
	}
	return parseCallbackQuery(s)
}

// errNoState is an answer without the state the login sent.
var errNoState = errors.New("the address carries no state")

// errWrongState is an answer whose state is another login's.
var errWrongState = errors.New("the state does not match")

// checkState checks the state an answer carries against state, the one the
// login sent. A login that sent none (broker.return_to_state: false) has
// nothing to check: a state there is the broker's own, and is ignored.
func (p callbackParams) checkState(state string) error {
	switch {
	case state == "":
		return nil
	case p.State == "":
		return errNoState
	case subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1:
		return errWrongState
	}
	return nil
}

// arrival is a code delivered by the browser or pasted by the user.
type arrival struct {
	code secret.Secret
	// refused is set when the browser came back with an error instead of a code.
	refused error
	// outcome receives the result of the login, for the browser's page; nil
	// for a pasted code.
	outcome chan error
}

// gate lets exactly one arrival through, from whichever source comes first.
type gate struct {
	mu       sync.Mutex
	taken    bool
	arrivals chan arrival
}

func newGate() *gate { return &gate{arrivals: make(chan arrival, 1)} }

// deliver hands a over unless another arrival was first.
func (g *gate) deliver(a arrival) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.taken {
		return false
	}
	g.taken = true
	g.arrivals <- a // capacity 1 and taken once: never blocks
	return true
}

func (g *gate) isTaken() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.taken
}

// callbackServer receives the browser's redirect on 127.0.0.1.
type callbackServer struct {
	state  string
	gate   *gate
	log    *zap.Logger
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
	// finished is closed when the login no longer waits for anything, so a
	// handler waiting for an outcome gives up.
	finished     chan struct{}
	finishedOnce sync.Once
}

// startCallbackServer listens on 127.0.0.1 only: the redirect comes from the
// user's own browser, and nothing else should be able to deliver a code. An
// empty state is a login that sends none: the server then takes the first
// code that comes, and no other, until the login ends.
func startCallbackServer(port int, state string, g *gate, log *zap.Logger) (*callbackServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if port != 0 {
			return nil, fmt.Errorf("listen for the login callback on 127.0.0.1:%d (login.callback_port): %w", port, err)
		}
		return nil, fmt.Errorf("listen for the login callback: %w", err)
	}
	cs := &callbackServer{state: state, gate: g, log: log, ln: ln, served: make(chan struct{}), finished: make(chan struct{})}
	cs.srv = &http.Server{
		Handler:           cs,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          zap.NewStdLog(log),
		// The handler answers everything but its own path with 404,
		// OPTIONS * included.
		DisableGeneralOptionsHandler: true,
	}
	go func() {
		defer close(cs.served)
		_ = cs.srv.Serve(ln)
	}()
	return cs, nil
}

// URL is the callback address with the login's state, the return_to or
// callback_url handed to the broker or OpenRouter; without a state it has no
// query at all.
func (cs *callbackServer) URL() string {
	u := fmt.Sprintf("http://127.0.0.1:%d%s", cs.ln.Addr().(*net.TCPAddr).Port, callbackPath)
	if cs.state == "" {
		return u
	}
	return u + "?state=" + url.QueryEscape(cs.state)
}

// close stops accepting callbacks at once and waits (bounded) for the page
// of the one that was accepted to be written.
func (cs *callbackServer) close() {
	cs.finishedOnce.Do(func() { close(cs.finished) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cs.srv.Shutdown(ctx); err != nil {
		_ = cs.srv.Close()
	}
	<-cs.served
}

// outcomeWait bounds how long the browser's page waits for the exchange.
const outcomeWait = 2 * time.Minute

func (cs *callbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != callbackPath {
		writePage(w, http.StatusNotFound, "Not found", "orproxy's login callback answers only "+callbackPath+".")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writePage(w, http.StatusMethodNotAllowed, "Method not allowed", "The login callback takes GET only.")
		return
	}
	// A page that rebinds its own host name to 127.0.0.1 could reach this
	// port; its requests name the wrong host.
	if host, _, err := net.SplitHostPort(r.Host); err != nil || !netaddr.IsLoopbackHost(host) {
		writePage(w, http.StatusBadRequest, "Wrong address", "The login callback is reachable as 127.0.0.1 only.")
		return
	}
	p, err := parseCallbackQuery(r.URL.RawQuery)
	if err != nil {
		cs.log.Warn("login callback refused", zap.String("reason", err.Error()))
		writePage(w, http.StatusBadRequest, "Not a login answer", "This address is not a login answer ("+err.Error()+"). The login in your terminal is still waiting.")
		return
	}
	switch err := p.checkState(cs.state); {
	case errors.Is(err, errNoState):
		cs.log.Warn("login callback refused", zap.String("reason", err.Error()))
		writePage(w, http.StatusBadRequest, "Not a login answer", "This address is not a login answer ("+err.Error()+"). The login in your terminal is still waiting.")
		return
	case err != nil:
		cs.log.Warn("login callback refused", zap.String("reason", "state does not match"))
		writePage(w, http.StatusBadRequest, "Login refused",
			"This answer does not belong to the login waiting in your terminal (its state does not match). The login is still waiting; use the address it printed.")
		return
	}
	a := arrival{code: p.Code, outcome: make(chan error, 1)}
	if p.Error != "" {
		a.refused = refusalError(p)
	}
	if !cs.gate.deliver(a) {
		writePage(w, http.StatusConflict, "Already done", "This login has already received its answer; this one was ignored.")
		return
	}
	cs.log.Debug("login callback accepted")
	var outcome error
	t := time.NewTimer(outcomeWait)
	defer t.Stop()
	select {
	case outcome = <-a.outcome:
	case <-cs.finished:
		// The login reports the outcome before it ends, so both may be
		// ready by now; the outcome is what the page must show.
		select {
		case outcome = <-a.outcome:
		default:
			outcome = errors.New("the login ended before the answer could be used")
		}
	case <-r.Context().Done():
		return
	case <-t.C:
		writePage(w, http.StatusOK, "Still working", "orproxy received the answer; see your terminal for the result.")
		return
	}
	if outcome != nil {
		writePage(w, http.StatusBadGateway, "Login failed", outcome.Error()+". See your terminal.")
		return
	}
	writePage(w, http.StatusOK, "Logged in", "orproxy is logged in. You can close this tab.")
}

func refusalError(p callbackParams) error {
	msg := auth.Sanitize(p.Error)
	if d := auth.Sanitize(p.ErrorDescription); d != "" {
		msg += ": " + d
	}
	return fmt.Errorf("the login was refused in the browser (%s)", msg)
}

func writePage(w http.ResponseWriter, status int, title, message string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html><html><head><meta charset="utf-8"><title>orproxy: %s</title>`+
		`<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}</style></head>`+
		`<body><h1>%s</h1><p>%s</p></body></html>`,
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(message))
}
