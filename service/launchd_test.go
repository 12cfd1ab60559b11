//go:build !windows

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The launchd platform is only picked on macOS, but it builds everywhere:
// these tests run its decisions here, with a stand-in launchctl.

func TestLaunchdPrepareCreatesTheLogDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Library", "Logs", "orproxy")
	require.NoError(t, launchdPlatform{}.prepare(Definition{LogDir: dir}))
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, info.IsDir())

	blocked := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocked, nil, 0o600))
	err = launchdPlatform{}.prepare(Definition{LogDir: filepath.Join(blocked, "logs")})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "cannot create the log directory")
}

// useHomeDir makes home the user's home for the launchd platform.
func useHomeDir(t *testing.T, home string) {
	saved := homeDir
	homeDir = func() (string, error) { return home, nil }
	t.Cleanup(func() { homeDir = saved })
}

// TestLaunchdHomeIsTheUsers: launchd loads LaunchAgents from the home the
// user database gives, so a changed $HOME must not move the plist.
func TestLaunchdHomeIsTheUsers(t *testing.T) {
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		t.Skip("no user database entry for this user")
	}
	t.Setenv("HOME", t.TempDir())
	home, err := homeDir()
	require.NoError(t, err)
	assert.Equal(t, u.HomeDir, home)
}

func TestLaunchdPaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", t.TempDir())
	useHomeDir(t, home)
	p := launchdPlatform{}
	file, err := p.definitionFile(scope{})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, "Library", "LaunchAgents", launchdLabel+".plist"), file, "by the user database's home, not $HOME")
	file, err = p.definitionFile(scope{system: true})
	require.NoError(t, err)
	assert.Equal(t, "/Library/LaunchDaemons/"+launchdLabel+".plist", file)
	assert.Equal(t, filepath.Join(home, "Library", "Logs", "orproxy", "orproxy.log"), p.logs(scope{}))
	assert.Equal(t, "/Library/Logs/orproxy/orproxy.log", p.logs(scope{system: true}))
}

func TestLaunchdExplain(t *testing.T) {
	user := scope{user: "dev"}
	explained := newError(ErrNoServiceManager, nil, "launchd has no desktop session for dev")
	tests := []struct {
		name string
		err  error
		kind error
		says string
	}{
		{"already explained by launchctl", explained, ErrNoServiceManager, explained.Msg},
		{"file permission", fmt.Errorf("write plist: %w", fs.ErrPermission), ErrPermission, "~/Library/LaunchAgents belongs to you"},
		{"anything else", errors.New("disk on fire\n"), ErrManager, "cannot start the orproxy user service: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := launchdPlatform{}.explain(context.Background(), user, "start", tt.err)
			require.ErrorIs(t, err, tt.kind)
			assert.Contains(t, err.Error(), tt.says)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
	assert.Same(t, explained, launchdPlatform{}.explain(context.Background(), user, "start", explained))
}

func TestLaunchdPreflight(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	p := launchdPlatform{}
	err := p.preflight(context.Background(), scope{user: "dev"})
	require.ErrorIs(t, err, ErrUnsupported, "no launchctl at all")
	assert.Contains(t, err.Error(), "orproxy serve")

	script := "#!/bin/sh\necho 'Could not find domain for port identifier' >&2\nexit 113\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "launchctl"), []byte(script), 0o755))
	err = p.preflight(context.Background(), scope{user: "dev"})
	require.ErrorIs(t, err, ErrNoServiceManager, "an SSH-only login has no GUI domain")
	assert.Contains(t, err.Error(), "launchd has no login session for dev")
	assert.Contains(t, err.Error(), "Could not find domain")
	assert.NoError(t, p.preflight(context.Background(), scope{system: true}), "the system domain needs no login session")

	require.NoError(t, os.WriteFile(filepath.Join(bin, "launchctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	assert.NoError(t, p.preflight(context.Background(), scope{user: "dev"}))
}

func TestLaunchdConfigCarriesThePlist(t *testing.T) {
	def := Definition{Executable: "/usr/local/bin/orproxy", ConfigFile: "/Users/dev/.config/orproxy/config.yaml", Label: launchdLabel, LogDir: "/Users/dev/Library/Logs/orproxy"}
	cfg, err := launchdPlatform{}.config(def, scope{})
	require.NoError(t, err)
	assert.Equal(t, launchdLabel, cfg.Name)
	assert.Equal(t, true, cfg.Option["UserService"])
	plist, err := RenderLaunchdPlist(def)
	require.NoError(t, err)
	assert.Equal(t, plist, cfg.Option["LaunchdConfig"])
}
