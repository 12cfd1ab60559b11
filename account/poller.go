// Package account reads what OpenRouter says about the key in use (GET
// {upstream}/key: its limit, what is left of it, what it spent) for the
// daemon's /status and `orproxy status`, and puts that and the ledger's
// spend into words a person reads.
//
// The question is free but not idle chatter: the Poller asks at start, then
// only while requests flow, and soon after a request met a money error
// (402/403), so an unused daemon makes no traffic at all.
package account

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

const (
	// DefaultInterval is usage.key_poll's default.
	DefaultInterval = 10 * time.Minute
	// callTimeout bounds one GET /key, connection included.
	callTimeout = 10 * time.Second
	// pokeGap is the least time between two reads a Poke causes: a burst of
	// 402s asks once, not once per request.
	pokeGap = 10 * time.Second
	// retryAfterFailure is the wait after a failed read while requests flow,
	// shorter than the interval so that a failed read at start (offline, no
	// key yet) is not stale for ten minutes.
	retryAfterFailure = time.Minute
)

// Options configure a Poller.
type Options struct {
	// Upstream is OpenRouter's API base, e.g. https://openrouter.ai/api/v1.
	Upstream string
	// HTTP is the upstream transport's client; nil uses Go's default
	// transport. Each call is bounded to 10 s whatever its Timeout, and
	// redirects are never followed, since the request carries the key.
	HTTP *http.Client
	// Key returns the key in use; an error (nobody logged in) skips the read.
	Key func(ctx context.Context) (secret.Secret, error)
	// Interval is how often the key is read while requests flow
	// (usage.key_poll); 0 means DefaultInterval.
	Interval time.Duration
	// Logger receives failures and recoveries; nil logs nothing.
	Logger *zap.Logger
	// Now is the clock of the times in Status; nil means time.Now. The
	// waits themselves run on real timers.
	Now func() time.Time
}

// Poller keeps OpenRouter's latest word on the key's limit and usage. Its
// methods are safe for concurrent use; Run is called once.
type Poller struct {
	opts Options
	log  *zap.Logger

	// seen is set by Seen and cleared by each read: requests flowed since.
	seen atomic.Bool
	// offered is set by Offer: an answer stands for Run's first read.
	offered atomic.Bool
	// poke holds at most one pending Poke.
	poke chan struct{}

	mu     sync.Mutex
	status *statusdoc.Credits // nil until the first attempt
	// failing is true while reads fail, so a failure warns once per episode.
	failing bool

	// Waits, fixed by NewPoller; tests shorten them.
	pokeGap, retry, timeout time.Duration
	// idle is called when an interval passed without requests and so
	// without a read; tests count on it instead of sleeping.
	idle func()
}

// NewPoller returns a Poller; nothing is asked until Run.
func NewPoller(opts Options) *Poller {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Poller{
		opts:    opts,
		log:     opts.Logger,
		poke:    make(chan struct{}, 1),
		pokeGap: pokeGap,
		retry:   retryAfterFailure,
		timeout: callTimeout,
		idle:    func() {},
	}
}

// Seen notes that a request went upstream. It is called per request, so it
// only loads an atomic, and stores one when the flag was clear.
func (p *Poller) Seen() {
	if !p.seen.Load() {
		p.seen.Store(true)
	}
}

// Poke asks for a read soon, after a 402 or 403 that may mean the key's
// limit is used up. It never blocks; reads it causes are at least 10 s apart.
func (p *Poller) Poke() {
	select {
	case p.poke <- struct{}{}:
	default: // one is pending already
	}
}

// Status is the last answer and the last error, or nil before the first
// attempt. The caller owns the copy.
func (p *Poller) Status() *statusdoc.Credits {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == nil {
		return nil
	}
	c := *p.status
	c.Limit, c.LimitRemaining = clone(c.Limit), clone(c.LimitRemaining)
	return &c
}

func clone(v *float64) *float64 {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}

// Offer records an answer to GET /key that another part asked for, as if
// the Poller had read it: the daemon's start-up key check asks the same
// question just before Run would. Offered before Run starts, it is Run's
// first reading, and the next read is an Interval later, as after a read.
func (p *Poller) Offer(a auth.KeyAnswer) {
	p.record(credits(a), nil)
	p.offered.Store(true)
}

// Run reads the key at once, unless an answer was offered before, then
// every Interval if requests flowed since the last read (Seen), and soon
// after a Poke. It returns when ctx ends.
func (p *Poller) Run(ctx context.Context) {
	every := p.wait(p.offered.Load() || p.read(ctx))
	last := time.Now()
	timer := time.NewTimer(every)
	defer timer.Stop()
	var pokeTimer *time.Timer
	var pokeC <-chan time.Time
	defer func() {
		if pokeTimer != nil {
			pokeTimer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			if !p.seen.Load() {
				// Idle: no traffic, not even to OpenRouter.
				p.idle()
				timer.Reset(every)
				continue
			}
		case <-p.poke:
			if wait := p.pokeGap - time.Since(last); wait > 0 {
				if pokeC == nil {
					pokeTimer = time.NewTimer(wait)
					pokeC = pokeTimer.C
				}
				continue
			}
		case <-pokeC:
			pokeC = nil
		}
		every = p.wait(p.read(ctx))
		if ctx.Err() != nil {
			return
		}
		last = time.Now()
		timer.Reset(every)
		// This read answers any poke that waited: a poke timer left armed
		// would read again within pokeGap.
		if pokeTimer != nil {
			pokeTimer.Stop()
		}
		pokeC = nil
	}
}

// wait is the time until the next read, if requests flow.
func (p *Poller) wait(ok bool) time.Duration {
	if ok {
		return p.opts.Interval
	}
	return min(p.retry, p.opts.Interval)
}

// read asks OpenRouter once and records the outcome; it reports success.
func (p *Poller) read(ctx context.Context) bool {
	// Cleared before asking: a request during the read counts for the next.
	p.seen.Store(false)
	c, err := p.fetch(ctx)
	if ctx.Err() != nil {
		return false // shutting down; not OpenRouter's failure
	}
	p.record(c, err)
	return err == nil
}

// errNoKey wraps the key provider's error: nobody to ask for.
var errNoKey = errors.New("no key to ask OpenRouter about")

func (p *Poller) fetch(ctx context.Context) (*statusdoc.Credits, error) {
	if p.opts.Key == nil {
		return nil, errNoKey
	}
	key, err := p.opts.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoKey, err)
	}
	if key.IsZero() {
		return nil, errNoKey
	}
	// Tighter than GetKey's own bound: this read is in the background and
	// the next one is never far off.
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	a, err := auth.GetKey(ctx, p.opts.HTTP, p.opts.Upstream, key)
	if err != nil {
		return nil, err
	}
	return credits(a), nil
}

// credits is the part of GET /key's answer that /status shows.
func credits(a auth.KeyAnswer) *statusdoc.Credits {
	return &statusdoc.Credits{
		Limit: a.Limit, LimitRemaining: a.LimitRemaining, LimitReset: a.LimitReset,
		Usage: a.Usage, UsageDaily: a.UsageDaily, UsageWeekly: a.UsageWeekly, UsageMonthly: a.UsageMonthly,
		IsFreeTier: a.IsFreeTier,
	}
}

// record keeps c as the last good answer, or err as the last error beside
// the last good answer.
func (p *Poller) record(c *statusdoc.Credits, err error) {
	now := p.opts.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.status
	if err == nil {
		c.CheckedAt = now
		if prev != nil {
			// Kept, so that a flapping upstream shows beside a fresh answer.
			c.LastError, c.LastErrorAt = prev.LastError, prev.LastErrorAt
		}
		p.status = c
		if p.failing {
			p.log.Info("OpenRouter answered GET /key again")
		}
		p.failing = false
		return
	}
	next := &statusdoc.Credits{}
	if prev != nil {
		*next = *prev
	}
	next.LastError, next.LastErrorAt = err.Error(), now
	p.status = next

	switch {
	case auth.IsKeyRejected(err), errors.Is(err, errNoKey):
		// The key's own troubles are the credential's business and show
		// on every request; nothing to warn about here.
		p.log.Debug("key limit not read", zap.Error(err))
	case !p.failing:
		p.log.Warn("cannot read the key's limit from OpenRouter; /status keeps the last answer", zap.Error(err))
		p.failing = true
	default:
		p.log.Debug("key limit still not read", zap.Error(err))
	}
}
