//go:build unix

package auth

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	info, err := os.Stat(s.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(s.Path()))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	lock, err := os.Stat(s.Path() + ".lock")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), lock.Mode().Perm())

	// An orproxy directory made earlier for config.yaml becomes private;
	// a directory of another name is the user's to set.
	shared := filepath.Join(t.TempDir(), "orproxy")
	require.NoError(t, os.Mkdir(shared, 0o755))
	require.NoError(t, NewStore(filepath.Join(shared, "credentials.json")).Save(testCtx(t), fullCredential()))
	info, err = os.Stat(shared)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	other := t.TempDir()
	require.NoError(t, os.Chmod(other, 0o755))
	require.NoError(t, NewStore(filepath.Join(other, "creds.json")).Save(testCtx(t), fullCredential()))
	info, err = os.Stat(other)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), info.Mode().Perm())

	// A file that someone made readable becomes private again on the next save.
	require.NoError(t, os.Chmod(s.Path(), 0o644))
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	info, err = os.Stat(s.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

// The helper process: the test binary re-executed with helperEnv set runs
// only TestStoreHelperProcess, which does read-modify-write updates on the
// file named in the environment and prints one line per update.
const (
	helperEnv      = "ORPROXY_AUTH_TEST_HELPER"
	helperFileEnv  = "ORPROXY_AUTH_TEST_FILE"
	helperCountEnv = "ORPROXY_AUTH_TEST_COUNT"
)

func TestStoreHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "update" {
		t.Skip("helper process only")
	}
	s := NewStore(os.Getenv(helperFileEnv))
	n, err := strconv.Atoi(os.Getenv(helperCountEnv))
	require.NoError(t, err)
	out := bufio.NewWriter(os.Stdout)
	for i := 0; n < 0 || i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.Update(ctx, incrementCounter)
		cancel()
		require.NoError(t, err)
		fmt.Fprintln(out, "updated")
		require.NoError(t, out.Flush())
	}
}

func startHelper(t *testing.T, path string, count int) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=update", helperFileEnv+"="+path, helperCountEnv+"="+strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout)
}

func TestStoreTwoProcessesLoseNoUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), counterCredential(0)))

	before, err := s.stamp()
	require.NoError(t, err)

	const perProcess = 200
	done := make(chan struct{})
	var readerWG sync.WaitGroup
	var reads, failures int
	readerWG.Go(func() {
		// Paced, not spinning: on a small machine a spinning reader starves
		// the writers it is meant to watch.
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := s.Load(); err != nil {
				if failures == 0 {
					t.Errorf("a reader saw a broken file: %v", err)
				}
				failures++
			}
			reads++
		}
	})

	var cmds []*exec.Cmd
	for range 2 {
		cmd, lines := startHelper(t, s.Path(), perProcess)
		cmds = append(cmds, cmd)
		go func() {
			for lines.Scan() {
			}
		}()
	}
	for _, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "helper process failed")
	}
	close(done)
	readerWG.Wait()

	assert.Equal(t, 2*perProcess, readCounter(t, s), "an update was lost")
	after, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, before.equal(after), "another process's writes change the stamp")
	assert.Zero(t, failures)
	assert.Positive(t, reads)
}

func TestStoreSurvivesKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), counterCredential(0)))

	for round := range 5 {
		cmd, lines := startHelper(t, s.Path(), -1)
		// Let it get going, then kill it wherever it is (maybe mid-write,
		// maybe holding the lock).
		for i := 0; i < 20+round*7; i++ {
			require.True(t, lines.Scan(), "helper stopped early")
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		before := readCounter(t, s) // the file parses
		// The dead writer's lock is gone with it: an update goes through at once.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Update(ctx, incrementCounter)
		cancel()
		require.NoError(t, err)
		assert.Equal(t, before+1, readCounter(t, s))
	}
}
