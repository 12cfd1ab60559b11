package daemon

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/account"
	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/budget"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/ledger"
	"github.com/orproxy/orproxy/proxy"
)

// money is the daemon's spending side: the usage ledger, the budgets that
// count from it, the key poller (GET /key), and their /status sections.
type money struct {
	log *zap.Logger
	// ledger is nil when usage is off or the ledger could not be opened;
	// ledgerDown then says why, for /status.
	ledger     *ledger.Writer
	ledgerDown *statusdoc.Ledger
	// tracker is nil when usage is off.
	tracker *budget.Tracker
	poller  *account.Poller

	stop     context.CancelFunc
	wg       sync.WaitGroup
	halted   sync.Once
	stopped  atomic.Int64 // when the daemon was told to stop, Unix ns
	unnotify func() bool
}

// ledgerLoadTimeout bounds reading the day's and month's spend at start.
const ledgerLoadTimeout = 10 * time.Second

// minLedgerFlush is the least time the ledger gets to write its last rows
// at shutdown, even when the drain used up its deadline: well inside the
// margin the service waits beyond the drain (service.stopMargin).
const minLedgerFlush = 2 * time.Second

// openMoney opens the ledger (usage.enabled), loads the budgets from it and
// makes the key poller. A ledger that cannot be opened is reported and
// left out: the daemon serves all the same, and budgets count this run's
// requests only.
func openMoney(cfg config.Config, configFile string, transport http.RoundTripper, keys *auth.Manager, log *zap.Logger) *money {
	m := &money{log: log}
	m.poller = account.NewPoller(account.Options{
		Upstream: cfg.Upstream,
		HTTP:     &http.Client{Transport: transport},
		Key:      func(context.Context) (secret.Secret, error) { return keys.UsableKey() },
		Interval: cfg.Usage.KeyPoll,
		Logger:   log.Named("account"),
	})
	if !cfg.Usage.Enabled {
		return m
	}
	path, err := ledger.PathFor(cfg.Usage.File)
	var led budget.Ledger // an untyped nil unless the ledger opens
	if err == nil {
		var w *ledger.Writer
		w, err = ledger.Open(path, ledger.Options{Retention: cfg.Usage.Retention, Logger: log.Named("ledger")})
		if err == nil {
			m.ledger, led = w, w
		}
	}
	if err != nil {
		const consequence = "requests are served but not recorded, and budgets count this run's requests only; fix it and restart orproxy"
		m.ledgerDown = &statusdoc.Ledger{File: path, LastError: err.Error() + "; " + consequence, LastErrorAt: time.Now(), Failing: true}
		log.Warn("usage ledger: cannot open it; "+consequence, zap.String("file", path), zap.Error(err))
	}
	m.tracker = budget.New(budget.Options{
		DailyUSD:   cfg.Budget.DailyUSD,
		MonthlyUSD: cfg.Budget.MonthlyUSD,
		WarnAt:     cfg.Budget.WarnAt,
		Ledger:     led,
		ConfigFile: configFile,
		Logger:     log.Named("budget"),
	})
	if m.ledger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ledgerLoadTimeout)
		defer cancel()
		if err := m.tracker.Load(ctx); err != nil {
			log.Warn("budget: could not read today's and this month's spend from the usage ledger; counting from this run's requests", zap.Error(err))
		}
	}
	return m
}

// keyCheckTimeout bounds one key check (GET /key); the key manager bounds
// its start-up validation by the same 15 s.
const keyCheckTimeout = 15 * time.Second

// startCheckWait is the longest the poller waits for the start-up check:
// past the check's own bound, so it only ends a wait for a check that never
// came (the credential went away between the manager's start and its check).
const startCheckWait = keyCheckTimeout + 5*time.Second

// startCheck hands the start-up key check's answer (GET /key) to the key
// poller, which would otherwise ask the same question a few milliseconds
// later. The check runs in the key manager's loop, which Start launches just
// before the poller's: it is still waiting for OpenRouter when the poller
// would make its first read, so handing the answer over whenever it comes
// would not spare that read. The poller waits for the check instead, which
// is simpler than sharing a request in flight, and costs nothing: the
// poller's own first read would have taken the same round trip.
type startCheck struct {
	once sync.Once
	// done is closed when the first check returned; answer is its answer
	// when it succeeded, nil otherwise.
	done   chan struct{}
	answer *auth.KeyAnswer
}

func newStartCheck() *startCheck { return &startCheck{done: make(chan struct{})} }

// settle records the first check's outcome. Later ones, such as the check
// of a replacement for a rejected key, come after the poller has started.
func (s *startCheck) settle(a auth.KeyAnswer, err error) {
	s.once.Do(func() {
		if err == nil {
			s.answer = &a
		}
		close(s.done)
	})
}

// coming returns s if the key manager, started already, checks its key at
// start, or nil. The manager checks only a stored key; without a usable one
// the poller makes no request and need not wait (nor would it want to:
// /status should say at once that there is no key).
func (s *startCheck) coming(cfg config.Config, keys *auth.Manager) *startCheck {
	if !cfg.Credentials.ValidateOnStart {
		return nil
	}
	if _, err := keys.UsableKey(); err != nil {
		return nil
	}
	return s
}

// await waits for the start-up check, bounded by startCheckWait, and offers
// a successful answer to p; p then reads at once only if there was none. It
// reports false when ctx ended first.
func (s *startCheck) await(ctx context.Context, p *account.Poller) bool {
	timer := time.NewTimer(startCheckWait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
	case <-s.done:
		if s.answer != nil {
			p.Offer(*s.answer)
		}
	}
	return true
}

// spending is the proxy's Spending: nil (untyped) without the ledger's
// accounting, so the proxy reads no answer's cost.
func (m *money) spending() proxy.Spending {
	if m.tracker == nil {
		return nil
	}
	return m.tracker
}

// start runs the poller and the budget's reconciliation until close, and
// notes when ctx (the daemon's) ends: the ledger's last flush is bounded by
// the drain deadline that starts then. With a start-up key check coming
// (first not nil), the poller waits for it and starts from its answer.
func (m *money) start(ctx context.Context, first *startCheck) {
	bg, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.unnotify = context.AfterFunc(ctx, func() { m.stopped.Store(time.Now().UnixNano()) })
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if first != nil && !first.await(bg, m.poller) {
			return
		}
		m.poller.Run(bg)
	}()
	if m.tracker != nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.tracker.Run(bg)
		}()
	}
}

// halt stops the poller and the reconciliation and waits for them.
func (m *money) halt() {
	m.halted.Do(func() {
		if m.stop != nil {
			m.stop()
			m.unnotify()
			m.wg.Wait()
		}
	})
}

// close stops the background work and writes the ledger's last rows, within
// the drain deadline (at least minLedgerFlush from now).
func (m *money) close(drain time.Duration) {
	m.halt()
	if m.ledger == nil {
		return
	}
	deadline := time.Now().Add(minLedgerFlush)
	if at := m.stopped.Load(); at != 0 {
		if d := time.Unix(0, at).Add(drain); d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := m.ledger.Close(ctx); err != nil {
		m.log.Warn("usage ledger: the last rows could not all be written", zap.Error(err))
	}
}

// status fills /status's money sections.
func (m *money) status(doc *statusdoc.Document) {
	doc.Credits = m.poller.Status()
	if m.tracker != nil {
		doc.Spend = m.tracker.Spend()
		doc.Budget = m.tracker.Budget()
	}
	switch {
	case m.ledger != nil:
		st := m.ledger.Status()
		doc.Ledger = &statusdoc.Ledger{
			File: st.File, Written: int64(st.Written), Dropped: int64(st.Dropped), Queued: st.Queued,
			LastError: st.LastError, LastErrorAt: st.LastErrorAt, Failing: st.Failing,
		}
	case m.ledgerDown != nil:
		down := *m.ledgerDown
		doc.Ledger = &down
	}
}

// drainOf is the drain timeout proxy.Serve applies.
func drainOf(opts Options) time.Duration {
	if opts.DrainTimeout > 0 {
		return opts.DrainTimeout
	}
	return proxy.DefaultDrainTimeout
}

// attribution is the proxy's attribution setting.
func attribution(cfg config.Config) *proxy.Attribution {
	if !cfg.Attribution.Enabled {
		return nil
	}
	return &proxy.Attribution{Referer: cfg.Attribution.Referer, Title: cfg.Attribution.Title}
}
