// Package backup keeps copies of files that orproxy is about to replace: a
// credential file that no longer parses, an OpenCode config before a merge.
// Every backup gets a name of its own, stamped with the time, so a second
// replacement never overwrites the copy the first one kept; the oldest are
// removed so that only the last Keep remain.
package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Keep is how many backups of one file (per tag) are kept.
const Keep = 5

// timeFormat is UTC to the second, so names sort by time and read the same
// in every time zone.
const timeFormat = "20060102T150405Z"

// maxSameSecond bounds the search for a free name within one second.
const maxSameSecond = 1000

// now is the clock, replaceable in tests.
var now = time.Now

// Options tune Write.
type Options struct {
	// Owner, when set, is the file whose owner and group the backup gets
	// (best effort, Unix only), so a backup made under sudo is not left
	// owned by root in the user's directory.
	Owner fs.FileInfo
}

// Write keeps data as a new backup of path and returns the backup's path:
// <path>.<tag>-<UTC time>, with -2, -3 … added when a backup of that second
// exists already. An existing file is never overwritten. The backup is 0600
// whatever the original's mode: the old text may hold a key or a token. Once
// the backup is safely on disk, backups of path with the same tag beyond the
// newest Keep are removed; failing to remove one does not fail the backup.
func Write(path, tag string, data []byte, opts Options) (string, error) {
	if tag == "" || strings.ContainsAny(tag, `/\`) {
		return "", fmt.Errorf("back up %s: invalid backup tag %q", path, tag)
	}
	stamp := now().UTC().Format(timeFormat)
	prefix := path + "." + tag + "-" + stamp
	// Start after the highest counter of this second: a name freed by
	// pruning must not be taken again, or the newest backup would sort as
	// the oldest and be the next one removed.
	first := 1
	if existing, err := list(path, tag); err == nil {
		for _, f := range existing {
			if f.stamp == stamp && f.n >= first {
				first = f.n + 1
			}
		}
	}
	for n := first; n < first+maxSameSecond; n++ {
		name := prefix
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		err := create(name, data, opts)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		prune(path, tag, name)
		return name, nil
	}
	return "", fmt.Errorf("back up %s: %d backups were made within one second; try again", path, maxSameSecond)
}

// create writes a new file at name, failing with fs.ErrExist if there is one.
// It writes in place rather than through a temporary file and a rename: a
// rename would replace a backup made meanwhile. A crash midway leaves a
// partial backup, but the original is replaced only after Write returns.
func create(name string, data []byte, opts Options) (err error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("create backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(name)
		}
	}()
	// The umask may only have narrowed 0600; Chmod makes it exact.
	if runtime.GOOS != "windows" {
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("restrict backup %s: %w", name, err)
		}
	}
	if opts.Owner != nil {
		keepOwner(f, opts.Owner)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write backup %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flush backup %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close backup %s: %w", name, err)
	}
	// Without the directory fsync a power cut could forget the backup
	// while keeping the replacement that follows it.
	return syncDir(filepath.Dir(name))
}

// List returns the backups of path with tag, newest first.
func List(path, tag string) ([]string, error) {
	all, err := list(path, tag)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(all))
	for i, f := range all {
		names[i] = f.name
	}
	return names, nil
}

type found struct {
	name  string
	stamp string
	n     int
}

// list finds the backups of path with tag, newest first.
func list(path, tag string) ([]found, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list backups of %s: %w", path, err)
	}
	pattern := regexp.MustCompile(`^` + regexp.QuoteMeta(base+"."+tag+"-") + `(\d{8}T\d{6}Z)(?:-(\d+))?$`)
	var all []found
	for _, e := range entries {
		m := pattern.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n := 1
		if m[2] != "" {
			var err error
			if n, err = strconv.Atoi(m[2]); err != nil {
				continue
			}
		}
		all = append(all, found{name: filepath.Join(dir, e.Name()), stamp: m[1], n: n})
	}
	// By time, then by counter: a name sort would put -10 before -2.
	slices.SortFunc(all, func(a, b found) int {
		if c := strings.Compare(b.stamp, a.stamp); c != 0 {
			return c
		}
		return b.n - a.n
	})
	return all, nil
}

// prune removes the backups of path with tag beyond the newest Keep. The one
// just written always stays, even if a clock set back makes it look old.
func prune(path, tag, written string) {
	names, err := List(path, tag)
	if err != nil {
		return
	}
	kept := 1
	for _, name := range names {
		if name == written {
			continue
		}
		if kept < Keep {
			kept++
			continue
		}
		_ = os.Remove(name)
	}
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
