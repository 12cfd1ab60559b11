//go:build unix

package backup

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives the backup the owner of the file it copies. Best effort:
// an ordinary user cannot chown, and needs not to.
func keepOwner(f *os.File, like fs.FileInfo) {
	if st, ok := like.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
