//go:build !windows

package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLaunchdWarnings(t *testing.T) {
	home := "/Users/dev"
	useHomeDir(t, home)
	quarantined := fakeAttrs{"/Users/dev/Downloads/orproxy " + quarantineAttr: true}
	p := launchdPlatform{attrs: quarantined}
	def := func(exe, config string) Definition { return Definition{Executable: exe, ConfigFile: config} }
	config := "/Users/dev/Library/Application Support/orproxy/config.yaml"

	assert.Empty(t, p.warnings(def("/opt/homebrew/opt/orproxy/bin/orproxy", config), scope{}), "Homebrew's stable link")
	assert.Empty(t, p.warnings(def("/usr/local/bin/orproxy", config), scope{}))

	got := p.warnings(def("/opt/homebrew/Cellar/orproxy/1.4.2/bin/orproxy", config), scope{})
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "/opt/homebrew/Cellar/orproxy/1.4.2/bin/orproxy, inside Homebrew's versioned Cellar directory")
	assert.Contains(t, got[0], "`orproxy service uninstall`, then `/opt/homebrew/opt/orproxy/bin/orproxy service install`")

	got = p.warnings(def("/Users/dev/Downloads/orproxy", "/Users/dev/Documents/orproxy.yaml"), scope{})
	require.Len(t, got, 3)
	assert.Contains(t, got[0], "/Users/dev/Downloads/orproxy carries macOS's quarantine flag (com.apple.quarantine")
	assert.Contains(t, got[0], "`xattr -d com.apple.quarantine /Users/dev/Downloads/orproxy`")
	assert.Contains(t, got[1], "The orproxy binary /Users/dev/Downloads/orproxy is in ~/Downloads, which macOS does not let a background service read")
	assert.Contains(t, got[2], "The config file /Users/dev/Documents/orproxy.yaml is in ~/Documents")

	// The system service runs as root, and another user's folders are
	// just as closed to it.
	got = p.warnings(def("/usr/local/Cellar/orproxy/1.4.2/bin/orproxy", "/Users/ann/Desktop/c.yaml"), scope{system: true})
	require.Len(t, got, 2)
	assert.Contains(t, got[0], "/usr/local/opt/orproxy/bin/orproxy service install --system`")
	assert.Contains(t, got[1], "is in /Users/ann/Desktop")

	assert.Empty(t, p.warnings(def("/Users/dev/DesktopApps/orproxy", "/Users/dev/Documents"), scope{}), "only inside those folders")
}

// TestLaunchdInstallWarns: the warnings come with a successful install, and
// with a failed one, where they are likely the reason.
func TestLaunchdInstallWarns(t *testing.T) {
	f := newLaunchdFake(t, scope{})
	cellar := filepath.Join(f.dir, "brew", "Cellar", "orproxy", "1.4.2", "bin")
	require.NoError(t, os.MkdirAll(cellar, 0o755))
	f.opts.Executable = filepath.Join(cellar, "orproxy")
	copyExecutable(t, "/bin/true", f.opts.Executable)
	f.attrs[f.opts.Executable+" "+quarantineAttr] = true

	res, err := Install(context.Background(), f.opts)
	require.NoError(t, err)
	require.Len(t, res.Notes, 2)
	assert.Contains(t, res.String(), "inside Homebrew's versioned Cellar directory")
	assert.Contains(t, res.String(), "quarantine flag")
	_, err = Uninstall(context.Background(), f.opts)
	require.NoError(t, err)

	// The job exits at once with an error, as when Gatekeeper stops it.
	t.Setenv("FAKE_EXIT", "126")
	_, err = Install(context.Background(), f.opts)
	require.ErrorIs(t, err, ErrNotHealthy)
	assert.Contains(t, err.Error(), "did not answer")
	assert.Contains(t, err.Error(), "quarantine flag")
	assert.Contains(t, err.Error(), "Cellar")
	assert.NotContains(t, err.Error(), "\n")
}
