package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
)

// writeFileAtomic replaces path with data so that a reader, or a crash at any
// moment, sees the old file or the new one, never a truncated mix. The new
// file is private (0600) whatever the umask: os.CreateTemp creates it 0600.
// It returns the written file's own FileInfo, taken before the rename, so the
// caller knows exactly which version it wrote even if something replaces the
// file right after.
func writeFileAtomic(path string, data []byte) (written os.FileInfo, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// CreateTemp already uses 0600; Chmod guards a platform or a future Go
	// where it does not, since this file holds a key.
	if runtime.GOOS != "windows" {
		if err := tmp.Chmod(0o600); err != nil {
			return nil, fmt.Errorf("restrict temporary file: %w", err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return nil, fmt.Errorf("write temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("flush temporary file: %w", err)
	}
	written, err = tmp.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close temporary file: %w", err)
	}
	if err := rename(tmpName, path); err != nil {
		return nil, fmt.Errorf("replace file: %w", err)
	}
	// Without the directory fsync a power cut can forget the rename and bring
	// back the old file after the caller was told the new one is stored.
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return written, nil
}

// renameRetry paces rename's retries: 10 of them wait about 5 s in all.
var renameRetry = backoff.Policy{Base: 5 * time.Millisecond, Max: 3 * time.Second}

// rename retries on Windows, where replacing a file that another process has
// open fails with "Access is denied" until that process closes it.
func rename(from, to string) error {
	err := os.Rename(from, to)
	if runtime.GOOS != "windows" {
		return err
	}
	for try := 0; err != nil && try < 10 && errors.Is(err, fs.ErrPermission); try++ {
		time.Sleep(renameRetry.Delay(try))
		err = os.Rename(from, to)
	}
	return err
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there; NTFS journals renames
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
