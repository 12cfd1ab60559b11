package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/backup"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testenv"
)

type managerOption func(*auth.ManagerOptions)

func newManager(t *testing.T, env *testenv.Env, store *auth.Store, opts ...managerOption) (*auth.Manager, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	o := auth.ManagerOptions{
		Store: store,
		Broker: func(url string) (auth.Rotator, error) {
			return auth.NewBrokerClient(url, nil, time.Second, nil)
		},
		BrokerURL:     env.BrokerURL,
		BrokerTimeout: time.Second,
		BackoffBase:   50 * time.Millisecond,
		BackoffMax:    200 * time.Millisecond,
		RetryBase:     50 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		Logger:        zap.New(core),
	}
	for _, f := range opts {
		f(&o)
	}
	m := auth.NewManager(o)
	m.Start()
	t.Cleanup(m.Close)
	return m, logs
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestKeyServesStoredCredential(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cred := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, cred.APIKey, k)
}

func TestKeyWithoutCredential(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	m, _ := newManager(t, env, env.Store)
	_, err := m.Key(ctx(t))
	require.ErrorIs(t, err, auth.ErrNoCredential)
	assert.Equal(t, "no credential stored; run `orproxy login`", err.Error(), "with a broker, its login")
	assert.Contains(t, m.Status().Problem, "run `orproxy login`")

	// Without a broker, `orproxy login` would only ask for one: the message
	// names the logins that work.
	m, logs := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.BrokerURL = "" })
	_, err = m.Key(ctx(t))
	require.ErrorIs(t, err, auth.ErrNoCredential)
	assert.Equal(t, "no credential stored; run `orproxy login --method openrouter` (your OpenRouter account) or `orproxy login --method key` (a pasted key)", err.Error())
	assert.Contains(t, m.Status().Problem, "`orproxy login --method openrouter`")
	assert.Equal(t, 1, logs.FilterMessageSnippet("`orproxy login --method openrouter`").Len(), "the start-up warning too")
	assert.Contains(t, auth.Describe(env.Store, "").Problem, "`orproxy login --method key`")
	assert.NotContains(t, auth.Describe(env.Store, env.BrokerURL).Problem, "--method")
}

// A credential found at start is reported once, as loaded; "changed on
// disk" is for a change after that.
func TestStartReportsTheCredentialOnce(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	m, logs := newManager(t, env, env.Store)
	assert.Equal(t, 1, logs.FilterMessage("credential loaded").Len())
	assert.Zero(t, logs.FilterMessage("credential changed on disk").Len(), "nothing changed since the start")

	fresh := env.LoginBroker(t) // another process logs in again
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	require.Equal(t, fresh.APIKey, k)
	assert.Equal(t, 1, logs.FilterMessage("credential changed on disk").Len())
}

func TestConcurrentRejectionsShareOneRotation(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	env.OpenRouter.Revoke(old.APIKey.Reveal())

	const n = 50
	keys := make([]secret.Secret, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := m.Replace(ctx(t), old.APIKey)
			assert.NoError(t, err)
			keys[i] = k
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
	stored := env.Stored(t)
	assert.NotEqual(t, old.APIKey, stored.APIKey)
	for _, k := range keys {
		assert.Equal(t, stored.APIKey, k)
	}
	// A 401 for the old key that arrives after the rotation uses its result.
	k, err := m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err)
	assert.Equal(t, stored.APIKey, k)
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
	st := m.Status()
	assert.Equal(t, 1, st.RotationCount)
	assert.NotNil(t, st.LastRotationAt)
}

func TestKeyWrittenByAnotherProcessIsUsedWithoutBroker(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)

	other := auth.NewStore(env.Store.Path()) // as another process would
	fresh := env.OpenRouter.IssueKey("", nil)
	next := old.Clone()
	next.APIKey = secret.New(fresh.Key)
	require.NoError(t, other.Save(ctx(t), next))

	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, fresh.Key, k.Reveal(), "the next request uses the new key")
	k, err = m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err)
	assert.Equal(t, fresh.Key, k.Reveal())
	assert.Zero(t, env.Broker.Stats().RotateCalls)
}

func TestTwoManagersOnOneFileRotateOnce(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	a, _ := newManager(t, env, auth.NewStore(env.Store.Path()))
	b, _ := newManager(t, env, auth.NewStore(env.Store.Path()))
	env.OpenRouter.Revoke(old.APIKey.Reveal())

	var wg sync.WaitGroup
	got := make([]secret.Secret, 20)
	for i := range got {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := m.Replace(ctx(t), old.APIKey)
			assert.NoError(t, err)
			got[i] = k
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls, "the file lock and the re-read make one rotation across managers")
	stored := env.Stored(t)
	for _, k := range got {
		assert.Equal(t, stored.APIKey, k)
	}
}

func TestRotateAnswerWithoutRefreshTokenKeepsTheOldOne(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{OmitRotatedRefreshToken: true}})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	_, err := m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err)
	stored := env.Stored(t)
	assert.NotEqual(t, old.APIKey, stored.APIKey)
	assert.Equal(t, old.RefreshToken, stored.RefreshToken)
}

func TestNoRotationWithoutBroker(t *testing.T) {
	for _, source := range []auth.Source{auth.SourceManual, auth.SourceOpenRouterOAuth} {
		t.Run(string(source), func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			cred := env.StoreKey(t, source)
			m, _ := newManager(t, env, env.Store)
			_, err := m.Replace(ctx(t), cred.APIKey)
			var re *auth.RotationError
			require.ErrorAs(t, err, &re)
			assert.ErrorIs(t, err, auth.ErrNeedsLogin)
			assert.Contains(t, err.Error(), "run `orproxy login`")
			assert.Zero(t, env.Broker.Stats().RotateCalls)
		})
	}
	t.Run("broker credential but no broker configured", func(t *testing.T) {
		env := testenv.New(t, testenv.Options{})
		cred := env.LoginBroker(t)
		m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.Broker = nil })
		_, err := m.Replace(ctx(t), cred.APIKey)
		require.ErrorContains(t, err, "no broker is configured")
		assert.ErrorIs(t, err, auth.ErrNeedsLogin)
	})
}

func TestBrokerFailuresBackOffAndRecover(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) {
		o.BackoffBase, o.BackoffMax = 300*time.Millisecond, time.Second
	})
	env.Broker.SetFault(broker.Fault{Detail: "database is down"})
	for i := range auth.FailuresBeforeBackoff {
		_, err := m.Replace(ctx(t), old.APIKey)
		require.Error(t, err, "attempt %d", i)
		assert.Contains(t, err.Error(), "database is down")
	}
	_, err := m.Replace(ctx(t), old.APIKey)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "failed 3 times in a row")
	assert.Contains(t, err.Error(), "asks it again in")
	assert.Contains(t, err.Error(), "run `orproxy rotate` or `orproxy login`")
	assert.Equal(t, auth.FailuresBeforeBackoff, env.Broker.Stats().RotateCalls, "no broker call while backing off")
	assert.NotNil(t, m.Status().RotationWaitUntil)

	env.Broker.SetFault(broker.Fault{})
	require.Eventually(t, func() bool {
		_, err := m.Replace(ctx(t), old.APIKey)
		return err == nil
	}, 3*time.Second, 50*time.Millisecond)
	assert.Equal(t, auth.FailuresBeforeBackoff+1, env.Broker.Stats().RotateCalls)
	st := m.Status()
	assert.Empty(t, st.LastRotationError)
	assert.Zero(t, st.RotationFailures)
}

func TestCredentialChangeFromAnotherProcessResetsBackoff(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.BackoffBase, o.BackoffMax = time.Minute, time.Minute })
	env.Broker.SetFault(broker.Fault{Detail: "down"})
	for range auth.FailuresBeforeBackoff {
		_, _ = m.Replace(ctx(t), old.APIKey)
	}
	env.Broker.SetFault(broker.Fault{})
	env.LoginBroker(t) // another process logs in again
	fresh := env.Stored(t)
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, fresh.APIKey, k)
	_, err = m.Replace(ctx(t), fresh.APIKey)
	require.NoError(t, err, "the backoff ended with the new credential")
}

func TestRefreshTokenRejectedAsksForLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	env.Broker.SetFault(broker.Fault{RejectRefresh: true})
	_, err := m.Replace(ctx(t), old.APIKey)
	var re *auth.RotationError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, auth.ErrNeedsLogin)
	assert.ErrorIs(t, err, auth.ErrRefreshRejected)
	assert.Contains(t, err.Error(), "refused the refresh token")
}

func TestBrokerHangIsBounded(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.BrokerTimeout = 300 * time.Millisecond })
	env.Broker.SetFault(broker.Fault{Hang: true})
	start := time.Now()
	_, err := m.Replace(ctx(t), old.APIKey)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// TestSaveFailureKeepsTheNewKey: the broker has revoked the old key by the
// time it answers, so a new key that cannot be saved must still be used and
// saved later.
func TestSaveFailureKeepsTheNewKey(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	// A directory where the file should be defeats any save, even as root.
	require.NoError(t, os.Remove(env.Store.Path()))
	require.NoError(t, os.MkdirAll(env.Store.Path()+"/blocker", 0o700))

	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, old.APIKey, k, "an unusable file does not log the daemon out")

	next, err := m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err)
	assert.NotEqual(t, old.APIKey, next)
	k, err = m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, next, k, "requests use the new key from memory")
	st := m.Status()
	assert.NotEmpty(t, st.SaveError)

	require.NoError(t, os.RemoveAll(env.Store.Path()))
	require.Eventually(t, func() bool {
		c, err := env.Store.Load()
		return err == nil && c.APIKey == next
	}, 3*time.Second, 20*time.Millisecond, "the save is retried")
	assert.Eventually(t, func() bool { return m.Status().SaveError == "" }, time.Second, 10*time.Millisecond)
}

func TestRotationAheadOfExpiry(t *testing.T) {
	// The broker writes expiry times in whole seconds, so the window is
	// seconds wide: the key expires in about 4 s and is due 2 s earlier.
	env := testenv.New(t, testenv.Options{Broker: broker.Options{KeyTTL: 4 * time.Second}})
	old := env.LoginBroker(t)
	expires := old.KeyExpiresAt
	require.False(t, expires.IsZero())
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.RotateBeforeExpiry = 2 * time.Second })

	require.Eventually(t, func() bool { return m.Status().RotationCount >= 1 }, 5*time.Second, 10*time.Millisecond)
	assert.True(t, time.Now().Before(expires), "rotated without any request, ahead of the expiry")
	stored := env.Stored(t)
	assert.NotEqual(t, old.APIKey, stored.APIKey)
	assert.True(t, stored.KeyExpiresAt.After(expires))
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, stored.APIKey, k)
}

// A broker whose keys live no longer than the rotation window: rotating each
// new key at once would fetch another such key without end.
func TestShortLivedKeysAreNotRotatedInALoop(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{KeyTTL: time.Hour}})
	old := env.LoginBroker(t)
	m, logs := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.RotateBeforeExpiry = 2 * time.Hour })
	next, err := m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err)
	time.Sleep(time.Second) // a window to count rotations in, not synchronisation
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls, "only the rotation asked for")
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, next, k)
	assert.Equal(t, 1, logs.FilterMessageSnippet("live no longer than credentials.rotate_before_expiry").Len())
}

// A credential another process stores while no request comes still arms
// the rotation ahead of its expiry: the manager looks at the file when idle.
func TestIdleManagerNoticesAnExpiringCredential(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{KeyTTL: time.Hour}})
	env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) {
		o.RotateBeforeExpiry = 2 * time.Second
		o.IdleFileCheck = 50 * time.Millisecond
	})
	// Another process stores a key that expires in 4 s: due in about 2 s.
	expires := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	short := env.OpenRouter.IssueKey("short", &expires)
	_, err := auth.NewStore(env.Store.Path()).Update(ctx(t), func(c *auth.Credential) (*auth.Credential, error) {
		c.APIKey, c.KeyExpiresAt = secret.New(short.Key), expires
		c.UpdatedAt = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
		return c, nil
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return env.Broker.Stats().RotateCalls == 1 }, 6*time.Second, 20*time.Millisecond,
		"rotated ahead of the expiry without any request")
	assert.True(t, time.Now().Before(expires))
	assert.Eventually(t, func() bool { return m.Status().RotationCount == 1 }, 5*time.Second, 10*time.Millisecond)
}

func TestRotationAheadOfExpiryBacksOff(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{KeyTTL: time.Hour}})
	env.LoginBroker(t)
	// Stored three hours ago with four hours to live: inside the window.
	_, err := env.Store.Update(ctx(t), func(c *auth.Credential) (*auth.Credential, error) {
		c.UpdatedAt = time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
		return c, nil
	})
	require.NoError(t, err)
	env.Broker.SetFault(broker.Fault{Detail: "down"})
	// Already inside the rotation window at start.
	newManager(t, env, env.Store, func(o *auth.ManagerOptions) {
		o.RotateBeforeExpiry = 2 * time.Hour
		o.RetryBase, o.RetryMax = 100*time.Millisecond, 400*time.Millisecond
	})
	time.Sleep(1500 * time.Millisecond) // a window to count attempts in, not synchronisation
	calls := env.Broker.Stats().RotateCalls
	// 0, 100, 300, 700, 1100, 1500 ms: about six attempts, never a spin.
	assert.GreaterOrEqual(t, calls, 3)
	assert.LessOrEqual(t, calls, 8)
}

func TestValidateOnStart(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	check := func(ctx context.Context, key secret.Secret) error {
		_, err := auth.CheckKey(ctx, httpClient, env.UpstreamURL, key)
		return err
	}
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.Check, o.ValidateOnStart = check, true })
	require.Eventually(t, func() bool { return env.Broker.Stats().RotateCalls == 1 }, 3*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		v := m.Status().LastValidation
		return v != nil && v.Result == "rejected; replaced"
	}, time.Second, 10*time.Millisecond)
}

func TestValidateOnStartNetworkErrorIsNotARejection(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	check := func(context.Context, secret.Secret) error { return errors.New("dial tcp: connection refused") }
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.Check, o.ValidateOnStart = check, true })
	require.Eventually(t, func() bool { return m.Status().LastValidation != nil }, time.Second, 10*time.Millisecond)
	assert.Contains(t, m.Status().LastValidation.Result, "unknown")
	assert.Zero(t, env.Broker.Stats().RotateCalls)
}

func TestFileProblemsWhileRunning(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cred := env.LoginBroker(t)
	m, logs := newManager(t, env, env.Store)

	require.NoError(t, os.WriteFile(env.Store.Path(), []byte("{garbage"), 0o600))
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, cred.APIKey, k, "garbage on disk: the last good key stays in use")
	assert.Contains(t, m.Status().FileError, "not valid JSON")
	assert.NotEmpty(t, logs.FilterMessageSnippet("unusable").All())

	// A rotation now saves over the garbage, which is kept as a backup.
	next, err := m.Replace(ctx(t), cred.APIKey)
	require.NoError(t, err)
	baks, err := backup.List(env.Store.Path(), "corrupt")
	require.NoError(t, err)
	require.Len(t, baks, 1)
	bak, err := os.ReadFile(baks[0])
	require.NoError(t, err)
	assert.Equal(t, "{garbage", string(bak))
	assert.Equal(t, next, env.Stored(t).APIKey)
	assert.Empty(t, m.Status().FileError)

	require.NoError(t, os.Remove(env.Store.Path()))
	_, err = m.Key(ctx(t))
	assert.ErrorIs(t, err, auth.ErrNoCredential, "deleting the file is a logout, at once")
}

// A credential another process stores is in use from the next request,
// without a 401 to prompt it.
func TestKeyStoredElsewhereIsUsedByTheNextRequest(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	first := env.LoginBroker(t)
	m, _ := newManager(t, env, env.Store)
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	require.Equal(t, first.APIKey, k)

	second := env.LoginBroker(t)
	require.NotEqual(t, first.APIKey, second.APIKey)
	k, err = m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, second.APIKey, k)
}

func TestStatusHoldsNoSecret(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cred := env.LoginBroker(t)
	m, logs := newManager(t, env, env.Store)
	_, err := m.Replace(ctx(t), cred.APIKey)
	require.NoError(t, err)
	next := env.Stored(t)
	b, err := json.Marshal(m.Status())
	require.NoError(t, err)
	for _, s := range []secret.Secret{cred.APIKey, cred.RefreshToken, next.APIKey, next.RefreshToken} {
		assert.NotContains(t, string(b), s.Reveal())
		for _, e := range logs.All() {
			line, _ := json.Marshal(e.ContextMap())
			assert.NotContains(t, e.Message+string(line), s.Reveal())
		}
	}
	assert.Contains(t, string(b), next.APIKey.String())
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// TestCredentialDirectoryReplacedByAFile: a path component that is a regular
// file stops every read and write, for root too. The daemon keeps its key,
// says what is wrong, keeps a key the broker issues in memory, and saves it
// once the directory is back.
func TestCredentialDirectoryReplacedByAFile(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	m, logs := newManager(t, env, env.Store)
	dir := filepath.Dir(env.Store.Path())
	moved := dir + ".moved"
	require.NoError(t, os.Rename(dir, moved))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))

	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, old.APIKey, k, "the last good key stays in use")
	assert.Contains(t, m.Status().FileError, "not a directory")
	assert.NotEmpty(t, logs.FilterMessageSnippet("unusable").All())

	next, err := m.Replace(ctx(t), old.APIKey)
	require.NoError(t, err, "the broker is reachable, so a rotation works")
	k, err = m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, next, k, "the new key is used from memory")
	assert.NotEmpty(t, m.Status().SaveError)

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Rename(moved, dir))
	require.Eventually(t, func() bool {
		c, err := env.Store.Load()
		return err == nil && c.APIKey == next
	}, 3*time.Second, 20*time.Millisecond, "saved once the directory is back")
	assert.Eventually(t, func() bool { return m.Status().SaveError == "" }, time.Second, 10*time.Millisecond)
	k, err = m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, next, k)
}
