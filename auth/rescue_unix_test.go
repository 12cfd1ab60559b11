//go:build unix

package auth

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func assertRescued(t *testing.T, path string) {
	t.Helper()
	kept, err := NewStore(path).Load()
	require.NoError(t, err)
	assert.Equal(t, fullCredential().APIKey, kept.APIKey)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dir, err := os.Lstat(filepath.Dir(path))
	require.NoError(t, err)
	assert.True(t, dir.IsDir())
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
}

// assertFreshDir checks that path went to a new directory of its own in
// the temporary directory, not to any that was there before.
func assertFreshDir(t *testing.T, tmp, path string) {
	t.Helper()
	assertRescued(t, path)
	assert.Equal(t, tmp, filepath.Dir(filepath.Dir(path)))
	assert.True(t, strings.HasPrefix(filepath.Base(filepath.Dir(path)), "orproxy-"), path)
}

// A rescued key goes only to a directory that is ours and private; one that
// someone else made or planted as a link is passed over for a fresh one.
func TestRescueOnlyIntoAPrivateDirectoryOfOurs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	t.Run("missing: created 0700", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache", "orproxy")
		path, err := rescueIn([]string{dir}, fullCredential())
		require.NoError(t, err)
		assert.Equal(t, dir, filepath.Dir(path))
		assertRescued(t, path)
	})

	t.Run("ours but open to all: tightened and used", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "orproxy-0")
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.NoError(t, os.Chmod(dir, 0o777))
		path, err := rescueIn([]string{dir}, fullCredential())
		require.NoError(t, err)
		assert.Equal(t, dir, filepath.Dir(path))
		assertRescued(t, path)
	})

	t.Run("a symbolic link: not followed", func(t *testing.T) {
		elsewhere := t.TempDir() // the planter's directory
		require.NoError(t, os.Chmod(elsewhere, 0o700))
		link := filepath.Join(t.TempDir(), "orproxy-0")
		require.NoError(t, os.Symlink(elsewhere, link))
		path, err := rescueIn([]string{link}, fullCredential())
		require.NoError(t, err)
		assertFreshDir(t, tmp, path)
		entries, err := os.ReadDir(elsewhere)
		require.NoError(t, err)
		assert.Empty(t, entries, "nothing went through the link")
	})

	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "orproxy-0")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		path, err := rescueIn([]string{file}, fullCredential())
		require.NoError(t, err)
		assertFreshDir(t, tmp, path)
	})

	t.Run("another user's: not used, not changed", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can make a directory that belongs to another user")
		}
		for _, mode := range []os.FileMode{0o700, 0o777} {
			dir := filepath.Join(t.TempDir(), "orproxy-0")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, mode))
			require.NoError(t, os.Chown(dir, 65534, 65534))
			path, err := rescueIn([]string{dir}, fullCredential())
			require.NoError(t, err)
			assertFreshDir(t, tmp, path)
			info, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, mode, info.Mode().Perm(), "someone else's directory is left as it was")
			assert.Equal(t, uint32(65534), info.Sys().(*syscall.Stat_t).Uid)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries)
		}
	})

	t.Run("the first usable one wins", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "not-a-dir")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		good := filepath.Join(t.TempDir(), "orproxy")
		path, err := rescueIn([]string{file, good}, fullCredential())
		require.NoError(t, err)
		assert.Equal(t, good, filepath.Dir(path))
	})
}
