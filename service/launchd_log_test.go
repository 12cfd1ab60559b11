//go:build !windows

package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openLog opens path the way launchd opens StandardOutPath for the job.
func openLog(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func readString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orproxy.log")
	out, errOut := openLog(t, path), openLog(t, path)
	_, err := out.WriteString(strings.Repeat("old line\n", 20))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".1", []byte("one\n"), 0o600))
	require.NoError(t, os.WriteFile(path+".2", []byte("two\n"), 0o600))
	require.NoError(t, os.WriteFile(path+".3", []byte("three\n"), 0o600))

	require.NoError(t, rotateLog(path, 100, 3, out, errOut))

	assert.Equal(t, strings.Repeat("old line\n", 20), readString(t, path+".1"))
	assert.Equal(t, "one\n", readString(t, path+".2"))
	assert.Equal(t, "two\n", readString(t, path+".3"), "only 3 old logs are kept")
	assert.NoFileExists(t, path+".4")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// What the proxy writes from now on goes to the new log, through the
	// descriptors it already holds.
	_, err = out.WriteString("new out\n")
	require.NoError(t, err)
	_, err = errOut.WriteString("new err\n")
	require.NoError(t, err)
	assert.Equal(t, "new out\nnew err\n", readString(t, path))
	assert.Equal(t, strings.Repeat("old line\n", 20), readString(t, path+".1"))
}

func TestRotateLogLeavesAloneWhatIsNotItsBusiness(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orproxy.log")
	small := openLog(t, path)
	_, err := small.WriteString("short\n")
	require.NoError(t, err)
	require.NoError(t, rotateLog(path, 100, 3, small))
	assert.Equal(t, "short\n", readString(t, path), "not larger than the bound")
	assert.NoFileExists(t, path+".1")

	_, err = small.WriteString(strings.Repeat("x", 200))
	require.NoError(t, err)
	other := openLog(t, filepath.Join(dir, "other.log"))
	require.NoError(t, rotateLog(path, 100, 3, other))
	assert.NoFileExists(t, path+".1", "the process does not write this log (orproxy serve outside launchd)")

	require.NoError(t, rotateLog(filepath.Join(dir, "missing.log"), 100, 3, other))
}

// TestRotateServiceLog: serve under launchd finds its log where the plist
// puts it, and rotates it at 10 MiB.
func TestRotateServiceLog(t *testing.T) {
	home := t.TempDir()
	useHomeDir(t, home)
	dir, err := launchdPlatform{}.logDir(scope{})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "orproxy.log")
	out, errOut := openLog(t, path), openLog(t, path)

	require.NoError(t, out.Truncate(logRotateSize))
	rotateServiceLog(out, errOut)
	assert.NoFileExists(t, path+".1", "exactly the bound is kept")

	_, err = out.WriteString("one more\n")
	require.NoError(t, err)
	rotateServiceLog(out, errOut)
	fi, err := os.Stat(path + ".1")
	require.NoError(t, err)
	assert.Greater(t, fi.Size(), int64(logRotateSize))
	_, err = errOut.WriteString("after\n")
	require.NoError(t, err)
	assert.Equal(t, "after\n", readString(t, path))
}
