//go:build unix

package auth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/secret"
)

// linkedStore makes <tmp>/orproxy/credentials.json a link (as given by
// linkTo) to <tmp>/dotfiles/orproxy-credentials.json and returns the store
// of the link and the target's path.
func linkedStore(t *testing.T, linkTo func(target, link string) string) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	target := filepath.Join(root, "dotfiles", "orproxy-credentials.json")
	link := filepath.Join(root, "orproxy", "credentials.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o700))
	require.NoError(t, os.Symlink(linkTo(target, link), link))
	return NewStore(link), target
}

func absoluteLink(target, _ string) string { return target }

func relativeLink(target, link string) string {
	rel, err := filepath.Rel(filepath.Dir(link), target)
	if err != nil {
		panic(err)
	}
	return rel
}

func assertStillALink(t *testing.T, link, target string) {
	t.Helper()
	info, err := os.Lstat(link)
	require.NoError(t, err)
	require.True(t, info.Mode()&os.ModeSymlink != 0, "%s was replaced by a regular file", link)
	got, err := filepath.EvalSymlinks(link)
	require.NoError(t, err)
	want, err := filepath.EvalSymlinks(target)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// A credential file kept with the user's dotfiles, linked into place, stays
// a link: saves write the target, and a daemon watching the link's stamp
// notices them.
func TestStoreSaveKeepsASymlink(t *testing.T) {
	for name, linkTo := range map[string]func(string, string) string{"absolute": absoluteLink, "relative": relativeLink} {
		t.Run(name, func(t *testing.T) {
			s, target := linkedStore(t, linkTo)
			require.NoError(t, os.WriteFile(target, nil, 0o644)) // made by hand, readable
			require.NoError(t, os.Remove(target))
			// The first save goes through a link whose target does not exist yet.
			require.NoError(t, s.Save(testCtx(t), fullCredential()))
			assertStillALink(t, s.Path(), target)

			// The daemon (another Store on the same path) loads and stamps.
			daemon := NewStore(s.Path())
			_, seen, err := daemon.loadStamped()
			require.NoError(t, err)
			now, err := daemon.stamp()
			require.NoError(t, err)
			require.True(t, seen.equal(now))

			next := fullCredential()
			next.APIKey = secret.New(testKey[:len(testKey)-4] + "beef")
			written, err := s.saveLocked(next)
			require.NoError(t, err)
			assertStillALink(t, s.Path(), target)

			now, err = daemon.stamp()
			require.NoError(t, err)
			assert.False(t, seen.equal(now), "the daemon's stamp sees the save")
			assert.True(t, written.equal(now), "the stamp of the save is the stamp of the file behind the link")
			got, err := daemon.Load()
			require.NoError(t, err)
			assert.Equal(t, next.APIKey, got.APIKey)

			onDisk, err := NewStore(target).Load()
			require.NoError(t, err)
			assert.Equal(t, next.APIKey, onDisk.APIKey, "the content is in the target")
			info, err := os.Stat(target)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			dir, err := os.Stat(filepath.Dir(target))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o755), dir.Mode().Perm(), "a directory of another name is the user's to set")

			// No temporary file is left beside either.
			for _, d := range []string{filepath.Dir(s.Path()), filepath.Dir(target)} {
				entries, err := os.ReadDir(d)
				require.NoError(t, err)
				for _, e := range entries {
					assert.NotContains(t, e.Name(), ".tmp-")
				}
			}
		})
	}
}

// Updates and a corrupt target work through the link too; the backup of a
// corrupt target stays in orproxy's private directory, out of the dotfiles.
func TestStoreUpdateAndBackupThroughASymlink(t *testing.T) {
	s, target := linkedStore(t, absoluteLink)
	require.NoError(t, os.WriteFile(target, []byte("{garbage"), 0o600))
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	assertStillALink(t, s.Path(), target)
	baks := corruptBackups(t, s)
	require.Len(t, baks, 1)
	assert.Equal(t, filepath.Dir(s.Path()), filepath.Dir(baks[0]))
	bak, err := os.ReadFile(baks[0])
	require.NoError(t, err)
	assert.Equal(t, "{garbage", string(bak))

	_, err = s.Update(testCtx(t), func(cur *Credential) (*Credential, error) {
		cur.KeyLabel = "renamed"
		return cur, nil
	})
	require.NoError(t, err)
	assertStillALink(t, s.Path(), target)
	got, err := NewStore(target).Load()
	require.NoError(t, err)
	assert.Equal(t, "renamed", got.KeyLabel)
}

// A logout removes the key, not the link: the next login writes through it.
func TestStoreRemoveKeepsASymlink(t *testing.T) {
	s, target := linkedStore(t, relativeLink)
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	removed, err := s.Remove(testCtx(t))
	require.NoError(t, err)
	assert.True(t, removed)
	assert.NoFileExists(t, target, "the key does not stay behind")
	info, err := os.Lstat(s.Path())
	require.NoError(t, err)
	assert.True(t, info.Mode()&os.ModeSymlink != 0)
	_, err = s.Load()
	assert.ErrorIs(t, err, ErrNoCredential)
	st, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, st.exists())
	removed, err = s.Remove(testCtx(t))
	require.NoError(t, err)
	assert.False(t, removed)

	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	assertStillALink(t, s.Path(), target)
}

func TestStoreSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.Symlink(b, a))
	require.NoError(t, os.Symlink(a, b))
	err := NewStore(a).Save(testCtx(t), fullCredential())
	assert.ErrorContains(t, err, "symbolic links in a row")
	info, err := os.Lstat(a)
	require.NoError(t, err)
	assert.True(t, info.Mode()&os.ModeSymlink != 0, "left as it was")
}
