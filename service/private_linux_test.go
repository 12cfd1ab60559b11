//go:build linux

package service

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modeWatch records the mode of every file that appears in a directory, as
// soon as inotify reports it: created there, or renamed into it.
type modeWatch struct {
	dir  string
	f    *os.File
	done chan struct{}
	mu   sync.Mutex
	seen map[string][]fs.FileMode
}

func watchModes(t *testing.T, dir string) *modeWatch {
	t.Helper()
	// Non-blocking, so that os.NewFile puts it in the runtime poller and
	// Close wakes the reader up.
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	require.NoError(t, err)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ATTRIB); err != nil {
		syscall.Close(fd)
		require.NoError(t, err)
	}
	w := &modeWatch{dir: dir, f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{}), seen: map[string][]fs.FileMode{}}
	go w.read()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *modeWatch) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed by stop
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			start := off + syscall.SizeofInotifyEvent
			name := string(bytes.TrimRight(buf[start:start+nameLen], "\x00"))
			off = start + nameLen
			if name == "" {
				continue
			}
			fi, err := os.Lstat(filepath.Join(w.dir, name))
			if err != nil {
				continue // already renamed or removed
			}
			w.mu.Lock()
			w.seen[name] = append(w.seen[name], fi.Mode().Perm())
			w.mu.Unlock()
		}
	}
}

// stopAfter ends the watch once name was seen, or after a few seconds, and
// returns the modes seen, per file name. The kernel queues the events of
// the last rename before the reader gets to them: stopping at once would
// drop them.
func (w *modeWatch) stopAfter(name string) map[string][]fs.FileMode {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		_, ok := w.seen[name]
		w.mu.Unlock()
		if ok {
			break
		}
	}
	return w.stop()
}

// stop ends the watch and returns the modes seen, per file name.
func (w *modeWatch) stop() map[string][]fs.FileMode {
	w.f.Close()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// umask sets the process umask for the test. No test in this package runs
// in parallel, so nothing else sees it.
func umask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// TestInstallNeverExposesTheUnit: the unit may carry a proxy password, so no
// file in the unit directory may be readable by others at any moment, nor
// when the service manager is first called. A umask of 0 makes any mode that
// relies on the umask show.
func TestInstallNeverExposesTheUnit(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"with a proxy password": {"HTTPS_PROXY": "http://user:s3cret@proxy.example:3128"},
		"with nothing carried":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			umask(t, 0)
			dir := filepath.Dir(h.unitFile())
			require.NoError(t, os.MkdirAll(dir, 0o755))
			modes := filepath.Join(t.TempDir(), "modes")
			t.Setenv("FAKE_MODES", modes)
			w := watchModes(t, dir)

			opts := h.opts
			opts.LookupEnv = lookupMap(env)
			_, err := Install(context.Background(), opts)
			require.NoError(t, err)

			seen := w.stopAfter(filepath.Base(h.unitFile()))
			assert.Contains(t, seen, filepath.Base(h.unitFile()), "the watch saw the unit arrive: %v", seen)
			for file, ms := range seen {
				for _, m := range ms {
					assert.Zero(t, m&0o077, "%s was %v", file, m)
				}
			}
			called, err := os.ReadFile(modes)
			require.NoError(t, err)
			assert.Contains(t, string(called), "enable 600 orproxy.service\n", "the unit is private when systemctl enable reads it")
			assert.NotContains(t, string(called), ".tmp", "no temporary file is left for the manager to see")

			fi, err := os.Stat(h.unitFile())
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "only the unit is left")
		})
	}
}

func TestInstallCreatesAPrivateUnitDirectory(t *testing.T) {
	h := newHarness(t)
	umask(t, 0)
	_, err := Install(context.Background(), h.opts)
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Dir(h.unitFile()))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
}

func TestInstallCannotWriteTheUnit(t *testing.T) {
	// A dangling symlink where the unit directory should be cannot be
	// created, for root too, which a read-only directory would not stop.
	h := newHarness(t)
	dir := filepath.Dir(h.unitFile())
	require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(h.home, "gone"), dir))
	_, err := Install(context.Background(), h.opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorContains(t, err, "cannot install the orproxy user service: cannot write "+h.unitFile())
	assert.ErrorContains(t, err, "then run `orproxy service install` again")
	assert.NotContains(t, err.Error(), "\n")
	assert.NoFileExists(t, h.config, "the config written for the install is removed again")
	assert.NotContains(t, h.calls(), "systemctl enable --user orproxy.service")

	perm := definitionWriteError(scope{user: "dev"}, h.unitFile(), &fs.PathError{Op: "open", Path: dir, Err: fs.ErrPermission}, permissionHint(scope{}, "install"))
	assert.ErrorIs(t, perm, ErrPermission)
	assert.ErrorContains(t, perm, "belong to you")
}

// The launchd platform builds here too: its install writes the plist the
// same way, with no launchctl involved.
func TestLaunchdInstallWritesAPrivatePlist(t *testing.T) {
	home := t.TempDir()
	useHomeDir(t, home)
	umask(t, 0)
	p := launchdPlatform{}
	file, err := p.definitionFile(scope{})
	require.NoError(t, err)
	agents := filepath.Dir(file)
	// ~/Library exists on a Mac; LaunchAgents may not yet.
	require.NoError(t, os.MkdirAll(filepath.Dir(agents), 0o755))
	require.NoError(t, os.Mkdir(agents, 0o700))
	w := watchModes(t, agents)

	def := Definition{
		Executable: "/usr/local/bin/orproxy", ConfigFile: home + "/.config/orproxy/config.yaml",
		Env:   []EnvVar{{"HTTPS_PROXY", "http://user:s3cret@proxy.example:3128"}},
		Label: launchdLabel, LogDir: home + "/Library/Logs/orproxy",
	}
	require.NoError(t, p.install(context.Background(), scope{}, def, nil, file))

	seen := w.stopAfter(filepath.Base(file))
	assert.Contains(t, seen, filepath.Base(file))
	for name, ms := range seen {
		for _, m := range ms {
			assert.Zero(t, m&0o077, "%s was %v", name, m)
		}
	}
	want, err := RenderLaunchdPlist(def)
	require.NoError(t, err)
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())

	// A missing LaunchAgents directory is created for its owner only.
	require.NoError(t, os.Remove(file))
	require.NoError(t, os.Remove(agents))
	require.NoError(t, p.install(context.Background(), scope{}, def, nil, file))
	fi, err = os.Stat(agents)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
}

func TestWriteDefinitionLeavesNothingBehindOnFailure(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should go: the rename fails.
	path := filepath.Join(dir, "orproxy.service")
	require.NoError(t, os.Mkdir(path, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(path, "keep"), nil, 0o600))
	require.Error(t, writeDefinition(path, []byte("[Unit]\n"), 0o700))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "orproxy.service", entries[0].Name(), "the temporary file is removed")
}
