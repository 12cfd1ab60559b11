package warm

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testKey = "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000001"

var start = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// upstream is an HTTPS, HTTP/2 stand-in for OpenRouter that records what
// reaches it.
type upstream struct {
	srv   *httptest.Server
	conns atomic.Int64 // connections accepted

	mu       sync.Mutex
	requests []string // "GET /api/v1/key HTTP/2.0 key" per request, key "-" when none
}

func newUpstream(t *testing.T, idle time.Duration) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "-"
		if a := r.Header.Get("Authorization"); a != "" {
			key = strings.TrimPrefix(a, "Bearer ")
		}
		u.mu.Lock()
		u.requests = append(u.requests, r.Method+" "+r.URL.Path+" "+r.Proto+" "+key)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"label":"test","usage":0,"limit":null}}`)
	}))
	u.srv.EnableHTTP2 = true
	u.srv.Config.IdleTimeout = idle
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests...)
}

// transport is a client transport that trusts u, as tlsenv's would.
func (u *upstream) transport(t *testing.T) *http.Transport {
	t.Helper()
	tr := u.srv.Client().Transport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// fastWaits keep the tests short; minLifetime 0 takes every closed
// connection as having lasted.
var fastWaits = waits{
	pingAfter:   time.Hour,
	pingTimeout: time.Hour,
	linger:      90 * time.Second,
	callTimeout: 5 * time.Second,
	retry:       backoff.Policy{Base: 5 * time.Second, Max: time.Minute},
}

type rig struct {
	up    *upstream
	tr    *http.Transport
	k     *Keeper
	clock *testkit.Clock
	stop  func()
}

func newRig(t *testing.T, idle time.Duration, w waits, edit func(*Options)) *rig {
	t.Helper()
	r := &rig{up: newUpstream(t, idle), clock: testkit.NewClock(start)}
	r.tr = r.up.transport(t)
	opts := Options{
		Enabled:   true,
		RecentUse: time.Hour,
		Upstream:  r.up.srv.URL + "/api/v1",
		Key:       func() (secret.Secret, error) { return secret.New(testKey), nil },
		Now:       r.clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	r.k = newKeeper(r.tr, opts, w)
	return r
}

func (r *rig) run(t *testing.T) {
	t.Helper()
	r.stop = testkit.Background(t, r.k.Run)
}

// advance moves the clock and has the Keeper look again, as its timer would.
func (r *rig) advance(d time.Duration) {
	r.clock.Set(r.clock.Now().Add(d))
	r.k.wake()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 5*time.Millisecond, what)
}

func sameTime(t *testing.T, want, got time.Time, msg ...any) {
	t.Helper()
	assert.True(t, want.Equal(got), append([]any{"want %s, got %s", want, got}, msg...)...)
}

// steady asserts that cond holds throughout a short while.
func steady(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		require.True(t, cond(), what)
		time.Sleep(10 * time.Millisecond)
	}
}

// The start opens a connection with an authenticated GET /key over HTTP/2,
// and it stays open: a client's request then reuses it.
func TestWarmsUpAtStart(t *testing.T) {
	r := newRig(t, time.Minute, fastWaits, nil)
	r.run(t)
	eventually(t, "a warm-up at start", func() bool { return r.k.Status().Warmups == 1 })
	assert.Equal(t, []string{"GET /api/v1/key HTTP/2.0 " + testKey}, r.up.seen())
	st := r.k.Status()
	assert.True(t, st.Enabled)
	assert.True(t, st.Held)
	assert.EqualValues(t, 1, st.Connections)
	assert.EqualValues(t, 1, st.Warmups)
	sameTime(t, start, st.LastWarmup)
	sameTime(t, start.Add(time.Hour), st.KeptUntil, "the start opens the window")
	assert.True(t, st.LastUsed.IsZero(), "no client request yet")

	client := &http.Client{Transport: r.k.Observe(r.tr), Timeout: 5 * time.Second}
	resp, err := client.Post(r.up.srv.URL+"/api/v1/chat/completions", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.EqualValues(t, 1, r.up.conns.Load(), "the request used the warm connection")
	sameTime(t, start, r.k.Status().LastUsed)
}

// Without a key the warm-up goes without one: the 401 it gets opens the
// connection all the same, and no key is made up or asked for elsewhere.
func TestWarmsUpWithoutKey(t *testing.T) {
	r := newRig(t, time.Minute, fastWaits, func(o *Options) {
		o.Key = func() (secret.Secret, error) { return secret.Secret{}, assert.AnError }
	})
	r.run(t)
	eventually(t, "a warm-up at start", func() bool { return r.k.Status().Warmups == 1 })
	assert.Equal(t, []string{"GET /api/v1/key HTTP/2.0 -"}, r.up.seen())
	assert.True(t, r.k.Status().Held)
}

// When the server closes the idle connection, as OpenRouter's edge does,
// the Keeper opens another, each time with GET /key and nothing else.
func TestRedialsWhenServerCloses(t *testing.T) {
	r := newRig(t, 150*time.Millisecond, fastWaits, nil)
	r.run(t)
	// Go's server closes an idle connection a second after its GOAWAY.
	eventually(t, "three warm-ups, two after the server closed a connection", func() bool { return r.k.Status().Warmups >= 3 })
	r.stop()
	for _, req := range r.up.seen() {
		assert.Equal(t, "GET /api/v1/key HTTP/2.0 "+testKey, req, "only the free GET /key is ever sent")
	}
	assert.GreaterOrEqual(t, r.k.Status().Warmups, int64(3))
	assert.Empty(t, r.k.Status().LastError)
}

// A connection that does not last minLifetime is not replaced at once:
// the next warm-up waits for the backoff.
func TestPacesConnectionsThatDoNotLast(t *testing.T) {
	w := fastWaits
	w.minLifetime = time.Minute
	r := newRig(t, 100*time.Millisecond, w, nil)
	r.run(t)
	eventually(t, "the server closed the first connection", func() bool {
		return r.up.conns.Load() == 1 && !r.k.Status().Held && r.k.Status().LastError != ""
	})
	assert.Contains(t, r.k.Status().LastError, "closed the warm connection")
	steady(t, "no second warm-up within the backoff", func() bool { return r.up.conns.Load() == 1 })

	firstFailure := r.k.Status().LastErrorAt
	r.advance(6 * time.Second) // past the 5 s backoff
	eventually(t, "a second warm-up after the backoff", func() bool { return r.up.conns.Load() == 2 })
	// Run must have counted the second close before the clock moves on,
	// or its backoff would count from the later time.
	eventually(t, "closed again, and counted as failed", func() bool {
		st := r.k.Status()
		return !st.Held && st.LastErrorAt.After(firstFailure)
	})
	r.advance(6 * time.Second) // less than the doubled backoff
	steady(t, "the backoff doubled", func() bool { return r.up.conns.Load() == 2 })
	r.advance(5 * time.Second)
	eventually(t, "a third warm-up", func() bool { return r.up.conns.Load() == 3 })
}

// Past the window the idle connection is closed, and nothing is sent or
// opened any more, though the server would have closed the connection too.
func TestNothingAfterTheWindow(t *testing.T) {
	r := newRig(t, 300*time.Millisecond, fastWaits, func(o *Options) { o.RecentUse = time.Minute })
	r.run(t)
	eventually(t, "a warm-up at start", func() bool { return r.k.Status().Warmups == 1 && r.k.Status().Held })
	r.advance(61 * time.Second)
	eventually(t, "the connection closed", func() bool { return !r.k.Status().Held })
	time.Sleep(100 * time.Millisecond) // a warm-up under way when the window ended has ended too
	sent, conns := len(r.up.seen()), r.up.conns.Load()
	r.advance(time.Hour)
	time.Sleep(600 * time.Millisecond) // two of the server's idle timeouts
	assert.Equal(t, sent, len(r.up.seen()), "no request after the window")
	assert.Equal(t, conns, r.up.conns.Load(), "no connection after the window")
	assert.False(t, r.k.Status().Held)
}

// A request through Observe opens the window again: a connection is kept
// (re-dialled when the server closes it) until recent_use after it.
func TestRequestOpensTheWindowAgain(t *testing.T) {
	r := newRig(t, time.Minute, fastWaits, func(o *Options) { o.RecentUse = time.Minute })
	r.run(t)
	eventually(t, "a warm-up at start", func() bool { return r.k.Status().Warmups == 1 && r.k.Status().Held })
	r.advance(2 * time.Minute)
	eventually(t, "closed after the window", func() bool { return !r.k.Status().Held })

	client := &http.Client{Transport: r.k.Observe(r.tr), Timeout: 5 * time.Second}
	resp, err := client.Get(r.up.srv.URL + "/api/v1/models")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	used := r.clock.Now()
	sameTime(t, used, r.k.Status().LastUsed)
	sameTime(t, used.Add(time.Minute), r.k.Status().KeptUntil)

	r.advance(30 * time.Second)
	r.tr.CloseIdleConnections() // as a server would
	eventually(t, "re-dialled within the new window", func() bool { return r.k.Status().Held && r.k.Status().Warmups == 2 })

	r.advance(31 * time.Second)
	eventually(t, "closed after the new window", func() bool { return !r.k.Status().Held })
	assert.EqualValues(t, 2, r.k.Status().Warmups)
}

// A connection opened outside the window (the model catalogue refresh) is
// closed after it lingered as long as without keepalive.
func TestLingeringConnectionClosed(t *testing.T) {
	r := newRig(t, time.Hour, fastWaits, func(o *Options) { o.RecentUse = time.Minute })
	r.run(t)
	eventually(t, "a warm-up at start", func() bool { return r.k.Status().Warmups == 1 && r.k.Status().Held })
	r.advance(2 * time.Minute)
	eventually(t, "closed after the window", func() bool { return !r.k.Status().Held })

	// Not through Observe: background work, not a client.
	resp, err := (&http.Client{Transport: r.tr, Timeout: 5 * time.Second}).Get(r.up.srv.URL + "/api/v1/models")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.True(t, r.k.Status().Held)
	r.advance(80 * time.Second)
	steady(t, "kept while it lingers", func() bool { return r.k.Status().Held })
	r.advance(11 * time.Second)
	eventually(t, "closed after 90 s", func() bool { return !r.k.Status().Held })
	assert.EqualValues(t, 1, r.k.Status().Warmups, "and not replaced")
}

// With keepalive off nothing is sent and the transport keeps its settings;
// connections and requests are still counted for /status.
func TestDisabled(t *testing.T) {
	r := newRig(t, time.Minute, fastWaits, func(o *Options) { o.Enabled = false })
	idle := r.tr.IdleConnTimeout
	assert.Nil(t, r.tr.HTTP2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.k.Run(ctx) // returns at once
	require.NoError(t, ctx.Err())
	assert.Empty(t, r.up.seen())
	assert.Equal(t, idle, r.tr.IdleConnTimeout)

	client := &http.Client{Transport: r.k.Observe(r.tr), Timeout: 5 * time.Second}
	resp, err := client.Get(r.up.srv.URL + "/api/v1/models")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	st := r.k.Status()
	assert.False(t, st.Enabled)
	assert.True(t, st.Held)
	sameTime(t, start, st.LastUsed)
	assert.True(t, st.KeptUntil.IsZero())
	assert.Zero(t, st.Warmups)
}

func TestTransportSettings(t *testing.T) {
	r := newRig(t, time.Minute, defaultWaits, func(o *Options) { o.RecentUse = 2 * time.Hour })
	assert.Equal(t, 2*time.Hour, r.tr.IdleConnTimeout)
	require.NotNil(t, r.tr.HTTP2)
	assert.Equal(t, 30*time.Second, r.tr.HTTP2.SendPingTimeout)
	assert.Equal(t, 15*time.Second, r.tr.HTTP2.PingTimeout)
}

// A connection that went dead without a close (a laptop asleep, a NAT
// that forgot it) fails the HTTP/2 health ping, and the Keeper replaces
// it before a request needs it.
func TestDeadConnectionReplaced(t *testing.T) {
	up := newUpstream(t, time.Hour)
	relay := newFreezer(t, up.srv.Listener.Addr().String())
	tr := up.transport(t)
	w := fastWaits
	w.pingAfter, w.pingTimeout = 200*time.Millisecond, 300*time.Millisecond
	clock := testkit.NewClock(start)
	k := newKeeper(tr, Options{
		Enabled: true, RecentUse: time.Hour, Now: clock.Now,
		// The certificate is for 127.0.0.1, as is the relay.
		Upstream: "https://" + relay.addr() + "/api/v1",
	}, w)
	testkit.Background(t, k.Run)
	eventually(t, "a warm-up at start", func() bool { return k.Status().Warmups == 1 && k.Status().Held })
	require.Empty(t, k.Status().LastError)
	relay.freeze()
	defer func() {
		if t.Failed() {
			t.Logf("conns %d, status %+v, live %d, dialing %d", up.conns.Load(), k.Status(), k.live.Load(), k.dialing.Load())
		}
	}()
	eventually(t, "a new connection after the ping went unanswered", func() bool {
		return up.conns.Load() >= 2 && k.Status().Held && k.Status().Warmups >= 2
	})
	eventually(t, "the dead one closed", func() bool { return k.Status().Connections == 1 })
}

func TestObserveDoesNotAllocate(t *testing.T) {
	k := New(&http.Transport{}, Options{Enabled: true, RecentUse: time.Hour})
	resp := &http.Response{}
	rt := k.Observe(roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }))
	req := httptest.NewRequest(http.MethodGet, "http://upstream/api/v1/models", nil)
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = rt.RoundTrip(req) }))
	assert.False(t, k.Status().LastUsed.IsZero())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The warm-up carries the key, so a redirect is never followed, and its
// failures name neither the key nor the upstream's user information.
func TestWarmUpKeepsTheKey(t *testing.T) {
	upstream, _, got := testkit.RedirectingUpstream(t, http.StatusFound)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	k := newKeeper(tr, Options{Enabled: true, RecentUse: time.Hour, Upstream: upstream,
		Key: func() (secret.Secret, error) { return secret.New(testKey), nil }}, fastWaits)
	require.NoError(t, k.warmUp(context.Background()))
	assert.Empty(t, got(), "the redirect was not followed, with the key or without")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	k = newKeeper(&http.Transport{}, Options{Enabled: true, RecentUse: time.Hour, Upstream: "http://user:hunter2@" + addr,
		Key: func() (secret.Secret, error) { return secret.New(testKey), nil }}, fastWaits)
	err = k.warmUp(context.Background())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, err.Error(), "user")
	assert.NotContains(t, err.Error(), testKey)
	assert.Contains(t, err.Error(), "GET /key")
}

// freezer is a TCP relay whose current connections can be frozen: bytes
// are read and dropped, and nothing is closed, as on a dead path.
type freezer struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*frozenPair
}

type frozenPair struct {
	a, b   net.Conn
	frozen atomic.Bool
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &freezer{ln: ln, target: target}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) accept() {
	defer f.wg.Done()
	for {
		a, err := f.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", f.target, 5*time.Second)
		if err != nil {
			a.Close()
			continue
		}
		p := &frozenPair{a: a, b: b}
		f.mu.Lock()
		f.conns = append(f.conns, p)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(p, a, b)
		go f.pipe(p, b, a)
	}
}

func (f *freezer) pipe(p *frozenPair, from, to net.Conn) {
	defer f.wg.Done()
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.conns {
		p.frozen.Store(true)
	}
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, p := range f.conns {
		p.a.Close()
		p.b.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// A connection opened at start by someone else (the key check, the account
// poller) is enough: no warm-up beside it, until it closes.
func TestNoWarmUpBesideAConnectionAtStart(t *testing.T) {
	w := fastWaits
	// Long enough for the GET below to be done before the first look on a
	// busy machine; with 200 ms that was left to chance.
	w.startGrace = time.Second
	r := newRig(t, time.Hour, w, nil)
	r.run(t)
	resp, err := (&http.Client{Transport: r.tr, Timeout: 5 * time.Second}).Get(r.up.srv.URL + "/api/v1/key")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	time.Sleep(w.startGrace + 300*time.Millisecond) // past the first look
	assert.Len(t, r.up.seen(), 1)
	assert.Zero(t, r.k.Status().Warmups)
	assert.True(t, r.k.Status().Held)

	r.tr.CloseIdleConnections()
	eventually(t, "a warm-up once it closed", func() bool { return r.k.Status().Warmups == 1 && r.k.Status().Held })
}

// Over HTTP/1 a burst leaves a connection per concurrent request; once
// idle as long as without keepalive they are closed, and one is kept.
func TestSurplusConnectionsTrimmed(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	clock := testkit.NewClock(start)
	tr := &http.Transport{MaxIdleConnsPerHost: 16} // as the upstream transport keeps many
	defer tr.CloseIdleConnections()
	k := newKeeper(tr, Options{Enabled: true, RecentUse: time.Hour, Upstream: srv.URL, Now: clock.Now}, fastWaits)
	testkit.Background(t, k.Run)
	eventually(t, "a warm-up at start", func() bool { return k.Status().Warmups == 1 })

	client := &http.Client{Transport: k.Observe(tr), Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(srv.URL + "/slow")
			if assert.NoError(t, err) {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, k.Status().Connections, int64(4))

	clock.Set(start.Add(89 * time.Second))
	k.wake()
	steady(t, "kept while the burst may go on", func() bool { return k.Status().Connections >= 4 })
	clock.Set(start.Add(91 * time.Second))
	k.wake()
	eventually(t, "one connection left, opened again", func() bool {
		return k.Status().Connections == 1 && k.Status().Warmups == 2
	})
	steady(t, "and kept", func() bool { return k.Status().Connections == 1 && k.Status().Warmups == 2 })
}
