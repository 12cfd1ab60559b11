package auth_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/secret"
)

// scriptedBroker is a Rotator whose answers the test chooses; it counts calls.
type scriptedBroker struct {
	mu     sync.Mutex
	calls  int
	answer func(refresh secret.Secret) *auth.BrokerCredential
}

func (b *scriptedBroker) Rotate(_ context.Context, refresh secret.Secret) (*auth.BrokerCredential, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	return b.answer(refresh), nil
}

func (b *scriptedBroker) set(answer func(refresh secret.Secret) *auth.BrokerCredential) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answer = answer
}

func (b *scriptedBroker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// keyN is the n-th key of a test, shaped like an OpenRouter key.
func keyN(prefix string, n int) secret.Secret {
	return secret.New(fmt.Sprintf("sk-or-v1-%s%056d", prefix, n))
}

// keyMinter answers each rotation with a new key from prefix.
func keyMinter(prefix string) func(secret.Secret) *auth.BrokerCredential {
	var mu sync.Mutex
	n := 0
	return func(refresh secret.Secret) *auth.BrokerCredential {
		mu.Lock()
		defer mu.Unlock()
		n++
		return &auth.BrokerCredential{APIKey: keyN(prefix, n), RefreshToken: refresh}
	}
}

var (
	loginKey     = keyN("login", 0)
	loginRefresh = secret.New("rt-login-refresh-token")
)

// churnManager runs a manager over a broker credential whose key is
// loginKey, rotated through b.
func churnManager(t *testing.T, b *scriptedBroker, opts ...managerOption) (*auth.Manager, *auth.Store) {
	t.Helper()
	store := auth.NewStore(filepath.Join(t.TempDir(), "credentials.json"))
	require.NoError(t, store.Save(ctx(t), &auth.Credential{
		Source: auth.SourceBroker, APIKey: loginKey, RefreshToken: loginRefresh,
		BrokerURL: "http://127.0.0.1:9/unused", UpdatedAt: time.Now().UTC().Truncate(time.Second),
	}))
	o := auth.ManagerOptions{
		Store:         store,
		Broker:        func(string) (auth.Rotator, error) { return b, nil },
		BrokerTimeout: time.Second,
		// Longer than any test: a backoff, once it begins, lasts the test.
		BackoffBase: time.Hour,
		BackoffMax:  time.Hour,
	}
	for _, f := range opts {
		f(&o)
	}
	m := auth.NewManager(o)
	m.Start()
	t.Cleanup(m.Close)
	return m, store
}

// request plays what the proxy does for one request while OpenRouter
// accepts only the keys good says yes to: the key, on a 401 its
// replacement, and on a 401 for that too the report of it. It returns nil
// for an answered request, else why the client got its 401.
func request(t *testing.T, m *auth.Manager, good func(secret.Secret) bool) error {
	t.Helper()
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	if good(k) {
		return nil
	}
	next, err := m.Replace(ctx(t), k)
	if err != nil {
		return err
	}
	if good(next) {
		return nil
	}
	return m.Rejected(next)
}

func noKey(secret.Secret) bool { return false }

// anHour matches the backoff left of an hour, as the messages round it.
const anHour = `(1h0m0s|59m[0-9.]+s)`

// TestBrokerReturningTheRejectedKeyIsAFailedRotation: a rotate answer that
// carries the very key OpenRouter rejected is not a rotation. It is not
// stored, counts toward the backoff, and says so; 50 requests in a row make
// at most 4 broker calls (here exactly FailuresBeforeBackoff, as the backoff
// outlasts the test).
func TestBrokerReturningTheRejectedKeyIsAFailedRotation(t *testing.T) {
	b := &scriptedBroker{answer: func(refresh secret.Secret) *auth.BrokerCredential {
		return &auth.BrokerCredential{APIKey: loginKey, RefreshToken: refresh}
	}}
	m, store := churnManager(t, b)
	before, err := store.Load()
	require.NoError(t, err)

	var errs []error
	for range 50 {
		errs = append(errs, request(t, m, noKey))
	}
	assert.Equal(t, auth.FailuresBeforeBackoff, b.count(), "then the backoff holds")
	for i, err := range errs[:auth.FailuresBeforeBackoff] {
		require.Error(t, err, "request %d", i)
		assert.Contains(t, err.Error(), "the broker returned the key OpenRouter had just rejected", "request %d", i)
		assert.Contains(t, err.Error(), "run `orproxy rotate` or `orproxy login`")
	}
	assert.Regexp(t, "orproxy asks the broker again in "+anHour, errs[auth.FailuresBeforeBackoff-1].Error())
	for _, err := range errs[auth.FailuresBeforeBackoff:] {
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the broker failed 3 times in a row (last: the broker returned the key OpenRouter had just rejected)")
		assert.Regexp(t, "asks it again in "+anHour, err.Error())
	}

	after, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, before.UpdatedAt, after.UpdatedAt, "the same key is not stored again")
	st := m.Status()
	assert.Zero(t, st.RotationCount)
	assert.Equal(t, auth.FailuresBeforeBackoff, st.RotationFailures)
	assert.Equal(t, "the broker returned the key OpenRouter had just rejected", st.LastRotationError)
	assert.NotNil(t, st.RotationWaitUntil)
}

// TestSameKeyWithANewRefreshTokenKeepsTheToken: a broker that rotates
// refresh tokens has invalidated the old one even when its key answer is
// useless; the new token is kept, the rotation still failed.
func TestSameKeyWithANewRefreshTokenKeepsTheToken(t *testing.T) {
	fresh := secret.New("rt-rotated-refresh-token")
	b := &scriptedBroker{answer: func(secret.Secret) *auth.BrokerCredential {
		return &auth.BrokerCredential{APIKey: loginKey, RefreshToken: fresh}
	}}
	m, store := churnManager(t, b)
	_, err := m.Replace(ctx(t), loginKey)
	require.ErrorContains(t, err, "the broker returned the key OpenRouter had just rejected")
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, loginKey, stored.APIKey)
	assert.Equal(t, fresh, stored.RefreshToken)
	assert.Equal(t, 1, m.Status().RotationFailures)
}

// TestBrokerIssuingDeadKeysBacksOff: each rotation brings a key OpenRouter
// rejects on the retry too. Reported through Rejected, each is a failed
// rotation: counted once however many requests report it, the backoff
// engages, 50 requests in a row make at most 4 broker calls, and the 401
// explains.
func TestBrokerIssuingDeadKeysBacksOff(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("dead")}
	m, _ := churnManager(t, b)

	var errs []error
	for range 50 {
		errs = append(errs, request(t, m, noKey))
	}
	assert.Equal(t, auth.FailuresBeforeBackoff, b.count(), "then the backoff holds")
	for i, err := range errs {
		require.Error(t, err, "request %d", i)
		assert.Contains(t, err.Error(), "the broker issued a new key but OpenRouter rejected it too; orproxy asks the broker again ", "request %d", i)
		assert.Contains(t, err.Error(), "if this persists", "request %d", i)
	}
	assert.Contains(t, errs[0].Error(), "again on the next request", "before the backoff")
	assert.Regexp(t, "again in "+anHour, errs[auth.FailuresBeforeBackoff-1].Error())
	assert.Regexp(t, "again in "+anHour, errs[49].Error())
	for _, err := range errs {
		assert.NotContains(t, err.Error(), "sk-or-v1-dead", "no key in the message")
	}

	st := m.Status()
	assert.Equal(t, auth.FailuresBeforeBackoff, st.RotationFailures)
	assert.Equal(t, "the broker issued a new key but OpenRouter rejected it too", st.LastRotationError)
	assert.NotNil(t, st.RotationWaitUntil)
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, keyN("dead", auth.FailuresBeforeBackoff), k, "the last key issued stays in use: there is none better")
}

// TestDeadKeyReportedByManyRequestsCountsOnce: concurrent requests share
// one rotation and all see its key rejected; that is one failed rotation.
func TestDeadKeyReportedByManyRequestsCountsOnce(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("dead")}
	m, _ := churnManager(t, b)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := m.Replace(ctx(t), loginKey)
			if assert.NoError(t, err) {
				assert.ErrorContains(t, m.Rejected(next), "the broker issued a new key but OpenRouter rejected it too")
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, b.count())
	assert.Equal(t, 1, m.Status().RotationFailures)
}

// TestFreshKeyRejectedOnAFirstAttemptCounts: a request that started with
// the new key while the rotating one was still retrying meets the same
// dead key; its 401 (Replace, not Rejected) makes the rotation a failure too.
func TestFreshKeyRejectedOnAFirstAttemptCounts(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("dead")}
	m, _ := churnManager(t, b)
	k := loginKey
	var err error
	for range 10 {
		var next secret.Secret
		if next, err = m.Replace(ctx(t), k); err != nil {
			break
		}
		k = next
	}
	require.Error(t, err)
	assert.Regexp(t, "the broker issued a new key but OpenRouter rejected it too; orproxy asks the broker again in "+anHour, err.Error())
	assert.Equal(t, auth.FailuresBeforeBackoff, b.count())
}

// TestKeysRevokedAfterTheyWorkedRotate: a key that served requests and was
// then revoked is an ordinary revocation, however soon after its rotation,
// not a failed rotation: revoked every few seconds, each key is rotated and
// no backoff ever engages.
func TestKeysRevokedAfterTheyWorkedRotate(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("good")}
	m, _ := churnManager(t, b)
	k := loginKey
	for i := range 10 {
		next, err := m.Replace(ctx(t), k)
		require.NoError(t, err, "revocation %d", i+1)
		require.NotEqual(t, k, next)
		m.Accepted(next) // the retry, and the requests after it, got answers
		k = next
	}
	assert.Equal(t, 10, b.count())
	st := m.Status()
	assert.Zero(t, st.RotationFailures)
	assert.Empty(t, st.LastRotationError)
	assert.Nil(t, st.RotationWaitUntil)
}

// TestDeadKeysThenHealedBroker: once the broker issues good keys again,
// requests succeed within the backoff, and the accepted rotation clears the
// failures as any successful one does.
func TestDeadKeysThenHealedBroker(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("dead")}
	m, _ := churnManager(t, b, func(o *auth.ManagerOptions) { o.BackoffBase, o.BackoffMax = 100*time.Millisecond, 400*time.Millisecond })
	for range 10 {
		require.Error(t, request(t, m, noKey))
	}
	require.LessOrEqual(t, b.count(), 4)
	require.GreaterOrEqual(t, m.Status().RotationFailures, auth.FailuresBeforeBackoff)

	b.set(keyMinter("good"))
	isGood := func(k secret.Secret) bool { return len(k.Reveal()) > 13 && k.Reveal()[9:13] == "good" }
	healed := time.Now()
	require.Eventually(t, func() bool { return request(t, m, isGood) == nil }, 5*time.Second, 20*time.Millisecond)
	assert.Less(t, time.Since(healed), 2*time.Second, "within the 400 ms backoff and a margin")
	st := m.Status()
	assert.Zero(t, st.RotationFailures)
	assert.Empty(t, st.LastRotationError)
	assert.Nil(t, st.RotationWaitUntil)
	require.NoError(t, request(t, m, isGood), "and the next request uses the good key")
}

// TestValidateOnStartFindsADeadReplacement: the start-up check rotates a
// rejected key and checks the replacement as a retry would.
func TestValidateOnStartFindsADeadReplacement(t *testing.T) {
	b := &scriptedBroker{answer: keyMinter("dead")}
	check := func(context.Context, secret.Secret) error {
		return &auth.KeyRejectedError{Status: 401, Message: "User not found."}
	}
	m, _ := churnManager(t, b, func(o *auth.ManagerOptions) { o.Check, o.ValidateOnStart = check, true })
	require.Eventually(t, func() bool { return m.Status().LastValidation != nil }, 3*time.Second, 10*time.Millisecond)
	st := m.Status()
	assert.Contains(t, st.LastValidation.Result, "the replacement was rejected too")
	assert.Equal(t, 1, st.RotationFailures)
	assert.Equal(t, 1, b.count())
}
