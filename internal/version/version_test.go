package version

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-11-30T23:30:00Z"},
	}
	tests := []struct {
		name                  string
		version, commit, date string
		settings              []debug.BuildSetting
		want                  string
	}{
		{"nothing known", "dev", "", "", nil, "dev"},
		{"stamped", "v0.1.0", "abc123def456", "2026-12-02T10:00:00Z", vcs, "v0.1.0 (abc123def456, 2026-12-02)"},
		{"stamped date in another zone is shown in UTC", "v0.1.0", "abc123def456", "2026-12-02T01:00:00+02:00", nil, "v0.1.0 (abc123def456, 2026-12-01)"},
		{"unparsable date shown as given", "v0.1.0", "abc123def456", "yesterday", nil, "v0.1.0 (abc123def456, yesterday)"},
		{"commit only", "v0.1.0", "abc123def456", "", nil, "v0.1.0 (abc123def456)"},
		{"a full commit is shortened", "v0.1.0", "abc123def4567890abc123def4567890abc123de", "", nil, "v0.1.0 (abc123def456)"},
		{"date only", "v0.1.0", "", "2026-12-02T10:00:00Z", nil, "v0.1.0 (2026-12-02)"},
		{"from the VCS data", "dev", "", "", vcs, "dev (0123456789ab, 2026-11-30)"},
		{"a short revision is not shown", "dev", "", "", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, format(tt.version, tt.commit, tt.date, tt.settings))
		})
	}
}

// The linker sets these variables by name (see .goreleaser.yaml); String
// must read them, not copies taken at start-up.
func TestStringReadsTheStampedVariables(t *testing.T) {
	saved := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = saved[0], saved[1], saved[2] })
	Version, Commit, Date = "v9.8.7", "fedcba987654", "2030-01-02T03:04:05Z"
	assert.Equal(t, "v9.8.7 (fedcba987654, 2030-01-02)", String())
}
