//go:build unix

package opencode

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFileKeepsTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can hand a file to another owner")
	}
	path := filepath.Join(t.TempDir(), "opencode.json")
	require.NoError(t, os.WriteFile(path, []byte(existingJSON), 0o644))
	require.NoError(t, os.Chown(path, 1234, 5678))
	res, err := WriteFile(path, testResult())
	require.NoError(t, err)
	for _, p := range []string{path, res.Backup} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, []uint32{1234, 5678}, []uint32{st.Uid, st.Gid}, "sudo must not leave %s owned by root", p)
	}
}
