//go:build unix

package auth_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/testenv"
)

// The rotation helper: the test binary re-executed with rotateHelperEnv set
// runs only TestRotationHelperProcess, which rotates the key in the named
// credential file through the named broker, as a daemon does after a 401,
// over and over until it is killed.
const (
	rotateHelperEnv       = "ORPROXY_AUTH_ROTATE_HELPER"
	rotateHelperFileEnv   = "ORPROXY_AUTH_ROTATE_FILE"
	rotateHelperBrokerEnv = "ORPROXY_AUTH_ROTATE_BROKER"
)

func TestRotationHelperProcess(t *testing.T) {
	if os.Getenv(rotateHelperEnv) != "rotate" {
		t.Skip("helper process only")
	}
	m := auth.NewManager(auth.ManagerOptions{
		Store: auth.NewStore(os.Getenv(rotateHelperFileEnv)),
		Broker: func(url string) (auth.Rotator, error) {
			return auth.NewBrokerClient(url, nil, 5*time.Second, nil)
		},
		BrokerURL:     os.Getenv(rotateHelperBrokerEnv),
		BrokerTimeout: 5 * time.Second,
		Logger:        zap.NewNop(),
	})
	m.Start()
	fmt.Println("started")
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		k, err := m.Key(ctx)
		if err == nil {
			_, err = m.Replace(ctx, k)
		}
		cancel()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
	}
}

// TestKilledDuringRotation kills a process with SIGKILL at random moments
// while it rotates the key (waiting for the broker, writing the file,
// renaming it): the file must parse afterwards and hold the credential from
// before the rotation under way or the one the broker answered with, never
// anything else, and the dead process's lock must not hold up the next one.
func TestKilledDuringRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	rounds := 25
	if v, err := strconv.Atoi(os.Getenv("ORPROXY_KILL_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var keptOld, tookNew int
	for round := range rounds {
		// A broker that is mostly quick and sometimes slow moves the kill
		// between the broker call and the save (a save takes about a
		// millisecond here, as long as a quick broker call).
		var delay time.Duration
		if rng.IntN(3) == 0 {
			delay = time.Duration(1+rng.IntN(15)) * time.Millisecond
		}
		env.Broker.SetFault(broker.Fault{Endpoint: "rotate", Delay: delay})
		before := env.Stored(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestRotationHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), rotateHelperEnv+"=rotate", rotateHelperFileEnv+"="+env.Store.Path(), rotateHelperBrokerEnv+"="+env.BrokerURL)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(stdout)
		require.True(t, lines.Scan(), "helper did not start")
		require.Equal(t, "started", lines.Text())
		// The kill lands at a random point of the rotation loop.
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err = cmd.Wait()
		require.Error(t, err)
		rest := ""
		for lines.Scan() {
			rest += lines.Text() + "\n"
		}
		require.NotContains(t, rest, "error:", "round %d: the helper failed on its own", round)

		after, err := env.Store.Load()
		require.NoError(t, err, "round %d: the file must parse after the kill", round)
		// The broker's newest key is the one the rotation under way got;
		// the file holds it or the one before it.
		newest := env.Broker.Stats().CurrentKey
		require.NotNil(t, newest)
		switch after.APIKey.Reveal() {
		case newest.Key:
			tookNew++
			assert.Equal(t, newest.Hash, after.KeyHash)
		default:
			keptOld++
			assert.Equal(t, before.RefreshToken, after.RefreshToken, "round %d", round)
			assert.True(t, isPreviousKey(env, after.APIKey.Reveal(), newest.Label) || after.APIKey == before.APIKey,
				"round %d: the file holds a key that is neither the newest nor the one before it", round)
		}
		assert.Equal(t, auth.SourceBroker, after.Source)
		assert.False(t, after.RefreshToken.IsZero())

		// The dead process's lock went with it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		unlock, err := env.Store.Lock(ctx)
		cancel()
		require.NoError(t, err, "round %d: the lock is free", round)
		unlock()
	}
	// Temporary files a kill left behind are as private as the credential.
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(env.Store.Path()), ".credentials.json.tmp-*"))
	require.NoError(t, err)
	for _, f := range leftovers {
		info, err := os.Stat(f)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), f)
	}
	t.Logf("%d kills: the file held the key from before the rotation %d times and the new key %d times; %d temporary files left",
		rounds, keptOld, tookNew, len(leftovers))
	assert.Positive(t, env.Broker.Stats().RotateCalls)

	// A logout leaves no key behind, in those files either.
	_, err = env.Store.Remove(context.Background())
	require.NoError(t, err)
	entries, err := os.ReadDir(filepath.Dir(env.Store.Path()))
	require.NoError(t, err)
	for _, e := range entries {
		assert.Equal(t, "credentials.json.lock", e.Name(), "left after logout")
	}
}

// isPreviousKey reports whether key is the one the broker issued just before
// the key labelled newestLabel ("… N").
func isPreviousKey(env *testenv.Env, key, newestLabel string) bool {
	i := strings.LastIndexByte(newestLabel, ' ')
	n, err := strconv.Atoi(newestLabel[i+1:])
	if err != nil {
		return false
	}
	want := newestLabel[:i+1] + strconv.Itoa(n-1)
	for _, k := range env.OpenRouter.Keys() {
		if k.Key == key {
			return k.Label == want
		}
	}
	return false
}
