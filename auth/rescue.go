package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// rescue writes c, in the credential file format, to a new private file in
// the user's cache directory (or the temporary directory), for a key that
// could not be saved where it belongs.
func rescue(c *Credential) (string, error) {
	return rescueIn(rescueDirs(), c)
}

// rescueIn writes c into the first of dirs that is, or can be made, a
// private directory of ours, and into a fresh private directory when none
// is. A directory that another user made, or a link they planted, must not
// receive the key: in a shared temporary directory anyone can create
// orproxy-<uid> before we do.
func rescueIn(dirs []string, c *Credential) (string, error) {
	data, err := encodeCredential(c)
	if err != nil {
		return "", err
	}
	name := "credentials.rescued-" + time.Now().UTC().Format("20060102T150405Z") + ".json"
	var errs []error
	for _, dir := range dirs {
		if err := ownPrivateDir(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(dir, name)
		if _, err := writeFileAtomic(path, data); err != nil {
			errs = append(errs, err)
			continue
		}
		return path, nil
	}
	// MkdirTemp makes a new directory, 0700, under a name nobody could
	// have prepared.
	dir, err := os.MkdirTemp("", "orproxy-")
	if err != nil {
		return "", errors.Join(append(errs, fmt.Errorf("create a private directory: %w", err))...)
	}
	path := filepath.Join(dir, name)
	if _, err := writeFileAtomic(path, data); err != nil {
		_ = os.Remove(dir)
		return "", errors.Join(append(errs, err)...)
	}
	return path, nil
}

// ownPrivateDir creates dir 0700, or checks that the existing dir is a real
// directory (not a link), owned by us, and tightens its mode to 0700.
func ownPrivateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory: %w", err)
	}
	check := func() (fs.FileInfo, error) {
		info, err := os.Lstat(dir)
		switch {
		case err != nil:
			return nil, fmt.Errorf("check directory: %w", err)
		case info.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%s is a symbolic link, not a private directory; not used", dir)
		case !info.IsDir():
			return nil, fmt.Errorf("%s is not a directory; not used", dir)
		case !ownedByUs(info):
			return nil, fmt.Errorf("%s belongs to another user; not used", dir)
		}
		return info, nil
	}
	info, err := check()
	if err != nil {
		return err
	}
	if runtime.GOOS == "windows" || info.Mode().Perm() == 0o700 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("make directory %s private: %w", dir, err)
	}
	// Checked again: what was chmod-ed must still be the directory checked.
	if info, err = check(); err != nil {
		return err
	}
	if info.Mode().Perm() != 0o700 {
		return fmt.Errorf("%s could not be made private (mode %#o); not used", dir, info.Mode().Perm())
	}
	return nil
}

func rescueDirs() []string {
	var dirs []string
	if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "orproxy"))
	}
	return append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("orproxy-%d", os.Getuid())))
}
