//go:build unix

package opencode

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives the replacement file the owner of the one it replaces, so
// running as root (sudo) does not leave a user's config owned by root. Best
// effort: an ordinary user cannot chown, and needs not to.
func keepOwner(f *os.File, like fs.FileInfo) {
	if st, ok := like.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
