package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunServeRotatesTheLaunchdLog: started by a service manager with its
// output in the launchd log, serve rotates that log before it runs.
func TestRunServeRotatesTheLaunchdLog(t *testing.T) {
	playServiceManager(t)
	useHomeDir(t, t.TempDir())
	dir, err := launchdPlatform{}.logDir(scope{})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "orproxy.log")
	out, errOut := openLog(t, path), openLog(t, path)
	require.NoError(t, out.Truncate(logRotateSize+1))

	savedOut, savedErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errOut
	t.Cleanup(func() { os.Stdout, os.Stderr = savedOut, savedErr })
	err = RunServe(context.Background(), 0, func(context.Context) error {
		_, err := os.Stderr.WriteString("serving\n")
		return err
	})
	os.Stdout, os.Stderr = savedOut, savedErr
	require.NoError(t, err)

	fi, err := os.Stat(path + ".1")
	require.NoError(t, err)
	assert.Equal(t, int64(logRotateSize+1), fi.Size())
	assert.Equal(t, "serving\n", readString(t, path))
}
