package service

import (
	"errors"

	"golang.org/x/sys/unix"
)

// xattrs reads extended attributes from the file system.
type xattrs struct{}

func (xattrs) hasAttr(path, name string) (bool, error) {
	_, err := unix.Getxattr(path, name, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOATTR):
		return false, nil
	default:
		return false, err
	}
}
