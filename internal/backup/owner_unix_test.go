//go:build unix

package backup

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteKeepsTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can hand a file to another owner")
	}
	path := filepath.Join(t.TempDir(), "opencode.json")
	require.NoError(t, os.WriteFile(path, []byte("{}"), 0o644))
	require.NoError(t, os.Chown(path, 1234, 5678))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	name, err := Write(path, "bak", []byte("{}"), Options{Owner: fi})
	require.NoError(t, err)
	bi, err := os.Stat(name)
	require.NoError(t, err)
	st := bi.Sys().(*syscall.Stat_t)
	assert.Equal(t, []uint32{1234, 5678}, []uint32{st.Uid, st.Gid})
}

func TestWriteIsPrivate(t *testing.T) {
	old := syscall.Umask(0o277) // would make it 0400
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "opencode.json")
	require.NoError(t, os.WriteFile(path, []byte("{}"), 0o644))
	name, err := Write(path, "bak", []byte("{}"), Options{})
	require.NoError(t, err)
	fi, err := os.Stat(name)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
