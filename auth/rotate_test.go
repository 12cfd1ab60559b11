package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fakebroker"
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
