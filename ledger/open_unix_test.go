//go:build unix

package ledger

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withUmask0 makes every file born with exactly the mode its creator asked
// for, so a private file proves it was asked for private.
func withUmask0(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, want, st.Mode().Perm(), path)
}

func TestFilesArePrivateFromTheStart(t *testing.T) {
	withUmask0(t)
	path := testPath(t)
	w := openTest(t, path, Options{})
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	assertMode(t, filepath.Dir(path), 0o700)
	assertMode(t, filepath.Dir(filepath.Dir(path)), 0o700)
	assertMode(t, path, 0o600)
	assertMode(t, path+"-wal", 0o600)
	assertMode(t, path+"-shm", 0o600)

	// A reader opening the ledger once the daemon is gone makes its own
	// -shm; it is private too.
	require.NoError(t, w.Close(context.Background()))
	require.NoFileExists(t, path+"-shm")
	r, err := OpenReader(path)
	require.NoError(t, err)
	_, err = r.Report(context.Background(), Query{By: ByDay})
	require.NoError(t, err)
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + side); err == nil {
			assertMode(t, path+side, 0o600)
		}
	}
	require.NoError(t, r.Close())
}

func TestLooseModesAreTightened(t *testing.T) {
	withUmask0(t)
	path := filepath.Join(t.TempDir(), "usage.db")
	w, err := Open(path, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))
	require.NoError(t, os.Chmod(path, 0o644)) // copied in by hand, say

	w = openTest(t, path, Options{})
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	assertMode(t, path, 0o600)
	assertMode(t, path+"-wal", 0o600)
	assertMode(t, path+"-shm", 0o600)
}
