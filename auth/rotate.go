package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
)

// ErrRotatedMeanwhile is what RotateStored returns, with the key it meant to
// rotate and the one stored now, when another process (a daemon that met a
// 401, another `orproxy rotate`) replaced the key while it waited for the
// lock. The key it was asked to replace is gone already, so rotating again
// would only cost a second broker call.
var ErrRotatedMeanwhile = errors.New("another orproxy process replaced the key meanwhile")

// RotateStored rotates the stored broker key now, under the store's lock, as
// `orproxy rotate` does. A running daemon notices the new file on its next
// request. brokerFor returns the client for a broker URL; configURL is used
// when the credential does not name its broker.
func RotateStored(ctx context.Context, store *Store, brokerFor func(url string) (Rotator, error), configURL string) (old, next *Credential, err error) {
	// The key to rotate is the one stored now. If it has changed by the
	// time the lock is ours, someone else rotated it: lock, re-read and
	// compare, as the daemon does, so a revoked key is rotated once.
	seen, _ := store.Load()
	unlock, err := store.lock(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	defer unlock()
	old, err = store.Load()
	if err == nil && seen != nil && seen.APIKey != old.APIKey {
		return seen, old, ErrRotatedMeanwhile
	}
	if errors.Is(err, ErrNoCredential) {
		return nil, nil, errors.New("nothing to rotate: no credential is stored; run `orproxy login`")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	if old.Source != SourceBroker || old.RefreshToken.IsZero() {
		return old, nil, fmt.Errorf("the stored key came from %s and has no broker refresh token, so it cannot be rotated; run `orproxy login` for a new one", describeSource(old.Source))
	}
	url := old.BrokerURL
	if url == "" {
		url = configURL
	}
	if url == "" {
		return old, nil, errors.New("no broker is configured (broker.url or ORPROXY_BROKER_URL)")
	}
	rotator, err := brokerFor(url)
	if err != nil {
		return old, nil, fmt.Errorf("rotate key: broker %s: %w", url, err)
	}
	answer, err := rotator.Rotate(ctx, old.RefreshToken)
	if err != nil {
		if IsRefreshRejected(err) {
			return old, nil, fmt.Errorf("the broker refused the refresh token (%w); run `orproxy login`", err)
		}
		return old, nil, fmt.Errorf("rotate key: %w", err)
	}
	next = answer.Credential(url)
	_, saveErr := store.saveLocked(next)
	for try := 1; saveErr != nil && try < saveTries; try++ {
		// A full disk or a file briefly held open by another program may
		// clear within moments; the key must not be given up lightly.
		time.Sleep(saveRetry.Delay(try - 1))
		_, saveErr = store.saveLocked(next)
	}
	if saveErr != nil {
		// The broker has revoked the old key by now: keep the new one where
		// the user can fetch it, and say where.
		where, rerr := rescue(next)
		if rerr != nil {
			return old, next, fmt.Errorf("the broker issued a new key (%s) but saving it to %s failed (%w), and so did keeping it elsewhere (%v); run `orproxy login` once the directory is writable", next.APIKey, store.Path(), saveErr, rerr)
		}
		return old, next, fmt.Errorf("the broker issued a new key (%s) but saving it to %s failed: %w; it is kept, private, in %s: once the directory is writable, move that file to %s", next.APIKey, store.Path(), saveErr, where, store.Path())
	}
	return old, next, nil
}

// saveTries saves are tried, paced by saveRetry, before the key is rescued.
const saveTries = 3

var saveRetry = backoff.Policy{Base: 200 * time.Millisecond, Max: time.Second}

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
