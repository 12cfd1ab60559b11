package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFilePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	// The default place is the platform's config directory: ~/.config on
	// Linux (XDG_CONFIG_HOME above), ~/Library/Application Support on macOS.
	base, err := os.UserConfigDir()
	require.NoError(t, err)
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == EnvConfig {
				return v
			}
			return ""
		}
	}
	for _, tt := range []struct {
		flag, env, want string
		explicit        bool
	}{
		{"~/a.yaml", "/etc/b.yaml", filepath.Join(home, "a.yaml"), true},
		{"", "~/b.yaml", filepath.Join(home, "b.yaml"), true},
		{"rel.yaml", "", "rel.yaml", true},
		{"", "", filepath.Join(base, "orproxy", "config.yaml"), false},
	} {
		got, explicit, err := FilePath(tt.flag, env(tt.env))
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%+v", tt)
		assert.Equal(t, tt.explicit, explicit, "%+v", tt)
	}
}
