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
	"github.com/orproxy/orproxy/internal/fakebroker"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testenv"
)

// TestRotateStoredWhileAnotherRotates: an `orproxy rotate` that starts while
// another process is rotating the same key waits for it and does not rotate
// the fresh key again.
func TestRotateStoredWhileAnotherRotates(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	env.Broker.SetFault(fakebroker.Fault{Endpoint: "rotate", Delay: 500 * time.Millisecond})
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
