//go:build !windows

package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// launchd appends the job's output to the plist's StandardOutPath and
// StandardErrorPath and never rotates them, so `orproxy serve` started by
// launchd rotates its log itself, once at each start: a crash loop or a
// long life cannot fill the disk, and no line is lost to a copy.
const (
	logRotateSize = 10 << 20
	logKeep       = 3
)

// rotateServiceLog rotates the launchd log when out or errOut is that log.
// It is best effort: the proxy runs all the same, and says why in the log.
func rotateServiceLog(out, errOut *os.File) {
	for _, sc := range []scope{{}, {system: true}} {
		dir, err := launchdPlatform{}.logDir(sc)
		if err != nil {
			continue
		}
		path := filepath.Join(dir, "orproxy.log")
		if err := rotateLog(path, logRotateSize, logKeep, out, errOut); err != nil {
			fmt.Fprintf(errOut, "orproxy: cannot rotate the log %s: %v\n", path, err)
		}
	}
}

// rotateLog rotates the log at path when it is larger than limit and one of
// files writes to it: path.1 becomes path.2 and so on up to path.<keep>,
// the log becomes path.1, a new empty log takes its place, and the files
// that wrote to the old log write to the new one from then on.
func rotateLog(path string, limit int64, keep int, files ...*os.File) error {
	info, err := os.Stat(path)
	if err != nil {
		// No log at path: these files write elsewhere.
		return nil
	}
	var ours []*os.File
	for _, f := range files {
		if fi, err := f.Stat(); err == nil && os.SameFile(fi, info) {
			ours = append(ours, f)
		}
	}
	if len(ours) == 0 || info.Size() <= limit {
		return nil
	}
	for i := keep - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return err
	}
	// Private like everything else orproxy writes; O_APPEND as launchd
	// opens it, so the two descriptors do not overwrite each other.
	log, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	for _, f := range ours {
		// The descriptors launchd opened now point at the new log, so
		// everything that holds them (the logger, a panic) follows.
		if err := unix.Dup2(int(log.Fd()), int(f.Fd())); err != nil {
			return err
		}
	}
	return nil
}
