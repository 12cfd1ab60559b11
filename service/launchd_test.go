//go:build !windows

package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

func TestLaunchdPaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	p := launchdPlatform{}
	file, err := p.definitionFile(scope{})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, "Library", "LaunchAgents", launchdLabel+".plist"), file)
	file, err = p.definitionFile(scope{system: true})
	require.NoError(t, err)
	assert.Equal(t, "/Library/LaunchDaemons/"+launchdLabel+".plist", file)
	assert.Equal(t, filepath.Join(home, "Library", "Logs", "orproxy", "orproxy.log"), p.logs(scope{}))
	assert.Equal(t, "/Library/Logs/orproxy/orproxy.log", p.logs(scope{system: true}))
}

func TestLaunchdExplain(t *testing.T) {
	user, system := scope{user: "dev"}, scope{system: true}
	tests := []struct {
		name   string
		sc     scope
		action string
		err    error
		kind   error
		says   []string
	}{
		{"file permission", user, "install", fmt.Errorf("write plist: %w", fs.ErrPermission), ErrPermission,
			[]string{"cannot install the orproxy user service", "~/Library/LaunchAgents belongs to you"}},
		{"launchctl permission", system, "start", errors.New(`"launchctl" failed with stderr: Load failed: 1: Operation not permitted`), ErrPermission,
			[]string{"launchctl could not start the orproxy system service: Load failed: 1: Operation not permitted", "sudo orproxy service start --system"}},
		{"loaded already", user, "start", errors.New(`"launchctl" failed with stderr: Load failed: 5: Input/output error`), ErrAlreadyRunning,
			[]string{"probably loaded already", "orproxy service restart"}},
		{"anything else", user, "stop", errors.New("\"launchctl\" failed with stderr: Boot-out failed: 3: No such process\n"), ErrManager,
			[]string{"launchctl could not stop the orproxy user service: Boot-out failed: 3: No such process"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := launchdPlatform{}.explain(context.Background(), tt.sc, tt.action, tt.err)
			require.ErrorIs(t, err, tt.kind)
			for _, s := range tt.says {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
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
