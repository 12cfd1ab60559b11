package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/secret"
)

// Rotator asks the broker for a new key; *BrokerClient is one.
type Rotator interface {
	Rotate(ctx context.Context, refresh secret.Secret) (*BrokerCredential, error)
}

// ManagerOptions configure a Manager. Zero durations take the defaults noted.
type ManagerOptions struct {
	Store *Store
	// Broker returns the broker client for a base URL. Nil means no broker:
	// a rejected key cannot be replaced.
	Broker func(baseURL string) (Rotator, error)
	// BrokerURL is the configured broker; a credential's own broker_url wins,
	// so a key is rotated where it was issued.
	BrokerURL string
	// BrokerTimeout bounds one broker call; default 10 s.
	BrokerTimeout time.Duration
	// Check validates a key with OpenRouter (GET /key); an error for which
	// IsKeyRejected holds means the key is refused. Nil disables validation.
	Check func(ctx context.Context, key secret.Secret) error
	// ValidateOnStart checks the stored key once at Start.
	ValidateOnStart bool
	// RotateBeforeExpiry rotates a broker key this long before it expires.
	RotateBeforeExpiry time.Duration
	// BackoffBase and BackoffMax shape the wait between rotation attempts
	// once the broker has failed FailuresBeforeBackoff times in a row;
	// defaults 1 s and 30 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RetryBase and RetryMax pace the background retries (saving a key the
	// disk refused, rotating ahead of expiry after a failure); defaults 5 s and 5 min.
	RetryBase time.Duration
	RetryMax  time.Duration
	Logger    *zap.Logger
	// Scrubber learns every credential in use, so logs never show one.
	Scrubber *logging.Scrubber
	// AutoLogin, when set, runs a login (storing the credential) when no
	// credential is usable and no rotation can bring one: none is stored,
	// or OpenRouter rejected the stored key and it cannot be rotated (a
	// pasted or OpenRouter key, a refresh token the broker refuses). show
	// receives the URL the user must open. Concurrent requests share one
	// login. A broker that issues keys OpenRouter rejects is no reason: its
	// rotations back off instead.
	AutoLogin func(ctx context.Context, show func(url string)) error
	// LoginTimeout bounds an automatic login; default 5 min.
	LoginTimeout time.Duration
	// LoginCommand is the login a failed automatic login tells the user to
	// run, quoted; default LoginCommand(BrokerURL).
	LoginCommand string
	// IdleFileCheck is how often the file is looked at while no request
	// comes, so a credential another process stored re-arms the expiry
	// rotation even then; default 1 min.
	IdleFileCheck time.Duration
}

// DefaultLoginTimeout is how long a login waits for the browser or the user.
const DefaultLoginTimeout = 5 * time.Minute

// Manager is the daemon's view of the credential: it serves the current key
// from memory, notices writes by other processes with one stat per request,
// replaces a rejected key (one rotation for any number of concurrent 401s,
// and across processes through the store's lock), rotates ahead of expiry,
// and never loses a key the broker issued, even when the disk refuses it.
type Manager struct {
	opts ManagerOptions
	log  *zap.Logger
	sf   singleflight.Group // one rotation at a time

	mu       sync.RWMutex
	started  bool        // Start has read the file once: later reads report changes
	cur      *Credential // in use; nil when logged out
	stamp    fileStamp   // the file version last seen
	fileErr  string      // why the file on disk is not in use, if so
	save     pendingSave
	rotation rotationRecord
	expiry   expiryTimer
	valid    validationRecord
	login    autoLogin
	brokers  brokerClients
	// stuck is the key OpenRouter rejected that no rotation can replace;
	// stuckSet says one is recorded, so Accepted costs an atomic load.
	stuck    stuckKey
	stuckSet atomic.Bool
	// probation is set while the key the last rotation brought has not yet
	// been accepted by OpenRouter, so Accepted costs an atomic load on
	// every other request.
	probation atomic.Bool

	wake    chan struct{}
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// stuckKey is a key OpenRouter rejected and no rotation can replace: only a
// login brings another. It stays recorded until a credential with another
// key is in use, or OpenRouter accepts the key after all.
type stuckKey struct {
	key secret.Secret
	// err is why it cannot be replaced, as the rotation said.
	err error
}

// why is the reason a login runs for the stuck key.
func (s stuckKey) why() string { return "OpenRouter rejected the stored key (" + s.what() + ")" }

// what says why the key cannot be replaced, without the advice.
func (s stuckKey) what() string {
	var re *RotationError
	if errors.As(s.err, &re) && re.What != "" {
		return re.What
	}
	return s.err.Error()
}

type validationRecord struct {
	at     time.Time
	result string
	// key is the key checked: a verdict on it says nothing of a key
	// stored since.
	key secret.Secret
}

// NewManager builds a manager; call Start to load the credential and begin
// the background work, and Close to end it.
func NewManager(opts ManagerOptions) *Manager {
	if opts.BrokerTimeout <= 0 {
		opts.BrokerTimeout = DefaultBrokerTimeout
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 5 * time.Second
	}
	if opts.IdleFileCheck <= 0 {
		opts.IdleFileCheck = time.Minute
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = DefaultLoginTimeout
	}
	if opts.LoginCommand == "" {
		opts.LoginCommand = LoginCommand(opts.BrokerURL)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	retry := backoff.Policy{Base: opts.RetryBase, Max: opts.RetryMax}
	m := &Manager{
		opts:     opts,
		log:      log,
		save:     pendingSave{retry: retry},
		rotation: rotationRecord{backoff: backoff.Policy{Base: opts.BackoffBase, Max: opts.BackoffMax}},
		expiry:   expiryTimer{window: opts.RotateBeforeExpiry, retry: retry},
		brokers:  brokerClients{make: opts.Broker},
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	m.login = autoLogin{run: opts.AutoLogin, timeout: opts.LoginTimeout, command: opts.LoginCommand, log: log, stop: m.stop, mu: &m.mu}
	return m
}

// Start loads the credential and starts the background loop: validation at
// start, rotation ahead of expiry, and retries of a failed save.
func (m *Manager) Start() {
	m.syncWithFile()
	m.mu.Lock()
	m.started = true
	cur, fileErr := m.cur, m.fileErr
	m.mu.Unlock()
	switch {
	case cur != nil:
		m.log.Info("credential loaded", zap.String("file", m.opts.Store.Path()), zap.String("source", string(cur.Source)),
			secret.Field("key", cur.APIKey), zap.String("label", cur.KeyLabel))
	case fileErr != "":
		m.log.Error("credential file unusable", zap.String("problem", fileErr))
	default:
		m.log.Warn("no credential stored; requests get 401 until you run "+LoginCommand(m.opts.BrokerURL), zap.String("file", m.opts.Store.Path()))
	}
	m.wg.Add(1)
	go m.loop()
}

// Close stops the background loop and waits for it. A rotation in flight
// finishes on its own within the broker timeout.
func (m *Manager) Close() {
	m.stopped.Do(func() {
		// Under the lock, so no automatic login starts after it.
		m.mu.Lock()
		close(m.stop)
		m.mu.Unlock()
	})
	m.wg.Wait()
	m.login.close()
}

// Key returns the key for a new request. With an automatic login, a
// request that finds no usable key waits for the login (starting it if
// none runs) and gets its outcome: the key it stored, or why there is none.
func (m *Manager) Key(ctx context.Context) (secret.Secret, error) {
	// One stat per request: a key another process stored (orproxy rotate,
	// a login) is used by the very next request, and a removed file is a
	// logout at once. It costs about 5 % of the proxy's CPU under load.
	m.syncWithFile()
	k, why, err := m.keyInMemory()
	if why == "" {
		return k, err
	}
	// No usable key: before a login, look at the file now, where a login
	// in another process may have put one a moment ago.
	m.syncWithFile()
	if k, why, err = m.keyInMemory(); why == "" {
		return k, err
	}
	if err := m.awaitLogin(ctx, m.login.join(why)); err != nil {
		return secret.Secret{}, err
	}
	m.syncWithFile()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return secret.Secret{}, NoCredential(m.opts.BrokerURL)
	}
	// A login stored this credential: even the same key deserves a try.
	m.clearStuckLocked()
	return m.cur.APIKey, nil
}

// keyInMemory is Key from what the manager holds: the key, or the error
// that answers the request, or, when only an automatic login can help, why
// it is needed.
func (m *Manager) keyInMemory() (key secret.Secret, why string, err error) {
	m.mu.RLock()
	cur, fileErr, stuck := m.cur, m.fileErr, m.stuck
	m.mu.RUnlock()
	switch {
	case cur != nil && m.login.enabled() && !stuck.key.IsZero() && cur.APIKey == stuck.key:
		return secret.Secret{}, stuck.why(), nil
	case cur != nil:
		return cur.APIKey, "", nil
	case fileErr != "":
		return secret.Secret{}, "", errors.New(fileErr)
	case !m.login.enabled():
		return secret.Secret{}, "", NoCredential(m.opts.BrokerURL)
	}
	return secret.Secret{}, "no credential is stored", nil
}

// loginFilePoll is how often a request waiting for an automatic login looks
// at the file: a login in another process (`orproxy login`) ends the wait.
const loginFilePoll = time.Second

// awaitLogin waits for the login at to end, or ctx to, and meanwhile looks
// at the file: a usable credential stored there supersedes the login.
func (m *Manager) awaitLogin(ctx context.Context, at *loginAttempt) error {
	t := time.NewTicker(loginFilePoll)
	defer t.Stop()
	for {
		select {
		case <-at.done:
			return at.err
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			m.syncWithFile()
		}
	}
}

// UsableKey is the key in use for the daemon's own calls to OpenRouter (the
// key poller): unlike Key it never starts an automatic login, which only a
// client's request may cause, and it refuses a key known to be unusable.
func (m *Manager) UsableKey() (secret.Secret, error) {
	st := m.Status()
	if !st.Usable {
		return secret.Secret{}, errors.New("no usable key: " + st.Problem)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cur == nil {
		return secret.Secret{}, ErrNoCredential
	}
	return m.cur.APIKey, nil
}

// Replace returns a key to retry with after OpenRouter rejected rejected:
// the stored key if another process has replaced it meanwhile, else a key
// rotated through the broker. Concurrent calls share one rotation, which
// runs on its own context, so a client that goes away cancels only its wait.
// A key no rotation can replace is recorded as stuck; with an automatic
// login, Replace starts one and returns a *LoginStartedError with its URL
// (or, should the login finish at once, the key it stored).
func (m *Manager) Replace(ctx context.Context, rejected secret.Secret) (secret.Secret, error) {
	m.syncWithFile()
	if k, ok := m.otherKey(rejected); ok {
		return k, nil
	}
	if m.login.enabled() {
		m.mu.RLock()
		stuck := m.stuck
		m.mu.RUnlock()
		if !rejected.IsZero() && rejected == stuck.key {
			// A rotation has failed for it already: only a login helps.
			return m.loginAfterRejection(ctx, rejected, stuck.err)
		}
	}
	k, err := m.replace(ctx, rejected)
	if err == nil || !errors.Is(err, ErrNeedsLogin) || ctx.Err() != nil {
		return k, err
	}
	if !m.markStuck(rejected, err) {
		// Another credential came in meanwhile (a login elsewhere): retry
		// with its key rather than start a login for one nobody uses.
		if k, ok := m.otherKey(rejected); ok {
			return k, nil
		}
	}
	if !m.login.enabled() {
		return k, err
	}
	return m.loginAfterRejection(ctx, rejected, err)
}

// replace is Replace without the automatic login: the check at start uses
// it, as only a client's request may start a login.
func (m *Manager) replace(ctx context.Context, rejected secret.Secret) (secret.Secret, error) {
	m.syncWithFile()
	if k, ok := m.otherKey(rejected); ok {
		return k, nil
	}
	// A key still on probation (no answer but a 401 since the rotation that
	// brought it) is as dead for a first attempt as for the retry: under
	// load, requests sent with it meet its 401 before the rotating request's
	// retry does. A key that has worked was revoked since: rotate.
	m.mu.Lock()
	dead := m.rotation.rejected(rejected, time.Now())
	m.probation.Store(!m.rotation.issued.IsZero())
	m.mu.Unlock()
	if dead {
		m.logDeadKey(rejected)
	}
	ch := m.sf.DoChan("rotate", func() (any, error) {
		return m.rotate(rejected, reasonRejected)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return secret.Secret{}, res.Err
		}
		return res.Val.(secret.Secret), nil
	case <-ctx.Done():
		return secret.Secret{}, ctx.Err()
	}
}

// markStuck records that rejected, if still the key in use, cannot be
// replaced by a rotation, for why.
//
// It reports whether rejected is the stuck key now: false when the
// credential changed meanwhile, whose key is then the one to use.
func (m *Manager) markStuck(rejected secret.Secret, why error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.cur.APIKey != rejected {
		return false
	}
	if m.stuck.key == rejected {
		return true
	}
	m.stuck = stuckKey{key: rejected, err: why}
	m.stuckSet.Store(true)
	m.log.Warn("OpenRouter rejects the stored key and no rotation can replace it; only a login helps",
		secret.Field("key", rejected), zap.String("source", string(m.cur.Source)), zap.Error(why))
	return true
}

func (m *Manager) clearStuckLocked() {
	m.stuck = stuckKey{}
	m.stuckSet.Store(false)
}

// loginAfterRejection starts the automatic login, or joins the one under
// way, for the request whose key rejected cannot be replaced for cause, and
// returns once the login shows its URL. A login that ends first answers for
// itself: its failure, or the key it stored, to retry with.
func (m *Manager) loginAfterRejection(ctx context.Context, rejected secret.Secret, cause error) (secret.Secret, error) {
	why := stuckKey{key: rejected, err: cause}.why()
	m.mu.RLock()
	if m.cur == nil {
		why = "no credential is stored"
	}
	m.mu.RUnlock()
	at := m.login.join(why)
	select {
	case <-at.shown:
		return secret.Secret{}, &LoginStartedError{URL: at.url, Cause: cause, Timeout: m.opts.LoginTimeout, Command: m.opts.LoginCommand}
	case <-at.done:
		if at.err != nil {
			return secret.Secret{}, at.err
		}
	case <-ctx.Done():
		return secret.Secret{}, ctx.Err()
	}
	// Done without showing a URL (a broker that knew the user at once).
	m.syncWithFile()
	if k, ok := m.otherKey(rejected); ok {
		return k, nil
	}
	return secret.Secret{}, cause
}

// Accepted is told that OpenRouter answered a request sent with key with
// anything but a 401. The key a rotation just brought then leaves its
// probation: a 401 for it later is a revocation, a reason to rotate, not a
// failed rotation. A key recorded as stuck is one no more. Cheap when no
// key is on probation or stuck, as almost always.
func (m *Manager) Accepted(key secret.Secret) {
	if !m.probation.Load() && !m.stuckSet.Load() {
		return
	}
	m.mu.Lock()
	m.rotation.accept(key)
	m.probation.Store(!m.rotation.issued.IsZero())
	if !key.IsZero() && key == m.stuck.key {
		// The 401 was not OpenRouter's last word on this key.
		m.clearStuckLocked()
	}
	m.mu.Unlock()
}

// Rejected is told that OpenRouter rejected key, which Replace returned, on
// the retry too. A key the broker had just issued makes the rotation a
// failed one, counted toward the backoff once however many requests report
// it. The error says why the client gets the 401 and when orproxy asks the
// broker again.
func (m *Manager) Rejected(key secret.Secret) error {
	m.mu.Lock()
	now := time.Now()
	counted := m.rotation.rejected(key, now)
	// A key counted before, or an older one from the same bad run of the
	// broker that a slow retry still carried.
	dead := counted || key == m.rotation.dead || m.rotation.lastErr == reasonDeadKey
	wait := m.rotation.wait(now)
	m.mu.Unlock()
	if counted {
		m.logDeadKey(key)
	}
	if !dead {
		// Not a key this manager just rotated: another process stored it.
		return errNewerKeyRejected()
	}
	return errDeadKey(wait)
}

func (m *Manager) logDeadKey(key secret.Secret) {
	m.mu.RLock()
	failures, next := m.rotation.failures, m.rotation.notBefore
	m.mu.RUnlock()
	fields := []zap.Field{secret.Field("key", key), zap.Int("consecutive_failures", failures)}
	if next.After(time.Now()) {
		fields = append(fields, zap.Time("next_attempt", next))
	}
	m.log.Warn("key rotation failed: OpenRouter rejects the key the broker just issued", fields...)
}

func (m *Manager) otherKey(rejected secret.Secret) (secret.Secret, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cur != nil && m.cur.APIKey != rejected {
		return m.cur.APIKey, true
	}
	return secret.Secret{}, false
}

// syncWithFile adopts a credential another process wrote. It costs one stat
// when nothing changed.
func (m *Manager) syncWithFile() {
	st, err := m.opts.Store.stamp()
	if err != nil {
		m.setFileProblem(st, err)
		return
	}
	m.mu.RLock()
	same := st.equal(m.stamp)
	m.mu.RUnlock()
	if !same {
		m.reload(st)
	}
}

func (m *Manager) setFileProblem(st fileStamp, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stamp = st
	if msg := err.Error(); msg != m.fileErr {
		m.fileErr = msg
		m.log.Error("credential file unusable; keeping the last good key if there is one", zap.Error(err))
	}
}

func (m *Manager) reload(seen fileStamp) {
	c, st, err := m.opts.Store.loadStamped()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err == nil:
		why := "credential changed on disk"
		if !m.started {
			// The first read, which Start reports as the credential loaded.
			why = ""
		}
		m.adoptLocked(c, st, why)
	case errors.Is(err, ErrNoCredential):
		m.stamp, m.fileErr = st, ""
		switch {
		case m.save.cred != nil:
			// Our unsaved key is the newest there is; the save retry recreates the file.
			m.nudge()
		case m.cur != nil:
			m.log.Warn("credential file removed; requests get 401 until "+LoginCommand(m.opts.BrokerURL), zap.String("file", m.opts.Store.Path()))
			m.cur = nil
		}
	default:
		if !st.exists() {
			st = seen
		}
		m.stamp = st
		if msg := err.Error(); msg != m.fileErr {
			m.fileErr = msg
			if m.cur != nil {
				m.log.Error("credential file unusable; still using the last good key", zap.Error(err))
			} else {
				m.log.Error("credential file unusable", zap.Error(err))
			}
		}
	}
}

// adoptLocked makes c, read from the file at st, the credential in use, and
// reports whether it did; why is logged when the key changes, unless empty.
// A file that holds the key an unsaved rotation replaced (it was unreadable,
// or came back after its directory was gone) is older than the key in
// memory: that key stays, and its save is due now.
func (m *Manager) adoptLocked(c *Credential, st fileStamp, why string) bool {
	if m.save.olderOnDisk(c) {
		m.stamp, m.fileErr = st, ""
		m.save.retryNow(time.Now())
		m.nudge()
		return false
	}
	changed := m.cur == nil || m.cur.APIKey != c.APIKey || m.cur.RefreshToken != c.RefreshToken
	m.cur, m.stamp, m.fileErr = c, st, ""
	// Another process stored a credential after ours was issued: theirs is newer.
	m.save.clear()
	if changed {
		if why != "" {
			m.log.Info(why, secret.Field("key", c.APIKey), zap.String("source", string(c.Source)))
		}
		// A new credential deserves fresh attempts.
		m.rotation.reset()
		m.expiry.reset()
		m.clearStuckLocked()
		// A login under way is not needed any more.
		m.login.supersedeLocked()
		m.scrubLocked()
	}
	// Even the same key may come with another expiry: re-arm the timer.
	m.nudge()
	return true
}

func (m *Manager) scrubLocked() {
	if m.opts.Scrubber == nil {
		return
	}
	var s []secret.Secret
	for _, c := range []*Credential{m.cur, m.save.cred} {
		if c != nil {
			s = append(s, c.APIKey, c.RefreshToken)
		}
	}
	m.opts.Scrubber.Set(s...)
}

// nudge asks the loop to recompute its timers; never blocks.
func (m *Manager) nudge() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) rotate(rejected secret.Secret, why string) (secret.Secret, error) {
	m.mu.RLock()
	cur := m.cur
	m.mu.RUnlock()
	if cur == nil {
		return secret.Secret{}, errNothingToRotate()
	}
	if cur.APIKey != rejected {
		return cur.APIKey, nil
	}
	r := rotation{
		store:          m.opts.Store,
		configURL:      m.opts.BrokerURL,
		callTimeout:    m.opts.BrokerTimeout,
		afterRejection: why == reasonRejected,
		current:        m.currentUnderLock,
		issued:         m.issued,
	}
	if m.opts.Broker != nil {
		r.brokerFor = m.brokers.get
	}
	// A key no broker can replace is answered without the file lock.
	if _, err := r.brokerURL(cur); err != nil {
		return secret.Secret{}, err
	}
	m.mu.RLock()
	wait, dead, last, kind, n := m.rotation.wait(time.Now()), m.rotation.isDead(rejected), m.rotation.lastErr, m.rotation.lastKind, m.rotation.failures
	m.mu.RUnlock()
	if wait > 0 {
		if dead {
			return secret.Secret{}, errDeadKey(wait)
		}
		return secret.Secret{}, errBackingOff(n, last, kind, wait)
	}

	// Own deadline: the request that triggered this may go away, the others
	// waiting on the same rotation must not lose it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.opts.BrokerTimeout+5*time.Second)
	defer cancel()
	unlock, lockErr := m.opts.Store.lock(ctx)
	if lockErr != nil {
		// Better a rotation that another process might duplicate than none:
		// the in-process singleflight still holds.
		m.log.Warn("rotating without the credential file lock", zap.Error(lockErr))
		unlock = func() {}
	}
	defer unlock()
	res, err := r.underLock(ctx, rejected)
	switch {
	case errors.Is(err, ErrRotatedMeanwhile):
		return res.next.APIKey, nil
	case errors.Is(err, ErrSameKey):
		m.keepRefreshToken(res)
		return secret.Secret{}, m.rotationFailed(err, why)
	case errors.Is(err, ErrBrokerFailed), errors.Is(err, ErrRefreshRejected):
		return secret.Secret{}, m.rotationFailed(err, why)
	case err != nil:
		return secret.Secret{}, err
	}

	next := res.next
	m.mu.Lock()
	now := time.Now()
	m.rotation.done(now)
	if res.saveErr != nil {
		m.save.keep(next, rejected, res.saveErr, now)
	} else {
		m.save.clear()
		m.stamp, m.fileErr = res.stamp, ""
	}
	m.scrubLocked()
	m.nudge()
	m.mu.Unlock()

	m.log.Info("rotated the OpenRouter key", zap.String("reason", why),
		secret.Field("old_key", rejected), secret.Field("new_key", next.APIKey))
	if res.saveErr != nil {
		m.log.Error("the broker issued a new key but it could not be saved; using it from memory and retrying the save",
			zap.Error(res.saveErr))
	}
	if life, short := m.expiry.shortLived(next); short {
		m.log.Warn("the broker's keys live no longer than credentials.rotate_before_expiry; each is rotated after half its life instead",
			zap.Duration("key_life", life), zap.Duration("rotate_before_expiry", m.opts.RotateBeforeExpiry))
	}
	return next.APIKey, nil
}

// reasonRejected is why a rotation runs for a 401.
const reasonRejected = "OpenRouter rejected the key"

// currentUnderLock is the credential to rotate, once the file has been read
// under the lock: a credential another process stored is adopted first, and
// an unreadable file leaves the one in memory.
func (m *Manager) currentUnderLock(disk *Credential, st fileStamp, err error) (*Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil && !st.equal(m.stamp) {
		m.adoptLocked(disk, st, "credential rotated by another process")
	}
	if m.cur == nil {
		return nil, errNothingToRotate()
	}
	return m.cur, nil
}

// issued puts a key the broker just issued in use before it is on disk: a
// request that finds it in the file and is rejected with it must find it
// issued here.
func (m *Manager) issued(next *Credential) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = next
	m.rotation.issue(next.APIKey)
	m.probation.Store(true)
	m.clearStuckLocked()
	m.expiry.reset()
	m.scrubLocked()
}

// keepRefreshToken takes up the refresh token that came with a useless
// answer, which the rotation saved.
func (m *Manager) keepRefreshToken(res rotated) {
	if res.next == nil {
		return
	}
	m.mu.Lock()
	if m.cur == res.old {
		m.cur = res.next
		if res.saveErr == nil {
			m.stamp, m.fileErr = res.stamp, ""
		}
		m.scrubLocked()
	}
	m.mu.Unlock()
	if res.saveErr != nil {
		m.log.Error("the broker sent a new refresh token that could not be saved; using it from memory", zap.Error(res.saveErr))
	}
}

// rotationFailed counts a failed rotation toward the backoff and says when
// the broker is asked again.
func (m *Manager) rotationFailed(err error, why string) error {
	var re *RotationError
	if !errors.As(err, &re) {
		return err
	}
	m.mu.Lock()
	wait := m.rotation.fail(re.What, re.Kind, time.Now())
	failures := m.rotation.failures
	m.mu.Unlock()
	m.log.Warn("key rotation failed", zap.String("reason", why), zap.Int("consecutive_failures", failures), zap.String("error", re.What))
	return re.retryingIn(wait)
}

// brokerClients makes one client per broker URL and keeps it.
type brokerClients struct {
	make  func(url string) (Rotator, error)
	mu    sync.Mutex
	byURL map[string]Rotator
}

func (b *brokerClients) get(url string) (Rotator, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.byURL[url]; ok {
		return r, nil
	}
	r, err := b.make(url)
	if err != nil {
		return nil, err
	}
	if b.byURL == nil {
		b.byURL = map[string]Rotator{}
	}
	b.byURL[url] = r
	return r, nil
}
