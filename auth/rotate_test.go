package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testenv"
)

// TestRotateStoredWhileAnotherRotates: an `orproxy rotate` that starts while
// another process is rotating the same key waits for it and does not rotate
// the fresh key again.
func TestRotateStoredWhileAnotherRotates(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	env.Broker.SetFault(broker.Fault{Endpoint: "rotate", Delay: 500 * time.Millisecond})
	brokerFor := func(url string) (auth.Rotator, error) { return auth.NewBrokerClient(url, nil, 5*time.Second, nil) }

	var wg sync.WaitGroup
	var firstOld, firstNext *auth.Credential
	var firstErr error
	wg.Go(func() {
		firstOld, firstNext, firstErr = auth.RotateStored(ctx(t), auth.NewStore(env.Store.Path()), brokerFor, "")
	})
	// The first holds the lock and waits for the slow broker; the second
	// reads the key it means to rotate now, then waits for the lock.
	require.Eventually(t, func() bool { return env.Broker.Stats().RotateCalls == 1 }, 5*time.Second, time.Millisecond)
	seen, current, err := auth.RotateStored(ctx(t), auth.NewStore(env.Store.Path()), brokerFor, "")
	wg.Wait()

	require.NoError(t, firstErr)
	assert.Equal(t, old.APIKey, firstOld.APIKey)
	require.ErrorIs(t, err, auth.ErrRotatedMeanwhile)
	assert.Equal(t, old.APIKey, seen.APIKey)
	assert.Equal(t, firstNext.APIKey, current.APIKey)
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls, "one rotation")
	assert.Equal(t, firstNext.APIKey, env.Stored(t).APIKey)

	// Alone, it rotates as asked.
	_, next, err := auth.RotateStored(context.Background(), env.Store, brokerFor, "")
	require.NoError(t, err)
	assert.NotEqual(t, firstNext.APIKey, next.APIKey)
	assert.Equal(t, 2, env.Broker.Stats().RotateCalls)
}

// sabotage rotates through the real broker, then puts a directory where the
// credential file is, so the save that follows fails.
type sabotage struct {
	auth.Rotator
	path string
}

func (s sabotage) Rotate(ctx context.Context, refresh secret.Secret) (*auth.BrokerCredential, error) {
	a, err := s.Rotator.Rotate(ctx, refresh)
	if err == nil {
		err = errors.Join(os.Remove(s.path), os.MkdirAll(filepath.Join(s.path, "occupied"), 0o700))
	}
	return a, err
}

// A key the broker issued is never lost: when it cannot be stored where it
// belongs, `orproxy rotate` keeps it in a private file and names that file.
func TestRotateStoredKeepsAKeyItCannotSave(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	brokerFor := func(url string) (auth.Rotator, error) {
		b, err := auth.NewBrokerClient(url, nil, 5*time.Second, nil)
		return sabotage{Rotator: b, path: env.Store.Path()}, err
	}
	_, next, err := auth.RotateStored(ctx(t), env.Store, brokerFor, "")
	require.Error(t, err)
	require.NotNil(t, next)
	assert.NotContains(t, err.Error(), next.APIKey.Reveal())
	assert.NotContains(t, err.Error(), next.RefreshToken.Reveal())
	rescued, _ := filepath.Glob(filepath.Join(cache, "orproxy", "credentials.rescued-*.json"))
	require.Len(t, rescued, 1, err.Error())
	assert.Contains(t, err.Error(), "kept, private, in "+rescued[0])
	info, err := os.Stat(rescued[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	kept, err := auth.NewStore(rescued[0]).Load()
	require.NoError(t, err)
	assert.Equal(t, next.APIKey, kept.APIKey)
	assert.Equal(t, next.RefreshToken, kept.RefreshToken)
}

// The daemon's rotation after a 401 and `orproxy rotate` go through the
// same steps, so the same situation fails the same way, in the same words.
func TestDaemonAndRotateCommandFailAlike(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, env *testenv.Env) secret.Secret
		kind    error
		says    string
	}{
		{"no credential", func(*testing.T, *testenv.Env) secret.Secret { return secret.New("sk-or-v1-gone") },
			auth.ErrNeedsLogin, "no credential is stored; run `orproxy login`"},
		{"a pasted key", func(t *testing.T, env *testenv.Env) secret.Secret { return env.StoreKey(t, auth.SourceManual).APIKey },
			auth.ErrNeedsLogin, "the key came from a pasted key and has no broker refresh token, so it cannot be rotated; run `orproxy login`"},
		{"no broker anywhere", func(t *testing.T, env *testenv.Env) secret.Secret {
			env.LoginBroker(t)
			c, err := env.Store.Update(ctx(t), func(c *auth.Credential) (*auth.Credential, error) { c.BrokerURL = ""; return c, nil })
			require.NoError(t, err)
			return c.APIKey
		}, auth.ErrNeedsLogin, "no broker is configured (broker.url or ORPROXY_BROKER_URL); run `orproxy login`"},
		{"refresh token refused", func(t *testing.T, env *testenv.Env) secret.Secret {
			env.Broker.SetFault(broker.Fault{RejectRefresh: true})
			return env.LoginBroker(t).APIKey
		}, auth.ErrRefreshRejected, "the broker refused the refresh token (broker rotate: 401 Unauthorized"},
		{"broker down", func(t *testing.T, env *testenv.Env) secret.Secret {
			env.Broker.SetFault(broker.Fault{Endpoint: "rotate", Status: 503, Detail: "database is down"})
			return env.LoginBroker(t).APIKey
		}, auth.ErrBrokerFailed, "rotating the key through the broker failed: broker rotate: 503 Service Unavailable: database is down; if this persists, run `orproxy rotate` or `orproxy login`"},
		{"same key back", func(t *testing.T, env *testenv.Env) secret.Secret {
			env.Broker.SetFault(broker.Fault{SameKey: true})
			return env.LoginBroker(t).APIKey
		}, auth.ErrSameKey, "; if this persists, run `orproxy rotate` or `orproxy login`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs []error
			for _, who := range []string{"daemon", "rotate command"} {
				env := testenv.New(t, testenv.Options{})
				key := tc.prepare(t, env)
				var err error
				if who == "daemon" {
					m, _ := newManager(t, env, env.Store, func(o *auth.ManagerOptions) { o.BrokerURL = "" })
					_, err = m.Replace(ctx(t), key)
				} else {
					brokerFor := func(url string) (auth.Rotator, error) { return auth.NewBrokerClient(url, nil, time.Second, nil) }
					_, _, err = auth.RotateStored(ctx(t), env.Store, brokerFor, "")
				}
				require.Error(t, err, who)
				assert.ErrorIs(t, err, tc.kind, who)
				assert.Contains(t, err.Error(), tc.says, who)
				errs = append(errs, err)
			}
			if tc.kind != auth.ErrSameKey {
				assert.Equal(t, errs[0].Error(), errs[1].Error(), "one wording")
			}
		})
	}
}

// A broker that hands the key back with a new refresh token has invalidated
// the old token: `orproxy rotate` keeps the new one, as the daemon does.
func TestRotateStoredKeepsANewRefreshTokenThatCameWithTheSameKey(t *testing.T) {
	fresh := secret.New("rt-rotated-refresh-token")
	store := auth.NewStore(filepath.Join(t.TempDir(), "credentials.json"))
	require.NoError(t, store.Save(ctx(t), &auth.Credential{Source: auth.SourceBroker, APIKey: loginKey, RefreshToken: loginRefresh, BrokerURL: "http://127.0.0.1:9/unused"}))
	b := &scriptedBroker{answer: func(secret.Secret) *auth.BrokerCredential {
		return &auth.BrokerCredential{APIKey: loginKey, RefreshToken: fresh}
	}}
	_, _, err := auth.RotateStored(ctx(t), store, func(string) (auth.Rotator, error) { return b, nil }, "")
	require.ErrorIs(t, err, auth.ErrSameKey)
	assert.EqualError(t, err, "rotating the key through the broker failed: the broker returned the key it was asked to replace; if this persists, run `orproxy rotate` or `orproxy login`")
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, loginKey, stored.APIKey)
	assert.Equal(t, fresh, stored.RefreshToken)
}
