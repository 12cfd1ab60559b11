//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testenv"
)

// unprivileged is the user the daemon runs as in TestServeSurvivesCredentialFileProblems:
// file permissions do not stop root, so as root the test runs the daemon as
// nobody; as anyone else, as that user.
type unprivileged struct {
	cred     *syscall.Credential // nil: the test's own user
	uid, gid int
}

func unprivilegedUser() unprivileged {
	if os.Getuid() != 0 {
		return unprivileged{uid: os.Getuid(), gid: os.Getgid()}
	}
	return unprivileged{cred: &syscall.Credential{Uid: 65534, Gid: 65534}, uid: 65534, gid: 65534}
}

// chownAll gives the tree at root to u, so the daemon can use it.
func (u unprivileged) chownAll(t *testing.T, root string) {
	t.Helper()
	require.NoError(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	}))
}

var serveClient = &http.Client{Timeout: 20 * time.Second}

type serveProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *testenv.SyncBuffer
	done chan error
}

// TestServeSurvivesCredentialFileProblems runs `orproxy serve` as an
// unprivileged user and, while it serves, makes its credential directory
// read-only, its credential file unreadable, garbage, and deleted. Each is a
// clear error in /status and the log, never a crash; a key the broker issues
// meanwhile is used from memory and saved as soon as the disk allows; garbage
// is kept in a timestamped backup.
func TestServeSurvivesCredentialFileProblems(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon as a process and waits for its save retries")
	}
	user := unprivilegedUser()
	env := testenv.New(t, testenv.Options{})
	base, err := os.MkdirTemp("", "orproxy-unprivileged-")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = os.Chmod(filepath.Join(base, "home", ".config", "orproxy"), 0o700)
		_ = os.RemoveAll(base)
	})
	require.NoError(t, os.Chmod(base, 0o755))
	home := filepath.Join(base, "home")
	credDir := filepath.Join(home, ".config", "orproxy")
	credFile := filepath.Join(credDir, "credentials.json")
	env.Store = auth.NewStore(credFile)
	env.LoginBroker(t)
	cfgFile := filepath.Join(home, "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil,
		"listen: 127.0.0.1:0\nupstream: %s\nbroker: {url: %s, timeout: 3s}\ncredentials: {file: %s, validate_on_start: false}\nlog: {level: debug, format: json}\n",
		env.UpstreamURL, env.BrokerURL, credFile), 0o600))
	require.NoError(t, os.Chmod(home, 0o700))
	user.chownAll(t, home)

	bin := binary(t)
	require.NoError(t, os.Chmod(filepath.Dir(bin), 0o755))
	p := startServeAs(t, user, bin, home, cfgFile)

	post := func() (int, string) {
		t.Helper()
		resp, err := serveClient.Post(p.url+"/api/v1/chat/completions", "application/json", strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[]}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status := func() statusdoc.Credential {
		t.Helper()
		resp, err := serveClient.Get(p.url + "/status")
		require.NoError(t, err)
		defer resp.Body.Close()
		var st struct{ Credential statusdoc.Credential }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st.Credential
	}
	stored := func() string {
		c, err := env.Store.Load()
		if err != nil {
			return ""
		}
		return c.APIKey.Reveal()
	}
	current := func() string { return env.Broker.Stats().CurrentKey.Key }
	revokeAndServe := func(what string) {
		t.Helper()
		env.OpenRouter.Revoke(current())
		code, body := post()
		require.Equal(t, http.StatusOK, code, "%s: a rotation must still work: %s", what, body)
	}
	code, body := post()
	require.Equal(t, http.StatusOK, code, body)

	t.Run("read-only directory", func(t *testing.T) {
		require.NoError(t, os.Chmod(credDir, 0o500))
		revokeAndServe("read-only directory")
		st := status()
		assert.Contains(t, st.SaveError, "permission denied", "the save failure is reported")
		assert.Equal(t, "sk-or-v1-…"+current()[len(current())-4:], st.Key, "the new key is in use from memory")
		assert.NotEqual(t, current(), stored(), "not saved yet")
		require.NoError(t, os.Chmod(credDir, 0o700))
		require.Eventually(t, func() bool { return stored() == current() }, 20*time.Second, 50*time.Millisecond, "saved once the directory is writable")
		require.Eventually(t, func() bool { return status().SaveError == "" }, 5*time.Second, 20*time.Millisecond)
	})

	t.Run("unreadable file", func(t *testing.T) {
		require.NoError(t, os.Chmod(credFile, 0))
		later := time.Now().Add(2 * time.Second)
		require.NoError(t, os.Chtimes(credFile, later, later)) // as a replacement would
		code, body := post()
		require.Equal(t, http.StatusOK, code, "the last good key stays in use: %s", body)
		st := status()
		assert.Contains(t, st.FileError, "permission denied")
		assert.Contains(t, st.FileError, credFile, "the error names the file")
		revokeAndServe("unreadable file")
		assert.Contains(t, status().SaveError, "before replacing it", "an unreadable file is not overwritten blindly")
		// The user puts a readable copy of the old file in its place: it
		// holds the key the rotation replaced, so it is older than the one
		// in memory, which must not be dropped for it.
		issued, rotations := current(), env.Broker.Stats().RotateCalls
		old, err := os.ReadFile(credFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(credFile+".copy", old, 0o600))
		require.NoError(t, os.Lchown(credFile+".copy", user.uid, user.gid))
		require.NoError(t, os.Rename(credFile+".copy", credFile))
		code, body = post()
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, rotations, env.Broker.Stats().RotateCalls, "the key in memory stayed in use: no second rotation")
		require.Eventually(t, func() bool { return stored() == issued }, 20*time.Second, 50*time.Millisecond, "the issued key is saved once the file is readable")
	})

	t.Run("garbage", func(t *testing.T) {
		require.NoError(t, os.WriteFile(credFile, []byte("{not json"), 0o600))
		code, body := post()
		require.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, status().FileError, "not valid JSON")
		revokeAndServe("garbage")
		assert.Equal(t, current(), stored(), "the rotation saved over the garbage")
		baks, err := filepath.Glob(credFile + ".corrupt-*")
		require.NoError(t, err)
		require.Len(t, baks, 1)
		bak, err := os.ReadFile(baks[0])
		require.NoError(t, err)
		assert.Equal(t, "{not json", string(bak), "the garbage is kept in a timestamped backup")
		info, err := os.Stat(baks[0])
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the backup may hold a key: private too")
		assert.Empty(t, status().FileError)
	})

	t.Run("deleted", func(t *testing.T) {
		require.NoError(t, os.Remove(credFile))
		code, body := post()
		assert.Equal(t, http.StatusUnauthorized, code)
		assert.Contains(t, body, "orproxy login", "a deleted file is a logout, with advice")
		resp, err := serveClient.Get(p.url + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	// Still the same process: it never crashed, and it stops cleanly.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err, "serve exits 0 after SIGTERM:\n%s", p.logs.String())
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := p.logs.String()
	assert.Contains(t, logs, "could not be saved")
	assert.Contains(t, logs, "credential file unusable")
	assert.NotContains(t, logs, "panic")
	// The log names problems, never keys.
	for _, k := range env.OpenRouter.Keys() {
		assert.NotContains(t, logs, k.Key)
	}
}

// startServeAs runs `orproxy serve` as user and waits until it serves.
func startServeAs(t *testing.T, user unprivileged, bin, home, cfgFile string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfgFile, "serve")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	cmd.Dir = home
	if user.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user.cred}
	}
	logs := &testenv.SyncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot run a process as uid %d here: %v", user.uid, err)
		}
		require.NoError(t, err)
	}
	p := &serveProcess{cmd: cmd, logs: logs, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = logs.Write([]byte(line + "\n"))
			var e struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "orproxy serving" {
				select {
				case ready <- strings.TrimSuffix(e.Listen, "/api/v1"):
				default:
				}
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.done <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case p.url = <-ready:
		if user.cred != nil {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			require.NoError(t, err)
			require.Regexp(t, fmt.Sprintf(`(?m)^Uid:\s+%d\s`, user.uid), string(st), "the daemon runs unprivileged")
		}
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited before it was ready (%v):\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve not ready in time:\n%s", logs.String())
	}
	return p
}
