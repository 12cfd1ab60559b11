// Package version holds the build's version, commit and date, set at link time:
//
//	go build -ldflags "-X github.com/orproxy/orproxy/internal/version.Version=v1.2.3 -X github.com/orproxy/orproxy/internal/version.Commit=abc123 -X github.com/orproxy/orproxy/internal/version.Date=2026-12-02T10:00:00Z"
package version

import (
	"runtime/debug"
	"time"
)

// Set by -ldflags; see the Makefile and .goreleaser.yaml.
var (
	Version = "dev"
	Commit  = ""
	// Date is the commit's date in RFC 3339, not the build's, so that
	// two builds of one commit are the same bytes.
	Date = ""
)

// String is "v1.2.3 (abc123, 2026-12-02)", falling back to the VCS data Go
// embeds when the linker flags were not given (go build in a checkout).
func String() string {
	var settings []debug.BuildSetting
	if info, ok := debug.ReadBuildInfo(); ok {
		settings = info.Settings
	}
	return format(Version, Commit, Date, settings)
}

// shortCommit is how much of a commit hash is shown: enough to be unique
// in a repository of any size orproxy will reach.
const shortCommit = 12

func format(version, commit, date string, settings []debug.BuildSetting) string {
	for _, s := range settings {
		switch {
		case s.Key == "vcs.revision" && commit == "" && len(s.Value) >= shortCommit:
			commit = s.Value
		case s.Key == "vcs.time" && date == "":
			date = s.Value
		}
	}
	if len(commit) > shortCommit {
		commit = commit[:shortCommit]
	}
	// The day is enough to tell builds apart for a person; the full time
	// stays in the binary for anyone who needs it.
	if t, err := time.Parse(time.RFC3339, date); err == nil {
		date = t.UTC().Format(time.DateOnly)
	}
	var details string
	for _, d := range []string{commit, date} {
		if d == "" {
			continue
		}
		if details != "" {
			details += ", "
		}
		details += d
	}
	if details == "" {
		return version
	}
	return version + " (" + details + ")"
}
