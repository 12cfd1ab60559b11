package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDialAddress(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8765": "127.0.0.1:8765",
		"0.0.0.0:9000":   "127.0.0.1:9000",
		":9001":          "127.0.0.1:9001",
		"[::]:9002":      "[::1]:9002",
		"[::1]:9003":     "[::1]:9003",
		"localhost:9004": "localhost:9004",
	} {
		got, err := DialAddress(listen)
		require.NoError(t, err, listen)
		assert.Equal(t, want, got, listen)
	}
	_, err := DialAddress("8765")
	assert.ErrorContains(t, err, `listen address "8765"`)
	_, err = DialAddress("127.0.0.1:0")
	assert.ErrorContains(t, err, "port 0 (any free port)")
}

func TestFilePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
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
		{"", "", filepath.Join(home, ".config", "orproxy", "config.yaml"), false},
	} {
		got, explicit, err := FilePath(tt.flag, env(tt.env))
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%+v", tt)
		assert.Equal(t, tt.explicit, explicit, "%+v", tt)
	}
}
