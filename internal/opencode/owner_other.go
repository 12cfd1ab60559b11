//go:build !unix

package opencode

import (
	"io/fs"
	"os"
)

// keepOwner: ownership is not carried over where there are no Unix owners.
func keepOwner(*os.File, fs.FileInfo) {}
