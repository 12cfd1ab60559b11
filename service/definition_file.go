//go:build !windows

package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeDefinition writes the unit or plist at path, creating its directory
// with dirPerm if missing. The definition may carry a proxy URL with a
// password, so it is never readable by others, not even for a moment:
// kardianos creates the file 0644 and writes it, which left it open until a
// later chmod. Here the text goes into a temporary file that is 0600 from
// its creation (os.CreateTemp, whatever the umask) and is renamed into
// place complete, so the service manager never reads half a file either.
func writeDefinition(path string, data []byte, dirPerm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	// A leading dot and the .tmp suffix keep systemd and launchd from taking
	// the temporary file for a unit or a job.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		// Best effort: the write or rename error is what the user needs.
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// definitionDirPerm is the mode of a unit or plist directory that install
// has to create: a per-user one is its owner's alone, the system ones
// (which exist on any working system) are world-readable as usual.
func definitionDirPerm(sc scope) fs.FileMode {
	if sc.system {
		return 0o755
	}
	return 0o700
}

// definitionWriteError explains a failed writeDefinition; hint says what to
// do about a permission error.
func definitionWriteError(sc scope, file string, err error, hint string) error {
	if errors.Is(err, fs.ErrPermission) {
		return newError(ErrPermission, err, fmt.Sprintf("cannot install the orproxy %s: cannot write %s: %v: %s", sc.kind(), file, err, hint))
	}
	return newError(ErrInvalid, err, fmt.Sprintf(
		"cannot install the orproxy %s: cannot write %s: %v: make sure its directory is writable and the disk is not full, then run `%s` again",
		sc.kind(), file, err, sc.command("install")))
}
