// Package version holds the build's version and commit, set at link time:
//
//	go build -ldflags "-X github.com/orproxy/orproxy/internal/version.Version=v1.2.3 -X github.com/orproxy/orproxy/internal/version.Commit=abc123"
package version

import "runtime/debug"

// Set by -ldflags; see the Makefile.
var (
	Version = "dev"
	Commit  = ""
)

// String is "v1.2.3 (abc123)", falling back to the VCS data Go embeds when
// the linker flags were not given (go install, go run).
func String() string {
	commit := Commit
	if commit == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					commit = s.Value[:12]
				}
			}
		}
	}
	if commit == "" {
		return Version
	}
	return Version + " (" + commit + ")"
}
