package auth_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testenv"
)

const loginURL = "https://login.example/start?state=s"

// userLogin is an automatic login the test finishes as the user would: it
// shows its URL, then waits for the test to say how it ends.
type userLogin struct {
	runs   atomic.Int32
	shown  chan struct{}
	finish chan func() error
}

func newUserLogin() *userLogin {
	return &userLogin{shown: make(chan struct{}, 10), finish: make(chan func() error, 1)}
}

func (u *userLogin) run(ctx context.Context, show func(string)) error {
	u.runs.Add(1)
	show(loginURL)
	u.shown <- struct{}{}
	select {
	case f := <-u.finish:
		return f()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func withLogin(u *userLogin) managerOption {
	return func(o *auth.ManagerOptions) { o.AutoLogin, o.LoginTimeout = u.run, 5*time.Second }
}

// keysAsync asks for n keys at once, as n requests would.
func keysAsync(m *auth.Manager, n int) chan keyResult {
	out := make(chan keyResult, n)
	for range n {
		go func() {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k, err := m.Key(c)
			out <- keyResult{k, err}
		}()
	}
	return out
}

type keyResult struct {
	key secret.Secret
	err error
}

// Each way of ending up with no usable key, and no rotation to bring one,
// starts one login. The request that met the rejection learns its URL at
// once; the requests after it wait for it and get the key it stored.
func TestAutoLoginTriggers(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup stores the credential and breaks it; it returns the
		// rejected key, zero when there is none.
		setup func(t *testing.T, env *testenv.Env) secret.Secret
		says  string
	}{
		{name: "no credential file", setup: func(*testing.T, *testenv.Env) secret.Secret { return secret.Secret{} }},
		{name: "pasted key rejected", says: "the key came from a pasted key and has no broker refresh token", setup: func(t *testing.T, env *testenv.Env) secret.Secret {
			c := env.StoreKey(t, auth.SourceManual)
			env.OpenRouter.Revoke(c.APIKey.Reveal())
			return c.APIKey
		}},
		{name: "OpenRouter login's key rejected", says: "the key came from OpenRouter's own login", setup: func(t *testing.T, env *testenv.Env) secret.Secret {
			c := env.StoreKey(t, auth.SourceOpenRouterOAuth)
			env.OpenRouter.Revoke(c.APIKey.Reveal())
			return c.APIKey
		}},
		{name: "broker refuses the refresh token (401)", says: "refresh token revoked", setup: func(t *testing.T, env *testenv.Env) secret.Secret {
			c := env.LoginBroker(t)
			env.OpenRouter.Revoke(c.APIKey.Reveal())
			env.Broker.SetFault(broker.Fault{RejectRefresh: true})
			return c.APIKey
		}},
		{name: "broker refuses the refresh token (400)", says: "invalid_grant", setup: func(t *testing.T, env *testenv.Env) secret.Secret {
			c := env.LoginBroker(t)
			env.OpenRouter.Revoke(c.APIKey.Reveal())
			env.Broker.SetFault(broker.Fault{Endpoint: "rotate", Status: 400, Detail: "invalid_grant"})
			return c.APIKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			rejected := tc.setup(t, env)
			u := newUserLogin()
			m, logs := newManager(t, env, env.Store, withLogin(u))

			if !rejected.IsZero() {
				k, err := m.Key(ctx(t))
				require.NoError(t, err, "a key not yet known to be rejected is used")
				require.Equal(t, rejected, k)
				// The request that met the rejection: a 401 with the URL.
				_, err = m.Replace(ctx(t), k)
				var started *auth.LoginStartedError
				require.ErrorAs(t, err, &started, "%v", err)
				assert.Equal(t, loginURL, started.URL)
				assert.ErrorIs(t, err, auth.ErrNeedsLogin)
				assert.Contains(t, err.Error(), tc.says)
				assert.Contains(t, err.Error(), "orproxy started a login: open "+loginURL+" to log in (new requests wait up to 5 seconds for it)")
				assert.NotContains(t, err.Error(), rejected.Reveal())
				st := m.Status()
				assert.False(t, st.Usable)
				assert.Contains(t, st.Problem, "OpenRouter rejected it and no rotation can replace it")
				assert.Contains(t, st.Problem, "waits for a login at "+loginURL)
				assert.NotEmpty(t, logs.FilterMessageSnippet("only a login helps").All())
				// Another request that met the same rejection joins the login
				// and asks the broker nothing more.
				calls := env.Broker.Stats().RotateCalls
				_, err = m.Replace(ctx(t), k)
				require.ErrorAs(t, err, &started)
				assert.Equal(t, calls, env.Broker.Stats().RotateCalls)
			}

			// Later requests wait for the login, which runs once for all.
			const n = 5
			waiting := keysAsync(m, n)
			<-u.shown
			time.Sleep(50 * time.Millisecond) // let every request reach the login
			var fresh *auth.Credential
			u.finish <- func() error {
				fresh = env.StoreKey(t, auth.SourceOpenRouterOAuth)
				return nil
			}
			for range n {
				r := <-waiting
				require.NoError(t, r.err)
				assert.Equal(t, fresh.APIKey, r.key, "the key the login stored")
			}
			assert.EqualValues(t, 1, u.runs.Load(), "one login")
			st := m.Status()
			assert.True(t, st.Usable, st.Problem)
			assert.Empty(t, st.LoginURL)
			k, err := m.Key(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, fresh.APIKey, k)
			assert.EqualValues(t, 1, u.runs.Load(), "no login once a key is usable")
		})
	}
}

// The requests waiting for a login that fails get its failure, and the next
// request starts a new one.
func TestAutoLoginFailureReachesTheWaiters(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	c := env.StoreKey(t, auth.SourceManual)
	u := newUserLogin()
	m, _ := newManager(t, env, env.Store, withLogin(u))
	_, err := m.Replace(ctx(t), c.APIKey)
	var started *auth.LoginStartedError
	require.ErrorAs(t, err, &started)

	waiting := keysAsync(m, 3)
	require.Eventually(t, func() bool { return m.LoginJoined() == 3 }, 10*time.Second, 5*time.Millisecond, "the three requests wait for the login")
	u.finish <- func() error { return errors.New("the browser never came back") }
	for range 3 {
		r := <-waiting
		require.Error(t, r.err)
		assert.Contains(t, r.err.Error(), "OpenRouter rejected the stored key (the key came from a pasted key")
		assert.Contains(t, r.err.Error(), "nobody finished the login at "+loginURL+" (the browser never came back); run `orproxy login`")
	}
	assert.EqualValues(t, 1, u.runs.Load())
	assert.Contains(t, m.Status().LastLoginError, "the browser never came back")

	// Still no usable key: the next request starts another login.
	waiting = keysAsync(m, 1)
	<-u.shown
	<-u.shown
	u.finish <- func() error { env.StoreKey(t, auth.SourceManual); return nil }
	require.NoError(t, (<-waiting).err)
	assert.EqualValues(t, 2, u.runs.Load())
}

// A broker that hands out keys OpenRouter rejects is a backoff, not a login:
// the key is its to replace, and no login would make it issue better ones.
func TestDeadKeysFromTheBrokerStartNoLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	u := newUserLogin()
	m, _ := newManager(t, env, env.Store, withLogin(u))
	env.Broker.SetFault(broker.Fault{DeadKeys: true})
	key := old.APIKey
	for range auth.FailuresBeforeBackoff + 1 {
		next, err := m.Replace(ctx(t), key)
		if err != nil {
			assert.ErrorIs(t, err, auth.ErrBrokerFailed)
			assert.NotErrorIs(t, err, auth.ErrNeedsLogin)
			break
		}
		err = m.Rejected(next)
		require.Error(t, err)
		assert.NotErrorIs(t, err, auth.ErrNeedsLogin)
		key = next
	}
	k, err := m.Key(ctx(t))
	require.NoError(t, err, "a request is not held for a login")
	assert.False(t, k.IsZero())
	assert.Zero(t, u.runs.Load(), "no login for a broker's dead keys")
}

// Without login.auto_login a key no rotation can replace is still reported,
// and still used: the user may fix it at OpenRouter.
func TestRejectedKeyWithoutAutoLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	c := env.StoreKey(t, auth.SourceManual)
	m, _ := newManager(t, env, env.Store)
	_, err := m.Replace(ctx(t), c.APIKey)
	var re *auth.RotationError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "run `orproxy login`")
	st := m.Status()
	assert.False(t, st.Usable)
	assert.Contains(t, st.Problem, "OpenRouter rejected it and no rotation can replace it")
	k, err := m.Key(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, c.APIKey, k)

	// OpenRouter accepts it after all: the verdict goes.
	m.Accepted(c.APIKey)
	st = m.Status()
	assert.True(t, st.Usable, st.Problem)
}

// The check at start finds the stored key rejected; it starts no login, as
// only a client's request may. The first request meets the rejection and
// starts it.
func TestValidationAtStartStartsNoLogin(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	c := env.StoreKey(t, auth.SourceManual)
	env.OpenRouter.Revoke(c.APIKey.Reveal())
	u := newUserLogin()
	m, _ := newManager(t, env, env.Store, withLogin(u), func(o *auth.ManagerOptions) {
		o.ValidateOnStart = true
		o.Check = func(ctx context.Context, key secret.Secret) error {
			_, err := auth.CheckKey(ctx, httpClient, env.UpstreamURL, key)
			return err
		}
	})
	require.Eventually(t, func() bool { return m.Status().LastValidation != nil }, 5*time.Second, 10*time.Millisecond)
	assert.Zero(t, u.runs.Load())
	assert.False(t, m.Status().Usable)
}

// A login that stores a key without showing a URL (a broker that knows the
// user from its start headers) answers the request that met the rejection
// with that key, to retry with.
func TestLoginThatFinishesAtOnceGivesTheRetryItsKey(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	c := env.StoreKey(t, auth.SourceManual)
	var fresh *auth.Credential
	m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) {
		o.AutoLogin = func(context.Context, func(string)) error {
			fresh = env.StoreKey(t, auth.SourceBroker)
			return nil
		}
	})
	k, err := m.Replace(ctx(t), c.APIKey)
	require.NoError(t, err)
	assert.Equal(t, fresh.APIKey, k)
}

// The user logs in with `orproxy login` instead of at the URL the daemon
// showed: the requests waiting for the daemon's login take that credential
// within a second or so, and the daemon's login ends.
func TestLoginInAnotherProcessSupersedesTheAutomaticOne(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	c := env.StoreKey(t, auth.SourceManual)
	u := newUserLogin()
	m, _ := newManager(t, env, env.Store, withLogin(u))
	_, err := m.Replace(ctx(t), c.APIKey)
	var started *auth.LoginStartedError
	require.ErrorAs(t, err, &started)
	<-u.shown

	waiting := keysAsync(m, 3)
	time.Sleep(50 * time.Millisecond)
	fresh := env.StoreKey(t, auth.SourceOpenRouterOAuth) // `orproxy login` elsewhere
	for range 3 {
		r := <-waiting
		require.NoError(t, r.err)
		assert.Equal(t, fresh.APIKey, r.key)
	}
	st := m.Status()
	assert.True(t, st.Usable, st.Problem)
	require.Eventually(t, func() bool { return m.Status().LoginURL == "" }, 5*time.Second, 10*time.Millisecond, "the daemon's login ended")
	assert.Empty(t, m.Status().LastLoginError)
	assert.EqualValues(t, 1, u.runs.Load())
}
