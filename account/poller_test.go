package account

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig is a fake OpenRouter with one key and a Poller asking it.
type rig struct {
	fake *openrouter.Server
	key  string
	p    *Poller
	logs *observer.ObservedLogs
	// arrivals gets the time of each GET /key the fake received.
	arrivals chan time.Time
	// override, when set, answers GET /key instead of the fake.
	override atomic.Pointer[http.HandlerFunc]
	// now is the Poller's clock.
	now atomic.Pointer[time.Time]
}

// setNow sets the Poller's clock.
func (r *rig) setNow(t time.Time) { r.now.Store(&t) }

var clock = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func newRig(t *testing.T, interval time.Duration) *rig {
	t.Helper()
	r := &rig{key: openrouter.NewKey(), arrivals: make(chan time.Time, 1000)}
	r.fake = openrouter.New(openrouter.Options{Keys: []string{r.key}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/api/v1/key" {
			select {
			case r.arrivals <- time.Now():
			default: // a runaway poller must fail the test, not hang it
			}
			if h := r.override.Load(); h != nil {
				(*h)(w, req)
				return
			}
		}
		r.fake.Handler().ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	r.logs = logs
	r.setNow(clock)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	r.p = NewPoller(Options{
		Upstream: srv.URL + "/api/v1/",
		HTTP:     &http.Client{Transport: tr},
		Key:      func(context.Context) (secret.Secret, error) { return secret.New(r.key), nil },
		Interval: interval,
		Logger:   zap.New(core),
		Now:      func() time.Time { return *r.now.Load() },
	})
	return r
}

// answer makes the rig answer GET /key with status and body.
func (r *rig) answer(status int, body string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	r.override.Store(&h)
}

// run starts Run and stops it, waiting for it to return, at cleanup or
// when the returned function is called.
func (r *rig) run(t *testing.T) (stop func()) {
	t.Helper()
	return testkit.Background(t, r.p.Run)
}

// arrival waits for the next GET /key, failing after a bound.
func (r *rig) arrival(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-r.arrivals:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("no GET /key arrived")
		return time.Time{}
	}
}

// settled waits until the Poller has recorded n reads' outcomes.
func (r *rig) settled(t *testing.T, check func(c *statusdoc.Credits) bool) *statusdoc.Credits {
	t.Helper()
	var c *statusdoc.Credits
	require.Eventually(t, func() bool {
		c = r.p.Status()
		return c != nil && check(c)
	}, 10*time.Second, 2*time.Millisecond)
	return c
}

func (r *rig) keyRequests() int { return r.fake.Count("/api/v1/key") }

func ptr(v float64) *float64 { return &v }

func TestPollerReadsTheKeysLimitAtStart(t *testing.T) {
	r := newRig(t, time.Hour)
	_, err := r.fake.SetKeyLimit(r.key, openrouter.KeyLimit{Limit: ptr(20), Reset: "monthly"})
	require.NoError(t, err)
	require.NoError(t, r.fake.Spend(r.key, 16.58))
	assert.Nil(t, r.p.Status(), "nil until the first attempt")

	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })
	require.NotNil(t, c.Limit)
	assert.InDelta(t, 20, *c.Limit, 1e-9)
	require.NotNil(t, c.LimitRemaining)
	assert.InDelta(t, 3.42, *c.LimitRemaining, 1e-9)
	assert.Equal(t, "monthly", c.LimitReset)
	assert.InDelta(t, 16.58, c.Usage, 1e-9)
	assert.InDelta(t, 16.58, c.UsageDaily, 1e-9)
	assert.InDelta(t, 16.58, c.UsageWeekly, 1e-9)
	assert.InDelta(t, 16.58, c.UsageMonthly, 1e-9)
	assert.False(t, c.IsFreeTier)
	assert.Equal(t, clock, c.CheckedAt)
	assert.Empty(t, c.LastError)

	reqs := r.fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "Bearer "+r.key, reqs[0].Header.Get("Authorization"))
	assert.Equal(t, http.MethodGet, reqs[0].Method)

	// The caller owns its copy.
	*c.Limit = 1
	c.LastError = "changed"
	again := r.p.Status()
	assert.InDelta(t, 20, *again.Limit, 1e-9)
	assert.Empty(t, again.LastError)
}

func TestPollerKeyWithoutLimit(t *testing.T) {
	r := newRig(t, time.Hour)
	_, err := r.fake.SetKeyLimit(r.key, openrouter.KeyLimit{IsFreeTier: true})
	require.NoError(t, err)
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })
	assert.Nil(t, c.Limit, "a null limit is no limit")
	assert.Nil(t, c.LimitRemaining)
	assert.Empty(t, c.LimitReset)
	assert.True(t, c.IsFreeTier)
}

// An answer offered before Run (the daemon's start-up key check) shows in
// Status as a read's would, and stands for Run's first read: the next comes
// an Interval later, and only if requests flowed.
func TestPollerTakesAnOfferedAnswer(t *testing.T) {
	r := newRig(t, 20*time.Millisecond)
	idle := make(chan struct{}, 1000)
	r.p.idle = func() { idle <- struct{}{} }
	limit, left := 20.0, 3.42
	r.p.Offer(auth.KeyAnswer{
		KeyInfo: auth.KeyInfo{Label: "sk-or-v1-abc...xyz"},
		Limit:   &limit, LimitRemaining: &left, LimitReset: "monthly",
		Usage: 16.58, UsageDaily: 1, UsageWeekly: 2, UsageMonthly: 3,
	})
	c := r.p.Status()
	require.NotNil(t, c)
	assert.Equal(t, &statusdoc.Credits{
		Limit: ptr(20), LimitRemaining: ptr(3.42), LimitReset: "monthly",
		Usage: 16.58, UsageDaily: 1, UsageWeekly: 2, UsageMonthly: 3,
		CheckedAt: clock,
	}, c)

	r.run(t)
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("the interval did not pass")
	}
	assert.Zero(t, r.keyRequests(), "read again at once")

	r.p.Seen()
	r.arrival(t)
	c = r.settled(t, func(c *statusdoc.Credits) bool { return c.Limit == nil })
	assert.Equal(t, clock, c.CheckedAt)
	assert.Equal(t, 1, r.keyRequests())
}

// An idle daemon makes no traffic: after the read at start, intervals pass
// without a request until one flows (Seen), and then one read covers it.
func TestPollerAsksOnlyWhileRequestsFlow(t *testing.T) {
	r := newRig(t, 5*time.Millisecond)
	idle := make(chan struct{}, 1000)
	r.p.idle = func() { idle <- struct{}{} }
	waitIdle := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-idle:
			case <-time.After(10 * time.Second):
				t.Fatal("the interval did not pass")
			}
		}
	}
	r.run(t)
	r.arrival(t)
	waitIdle(20)
	assert.Equal(t, 1, r.keyRequests(), "asked while idle")

	require.NoError(t, r.fake.Spend(r.key, 2.5))
	r.p.Seen()
	r.p.Seen()
	r.arrival(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.UsageDaily > 0 })
	assert.InDelta(t, 2.5, c.UsageDaily, 1e-9)

	waitIdle(20)
	assert.Equal(t, 2, r.keyRequests(), "one read covers the requests seen before it; none after")
}

// A Poke reads soon, and a burst of them reads once per gap, not once per
// Poke, nor before the gap since the last read has passed.
func TestPollerPoke(t *testing.T) {
	r := newRig(t, time.Hour)
	const gap = 200 * time.Millisecond
	r.p.pokeGap = gap
	r.run(t)
	first := r.arrival(t)
	r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })

	for range 100 {
		r.p.Poke()
	}
	second := r.arrival(t)
	assert.GreaterOrEqual(t, second.Sub(first), gap, "a Poke right after a read waits for the gap")
	r.settled(t, func(*statusdoc.Credits) bool { return r.keyRequests() == 2 })

	for range 100 {
		r.p.Poke()
	}
	third := r.arrival(t)
	assert.GreaterOrEqual(t, third.Sub(second), gap)

	// Once the gap has passed, a Poke reads at once, long before the hour.
	require.Eventually(t, func() bool { return time.Since(third) > 2*gap }, 10*time.Second, 10*time.Millisecond)
	poked := time.Now()
	r.p.Poke()
	fourth := r.arrival(t)
	assert.Less(t, fourth.Sub(poked), gap)
	select {
	case extra := <-r.arrivals:
		t.Fatalf("a read more than the pokes asked for, at %v", extra)
	default:
	}
}

// A poke that must wait for the gap is answered by any read in between:
// the interval's read must not be followed by a second one the waiting poke
// would make, inside the gap.
func TestAReadAnswersAWaitingPoke(t *testing.T) {
	const interval, gap = 100 * time.Millisecond, 400 * time.Millisecond
	r := newRig(t, interval)
	r.p.pokeGap = gap
	r.run(t)
	first := r.arrival(t)
	r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })
	r.p.Seen()
	r.p.Poke() // within the gap: waits, or is answered by the interval's read
	second := r.arrival(t)
	assert.Less(t, second.Sub(first), gap, "the interval's read came first")
	time.Sleep(gap) // no way to wait for a read that must not happen
	select {
	case extra := <-r.arrivals:
		t.Fatalf("a second read %v after the one that answered the poke; the gap is %v", extra.Sub(second), gap)
	default:
	}
}

func TestPokeNeverBlocks(t *testing.T) {
	p := NewPoller(Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10000 {
			p.Poke()
			p.Seen()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Poke blocked without a running poller")
	}
}

// A failed read keeps the last good answer beside the error; a 401 is the
// credential's business and no warning.
func TestPollerKeepsTheLastGoodAnswer(t *testing.T) {
	r := newRig(t, time.Hour)
	r.p.pokeGap = 0
	_, err := r.fake.SetKeyLimit(r.key, openrouter.KeyLimit{Limit: ptr(20), Reset: "daily"})
	require.NoError(t, err)
	r.run(t)
	good := r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })

	later := clock.Add(time.Minute)
	r.setNow(later)
	r.answer(http.StatusServiceUnavailable, `{"error":{"code":503,"message":"down for\nmaintenance"}}`)
	r.p.Poke()
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Equal(t, good.CheckedAt, c.CheckedAt)
	require.NotNil(t, c.Limit)
	assert.InDelta(t, 20, *c.Limit, 1e-9)
	assert.Equal(t, "GET /key: 503 Service Unavailable: down for maintenance", c.LastError)
	assert.Equal(t, later, c.LastErrorAt)
	assert.Equal(t, 1, r.logs.FilterLevelExact(zapcore.WarnLevel).Len(), "one warning for the failure")

	stillDown := later.Add(time.Minute)
	r.setNow(stillDown)
	r.p.Poke()
	r.settled(t, func(c *statusdoc.Credits) bool { return c.LastErrorAt.Equal(stillDown) })
	assert.Equal(t, 1, r.logs.FilterLevelExact(zapcore.WarnLevel).Len(), "not one warning per failed read")

	// Recovered: a fresh answer, the last error still shown for what it was.
	r.override.Store(nil)
	evenLater := stillDown.Add(time.Minute)
	r.setNow(evenLater)
	r.p.Poke()
	c = r.settled(t, func(c *statusdoc.Credits) bool { return c.CheckedAt.Equal(evenLater) })
	assert.Equal(t, stillDown, c.LastErrorAt)
	assert.Contains(t, c.LastError, "503")

	// Revoked: noted, not warned about; the last good answer stays.
	warnings := r.logs.FilterLevelExact(zapcore.WarnLevel).Len()
	require.True(t, r.fake.Revoke(r.key))
	r.p.Poke()
	c = r.settled(t, func(c *statusdoc.Credits) bool { return strings.Contains(c.LastError, "rejected") })
	assert.Contains(t, c.LastError, "OpenRouter rejected the key (401 Unauthorized")
	assert.Equal(t, evenLater, c.CheckedAt)
	require.NotNil(t, c.Limit)
	assert.Equal(t, warnings, r.logs.FilterLevelExact(zapcore.WarnLevel).Len())
	assert.Positive(t, r.logs.FilterMessage("key limit not read").Len(), "logged at debug")
}

// The key goes to the upstream's /key and nowhere else: a redirect is not
// followed, and neither errors nor logs show the key, even when the answer
// echoes it.
func TestPollerNeverLetsTheKeyOut(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		_, _ = w.Write([]byte(`{"data":{"limit":null}}`))
	}))
	t.Cleanup(other.Close)

	r := newRig(t, time.Hour)
	r.p.pokeGap = 0
	echo := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"message":"bad header ` + req.Header.Get("Authorization") + `"}}`))
	})
	r.override.Store(&echo)
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Contains(t, c.LastError, "bad header Bearer sk-or-v1-…")
	assert.NotContains(t, c.LastError, r.key)

	echo401 := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":401,"message":"no such key ` + req.Header.Get("Authorization") + `"}}`))
	})
	r.override.Store(&echo401)
	r.p.Poke()
	c = r.settled(t, func(c *statusdoc.Credits) bool { return strings.Contains(c.LastError, "no such key") })
	assert.NotContains(t, c.LastError, r.key)

	redirect := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, other.URL+"/api/v1/key", http.StatusTemporaryRedirect)
	})
	r.override.Store(&redirect)
	r.p.Poke()
	c = r.settled(t, func(c *statusdoc.Credits) bool { return strings.Contains(c.LastError, "redirect") })
	assert.Contains(t, c.LastError, `GET /key: OpenRouter answered with a redirect (307 Temporary Redirect) to "127.0.0.1:`)
	assert.Contains(t, c.LastError, "orproxy does not follow it")
	assert.Contains(t, c.LastError, "check `upstream`")
	assert.Zero(t, elsewhere.Load(), "the redirect was followed")

	for _, e := range r.logs.All() {
		assert.NotContains(t, e.Message, r.key)
		for k, v := range e.ContextMap() {
			assert.NotContains(t, k, r.key)
			if s, ok := v.(string); ok {
				assert.NotContains(t, s, r.key)
			}
		}
	}
}

func TestPollerBoundsTheAnswer(t *testing.T) {
	r := newRig(t, time.Hour)
	r.answer(http.StatusOK, `{"data":{"label":"`+strings.Repeat("x", 64<<10)+`"}}`)
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Equal(t, "GET /key: the answer is larger than 64 KiB, so not OpenRouter's key answer; check `upstream`", c.LastError)
	assert.True(t, c.CheckedAt.IsZero())
}

func TestPollerTimesOut(t *testing.T) {
	r := newRig(t, time.Hour)
	r.p.timeout = 50 * time.Millisecond
	hang := http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	r.override.Store(&hang)
	start := time.Now()
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Contains(t, c.LastError, "deadline exceeded")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// Run ends with its context, also in the middle of a read, and records no
// error for a read it abandoned.
func TestPollerStopsWhileReading(t *testing.T) {
	r := newRig(t, time.Hour)
	entered := make(chan struct{})
	hang := http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		close(entered)
		<-req.Context().Done()
	})
	r.override.Store(&hang)
	stop := r.run(t)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no read at start")
	}
	stop()
	assert.Nil(t, r.p.Status())
}

func TestPollerWithoutAKey(t *testing.T) {
	r := newRig(t, time.Hour)
	r.p.opts.Key = func(context.Context) (secret.Secret, error) {
		return secret.Secret{}, errors.New("not logged in: run `orproxy login`")
	}
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Equal(t, "no key to ask OpenRouter about: not logged in: run `orproxy login`", c.LastError)
	assert.Zero(t, r.keyRequests())
	assert.Zero(t, r.logs.FilterLevelExact(zapcore.WarnLevel).Len())
}

// After a failed read, requests that flow get a read sooner than the
// interval.
func TestPollerRetriesSoonerAfterAFailure(t *testing.T) {
	r := newRig(t, time.Hour)
	r.p.retry = 10 * time.Millisecond
	r.answer(http.StatusBadGateway, `{"error":{"message":"bad gateway"}}`)
	r.run(t)
	r.arrival(t)
	r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	r.override.Store(nil)
	r.p.Seen()
	r.arrival(t)
	r.settled(t, func(c *statusdoc.Credits) bool { return !c.CheckedAt.IsZero() })
}

// Every amount of the answer reaches /status; the answer's own decoding is
// auth's and tested there.
func TestCredits(t *testing.T) {
	a := auth.KeyAnswer{
		KeyInfo: auth.KeyInfo{Label: "team key"},
		Limit:   ptr(100), LimitRemaining: ptr(74.5), LimitReset: "monthly",
		Usage: 25.5, UsageDaily: 1.5, UsageWeekly: 5.5, UsageMonthly: 20.5,
		IsFreeTier: true,
	}
	assert.Equal(t, &statusdoc.Credits{
		Limit: ptr(100), LimitRemaining: ptr(74.5), LimitReset: "monthly",
		Usage: 25.5, UsageDaily: 1.5, UsageWeekly: 5.5, UsageMonthly: 20.5,
		IsFreeTier: true,
	}, credits(a))
}

// An answer that is not OpenRouter's is an error that points at
// `upstream`, and the last good answer stays.
func TestPollerNamesAStrangeAnswer(t *testing.T) {
	r := newRig(t, time.Hour)
	r.answer(http.StatusOK, `<html>proxy login</html>`)
	r.run(t)
	c := r.settled(t, func(c *statusdoc.Credits) bool { return c.LastError != "" })
	assert.Contains(t, c.LastError, "GET /key: the answer is not OpenRouter's key answer")
	assert.Contains(t, c.LastError, "check `upstream`")
	assert.True(t, c.CheckedAt.IsZero())
	assert.Equal(t, 1, r.logs.FilterLevelExact(zapcore.WarnLevel).Len(), "warned about, not taken for the key's own trouble")
}

func BenchmarkSeen(b *testing.B) {
	p := NewPoller(Options{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Seen()
		}
	})
}
