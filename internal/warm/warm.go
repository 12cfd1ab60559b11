// Package warm keeps one upstream connection open while orproxy is in use.
//
// A one-shot client (curl, a script, `opencode run`) would pay a TCP and
// TLS handshake to OpenRouter on every call; through orproxy it reuses a
// pooled connection, but only for as long as the pool keeps one. The
// Keeper makes sure it does while a request came within keepalive's
// recent_use: it lengthens the transport's idle timeout, turns on HTTP/2
// health pings so that a dead connection is closed before a request needs
// it, and opens a new connection with GET {upstream}/key (free and small;
// never a completion) when the server closes the last one. More than one
// (HTTP/1 after a burst) are closed once idle for as long as without
// keepalive, and one is opened again. Beyond the window it closes the
// idle connections and sends nothing.
//
// Go's transport does not show its pool, so the Keeper counts the
// connections it dials: each net.Conn is wrapped to see its Close. A
// connection counts from its dial to its close, idle or busy.
package warm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// waits are the Keeper's timings; tests shorten them.
type waits struct {
	// pingAfter is how long an HTTP/2 connection may receive nothing before
	// it is pinged; pingTimeout is how long the answer may take before the
	// connection counts as dead and is closed. A laptop that slept or
	// changed networks thus loses its connection within 45 s, and the
	// Keeper dials a new one, instead of the next request finding it dead.
	pingAfter, pingTimeout time.Duration
	// linger is how long a connection opened outside the window (the model
	// catalogue refresh) stays open after its dial: the transport's idle
	// timeout without keepalive, so that an unused daemon's connections
	// end as they did before.
	linger time.Duration
	// callTimeout bounds one warm-up, connection included.
	callTimeout time.Duration
	// minLifetime is the least a warm connection should last: one closed
	// sooner counts as a failed warm-up, so that a server (or a company
	// proxy) that closes every connection right after its answer is not
	// dialled in a loop. It is short, so that one with a short idle
	// timeout (OpenRouter's edge: 400 s; some proxies: 30 s) is replaced
	// at once. retry paces such failures and warm-ups that fail.
	minLifetime time.Duration
	retry       backoff.Policy
	// startGrace is how long Run waits before its first look: the key
	// check at start and the account poller's first read open a
	// connection anyway, and a warm-up beside them would be a second
	// handshake for nothing.
	startGrace time.Duration
}

var defaultWaits = waits{
	pingAfter:   30 * time.Second,
	pingTimeout: 15 * time.Second,
	linger:      90 * time.Second,
	callTimeout: 15 * time.Second,
	minLifetime: 10 * time.Second,
	retry:       backoff.Policy{Base: 5 * time.Second, Max: 5 * time.Minute},
	startGrace:  2 * time.Second,
}

// maxAnswer bounds what is read of the warm-up's answer; OpenRouter's GET
// /key answer is under 1 KB.
const maxAnswer = 64 << 10

// Options configure a Keeper.
type Options struct {
	// Enabled is keepalive.enabled. Without it the Keeper only counts
	// connections and requests for /status and never sends anything.
	Enabled bool
	// RecentUse is keepalive.recent_use: how long after the last request a
	// connection is kept open.
	RecentUse time.Duration
	// Upstream is OpenRouter's API base; a warm-up asks GET {Upstream}/key.
	Upstream string
	// Key returns the key to send with a warm-up. An error or a zero key
	// sends none: the answer is then a 401, which opens the connection
	// all the same.
	Key func() (secret.Secret, error)
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// Now is the clock of requests and /status; nil means time.Now. The
	// waits run on real timers.
	Now func() time.Time
}

// Keeper holds one upstream connection open while requests come. Its
// methods are safe for concurrent use; Run is called once.
type Keeper struct {
	opts      Options
	transport *http.Transport
	client    *http.Client
	url       string
	log       *zap.Logger

	// lastUse is when a request last went through Observe, Unix ns; 0
	// before the first.
	lastUse atomic.Int64
	// started is when Run began, Unix ns: the window counts from it too.
	started atomic.Int64
	// live counts connections dialled and not yet closed; dialing counts
	// dials under way; lastDial is when the latest one succeeded, Unix ns.
	live, dialing, lastDial atomic.Int64
	// events holds at most one pending wake-up: a connection opened or closed.
	events chan struct{}

	waits waits

	mu          sync.Mutex
	warmups     int64
	lastWarmup  time.Time
	lastError   string
	lastErrorAt time.Time
}

// New returns a Keeper for t and prepares t for it: its dials are counted
// and, when keepalive is on, its idle connections last as long as the
// window and HTTP/2 ones are health-checked with pings. It must be called
// before t sends its first request. Nothing is sent before Run.
func New(t *http.Transport, opts Options) *Keeper {
	return newKeeper(t, opts, defaultWaits)
}

func newKeeper(t *http.Transport, opts Options, w waits) *Keeper {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k := &Keeper{
		opts:      opts,
		transport: t,
		url:       strings.TrimRight(opts.Upstream, "/") + "/key",
		log:       opts.Logger,
		events:    make(chan struct{}, 1),
		waits:     w,
	}
	// The warm-up carries the key: never follow a redirect with it.
	k.client = &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	// Only DialContext is wrapped: the transport runs TLS over what it
	// returns, so HTTP/2 is still negotiated. A DialTLSContext (which the
	// shared transport of internal/tlsenv does not set) must return the
	// *tls.Conn itself, which a wrapper would hide.
	t.DialContext = k.counting(dial)
	if opts.Enabled {
		// The Keeper closes idle connections when the window ends; the
		// transport's own timeout is only the backstop.
		t.IdleConnTimeout = max(t.IdleConnTimeout, opts.RecentUse)
		h2 := http.HTTP2Config{}
		if t.HTTP2 != nil {
			h2 = *t.HTTP2
		}
		h2.SendPingTimeout, h2.PingTimeout = w.pingAfter, w.pingTimeout
		t.HTTP2 = &h2
	}
	return k
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// counting wraps dial so that each connection it makes is counted until
// its Close.
func (k *Keeper) counting(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		k.dialing.Add(1)
		c, err := dial(ctx, network, addr)
		if err != nil {
			k.dialing.Add(-1)
			// Run may be waiting for this dial to bring a connection.
			k.wake()
			return nil, err
		}
		k.live.Add(1)
		k.dialing.Add(-1)
		k.lastDial.Store(k.opts.Now().UnixNano())
		k.wake()
		return &countedConn{Conn: c, k: k}, nil
	}
}

// countedConn is a connection the Keeper counts until its first Close.
type countedConn struct {
	net.Conn
	k      *Keeper
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.k.live.Add(-1)
		c.k.wake()
	}
	return err
}

func (k *Keeper) wake() {
	select {
	case k.events <- struct{}{}:
	default: // one is pending already
	}
}

// Observe returns rt noting each request as use. It is on every request's
// path, so it only stores an atomic: no lock, no allocation.
func (k *Keeper) Observe(rt http.RoundTripper) http.RoundTripper {
	return &observed{base: rt, k: k}
}

type observed struct {
	base http.RoundTripper
	k    *Keeper
}

func (o *observed) RoundTrip(req *http.Request) (*http.Response, error) {
	o.k.used()
	resp, err := o.base.RoundTrip(req)
	// Again once the answer's headers are in: a long wait for them counts
	// from its end, not its start.
	o.k.used()
	return resp, err
}

func (k *Keeper) used() { k.lastUse.Store(k.opts.Now().UnixNano()) }

// Run keeps a connection open while requests come, until ctx ends. The
// daemon's start counts as a request: a client usually follows it. With
// keepalive off it returns at once.
func (k *Keeper) Run(ctx context.Context) {
	if !k.opts.Enabled {
		return
	}
	k.started.CompareAndSwap(0, k.opts.Now().UnixNano())
	timer := time.NewTimer(k.waits.startGrace)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return
	case <-timer.C:
	}
	var (
		inWindow bool
		failures int
		retryAt  time.Time
		// lastHeld is when the latest warm-up left a connection open.
		lastHeld time.Time
		// trimmed is when surplus idle connections were last closed, Unix ns.
		trimmed int64
	)
	for {
		now := k.opts.Now()
		until := k.keptUntil()
		wait := time.Duration(-1) // until a connection opens or closes
		switch {
		case now.Before(until):
			inWindow = true
			if k.live.Load()+k.dialing.Load() > 0 {
				wait = until.Sub(now)
				if k.live.Load() > 1 {
					// Over HTTP/1 a burst leaves a connection per
					// concurrent request, which the window's long idle
					// timeout would keep: once the burst is over, the
					// idle ones go and one is opened again.
					due := time.Unix(0, max(k.lastUse.Load(), trimmed)).Add(k.waits.linger)
					if now.Before(due) {
						wait = min(wait, due.Sub(now))
					} else {
						trimmed = now.UnixNano()
						k.transport.CloseIdleConnections()
					}
				}
				break
			}
			if !lastHeld.IsZero() {
				if lived := now.Sub(lastHeld); lived < k.waits.minLifetime {
					retryAt = now.Add(k.waits.retry.Delay(failures))
					failures++
					k.record(now, fmt.Errorf("upstream closed the warm connection %s after it was opened", lived.Round(time.Millisecond)), false)
				} else {
					failures = 0
				}
				lastHeld = time.Time{}
			}
			if now.Before(retryAt) {
				wait = min(until.Sub(now), retryAt.Sub(now))
				break
			}
			err := k.warmUp(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil && k.live.Load() == 0 {
				err = errors.New("upstream closed the connection right after answering")
			}
			if err != nil {
				retryAt = now.Add(k.waits.retry.Delay(failures))
				failures++
			} else {
				lastHeld = now
			}
			k.record(now, err, true)
			continue
		case inWindow:
			inWindow = false
			k.log.Debug("no request within keepalive.recent_use; closing the idle upstream connections",
				zap.Duration("recent_use", k.opts.RecentUse))
			k.transport.CloseIdleConnections()
		case k.live.Load() > 0:
			// Opened outside the window (the model catalogue refresh):
			// closed once it has lingered as long as without keepalive.
			due := time.Unix(0, k.lastDial.Load()).Add(k.waits.linger)
			if !now.Before(due) {
				k.transport.CloseIdleConnections()
				due = now.Add(k.waits.linger) // a busy one is looked at again
			}
			wait = due.Sub(now)
		}
		if wait >= 0 {
			timer.Reset(max(wait, time.Millisecond))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-k.events:
		case <-timer.C:
		}
	}
}

// keptUntil is when the window ends: recent_use after the last request,
// or after Run's start when that came later.
func (k *Keeper) keptUntil() time.Time {
	return time.Unix(0, max(k.lastUse.Load(), k.started.Load())).Add(k.opts.RecentUse)
}

// warmUp opens a connection with GET {upstream}/key. Any answer will do:
// what counts is the connection it leaves in the pool, not what OpenRouter
// says about the key (the key manager and the account poller ask that).
func (k *Keeper) warmUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.waits.callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("GET /key: %w", err)
	}
	if k.opts.Key != nil {
		if key, err := k.opts.Key(); err == nil && !key.IsZero() {
			req.Header.Set("Authorization", "Bearer "+key.Reveal())
		}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		// Without the URL, which may carry user information.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("GET /key: %w", err)
	}
	// Read to the end, so that an HTTP/1 connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close() //nolint:errcheck // read only
	return nil
}

// record notes a warm-up (sent) or a failure found without one.
func (k *Keeper) record(at time.Time, err error, sent bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if sent {
		k.warmups++
		k.lastWarmup = at
	}
	if err != nil {
		k.lastError, k.lastErrorAt = err.Error(), at
		k.log.Debug("warm upstream connection: will try again", zap.Error(err))
		return
	}
	k.log.Debug("warm upstream connection opened")
}

// Status is the /status section: whether a connection is open and when
// the proxy last sent a request.
func (k *Keeper) Status() *statusdoc.WarmConnection {
	st := &statusdoc.WarmConnection{
		Enabled:          k.opts.Enabled,
		RecentUseSeconds: int64(k.opts.RecentUse / time.Second),
		Connections:      max(k.live.Load(), 0),
	}
	st.Held = st.Connections > 0
	if ns := k.lastUse.Load(); ns != 0 {
		st.LastUsed = time.Unix(0, ns)
	}
	if k.opts.Enabled && k.started.Load() != 0 {
		st.KeptUntil = k.keptUntil()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	st.Warmups, st.LastWarmup = k.warmups, k.lastWarmup
	st.LastError, st.LastErrorAt = k.lastError, k.lastErrorAt
	return st
}
