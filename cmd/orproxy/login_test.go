package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/testenv"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds orproxy once for the tests that need a real process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orproxy-cmd-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "orproxy")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// configFor writes a config pointing at the fakes of env; extra may replace
// the broker section.
func configFor(t *testing.T, env *testenv.Env, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	broker := fmt.Sprintf("broker: {url: %s, timeout: 3s}\n", env.BrokerURL)
	if strings.Contains(extra, "broker:") {
		broker = ""
	}
	// A port nobody listens on, so a daemon the developer runs is not asked.
	listen := "listen: 127.0.0.1:1\n"
	if strings.Contains(extra, "listen:") {
		listen = ""
	}
	body := fmt.Sprintf("%supstream: %s\n%scredentials: {file: %s}\nlogin: {open_browser: false}\n%s",
		listen, env.UpstreamURL, broker, env.Store.Path(), extra)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestLoginWithKeyThenStatusAndLogout(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	key := env.OpenRouter.IssueKey("my laptop", nil).Key
	cfg := configFor(t, env, "")

	code, out, errOut := runWithStdin(t, key+"\n", "--config", cfg, "login", "--method", "key")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "sk-or-v1-…"+key[len(key)-4:])
	assert.NotContains(t, out+errOut, key)
	stored, err := env.Store.Load()
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, stored.Source)
	assert.Equal(t, key, stored.APIKey.Reveal())
	st, err := os.Stat(env.Store.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	code, out, _ = runWithStdin(t, "", "--config", cfg, "status")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "manual")
	assert.Contains(t, out, "sk-or-v1-…"+key[len(key)-4:])
	assert.Contains(t, out, "not answering")
	assert.NotContains(t, out, key)

	code, out, _ = runWithStdin(t, "", "--config", cfg, "status", "--json")
	require.Equal(t, exitOK, code)
	var rep statusReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.Credential.LoggedIn)
	assert.Equal(t, "my laptop", rep.Credential.Label)
	assert.False(t, rep.Daemon.Answering)
	assert.NotContains(t, out, key)

	code, out, _ = runWithStdin(t, "", "--config", cfg, "logout")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "Logged out")
	assert.NoFileExists(t, env.Store.Path())
	code, out, _ = runWithStdin(t, "", "--config", cfg, "logout")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "Not logged in")
	_, out, _ = runWithStdin(t, "", "--config", cfg, "status")
	assert.Contains(t, out, "not logged in")
}

func TestLoginWithRejectedKey(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	bad := "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000bad"
	code, out, errOut := runWithStdin(t, bad+"\n", "--config", cfg, "login", "--method", "key")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "OpenRouter rejected the key")
	assert.NotContains(t, out+errOut, bad)
	assert.NoFileExists(t, env.Store.Path())
}

func TestRotateCommand(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	cfg := configFor(t, env, "")
	code, out, errOut := runWithStdin(t, "", "--config", cfg, "rotate")
	require.Equal(t, exitOK, code, errOut)
	next := env.Stored(t)
	assert.NotEqual(t, old.APIKey, next.APIKey)
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
	assert.Contains(t, out, next.APIKey.String())
	assert.NotContains(t, out, next.APIKey.Reveal())

	env.StoreKey(t, auth.SourceManual)
	code, _, errOut = runWithStdin(t, "", "--config", cfg, "rotate")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "cannot be rotated")

	env2 := testenv.New(t, testenv.Options{})
	env2.LoginBroker(t)
	env2.Broker.SetFault(broker.Fault{RejectRefresh: true})
	code, _, errOut = runWithStdin(t, "", "--config", configFor(t, env2, ""), "rotate")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "run `orproxy login`")
}

func TestStatusAsksTheDaemon(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cred := env.LoginBroker(t)
	listen, stop := runDaemon(t, env, "")
	defer stop()
	cfgFile := configFor(t, env, "listen: "+listen+"\n")

	code, out, _ := runWithStdin(t, "", "--config", cfgFile, "status")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "http://"+listen+" answers")
	assert.Contains(t, out, cred.APIKey.String())
	assert.NotContains(t, out, cred.APIKey.Reveal())
	assert.NotContains(t, out, cred.RefreshToken.Reveal())
}

// TestBrokerLoginWithTheBinary plays the browser for the real command: a
// callback with a wrong or missing state is refused and the login keeps
// waiting; the right one stores the broker's answer.
func TestBrokerLoginWithTheBinary(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "broker: {url: "+env.BrokerURL+"}\n")
	cmd := exec.Command(binary(t), "--config", cfg, "login", "--no-browser")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	sc := bufio.NewScanner(stdout)
	var loginURL string
	for loginURL == "" && sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "http") {
			loginURL = l
		}
	}
	require.NotEmpty(t, loginURL, stderr.String())
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); rest <- string(b) }()

	// The broker approves at once and sends the browser to the callback.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(loginURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	callback := resp.Header.Get("Location")
	cb, err := url.Parse(callback)
	require.NoError(t, err)
	require.Equal(t, "/callback", cb.Path, callback)

	for name, state := range map[string]string{"forged": "forged", "missing": ""} {
		wrong := *cb
		q := wrong.Query()
		if state == "" {
			q.Del("state")
		} else {
			q.Set("state", state)
		}
		wrong.RawQuery = q.Encode()
		resp, err := http.Get(wrong.String())
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s state", name)
	}

	resp, err = http.Get(callback)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, cmd.Wait(), stderr.String())
	out := <-rest
	assert.Contains(t, out, "Logged in")
	stored := env.Stored(t)
	assert.Equal(t, auth.SourceBroker, stored.Source)
	assert.Equal(t, env.BrokerURL, stored.BrokerURL)
	assert.False(t, stored.RefreshToken.IsZero())
	assert.NotContains(t, out+stderr.String(), stored.APIKey.Reveal())
	assert.NotContains(t, out+stderr.String(), stored.RefreshToken.Reveal())
}

// TestBrokerLoginWithStartHeaders: the start headers identify the user, the
// broker answers with the callback and its code at once, and the command
// finishes the login by itself without showing that address.
func TestBrokerLoginWithStartHeaders(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{StartHeaders: []string{"X-Device-Id: laptop-42"}}})
	cfg := configFor(t, env, "broker: {url: "+env.BrokerURL+", start_headers: [\"X-Device-Id: laptop-42\"]}\n")
	code, out, errOut := runWithStdin(t, "", "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "laptop-42", env.Broker.Stats().Requests[0].Header.Get("X-Device-Id"))
	assert.Contains(t, errOut, "approved this login without a browser")
	assert.NotContains(t, out+errOut, "code=")
	assert.NotContains(t, out+errOut, "/callback")
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
}

func TestLoginTimesOut(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	start := time.Now()
	cmd := exec.Command(binary(t), "--config", cfg, "login", "--no-browser", "--timeout", "1s")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, exitFailure, exit.ExitCode())
	assert.Contains(t, errOut.String(), "no answer from the browser within 1 second")
	assert.NotContains(t, errOut.String(), "--no-browser", "the flag was given already")
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.NoFileExists(t, env.Store.Path())
}

func TestStartHeadersAnsweredWith200(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{StartHeaders: []string{"X-Device-Id: expected"}, MissingHeadersStatus: http.StatusOK}})
	cfg := configFor(t, env, "broker: {url: "+env.BrokerURL+", start_headers: [\"X-Device-Id: other\"]}\n")
	code, _, errOut := runWithStdin(t, "", "--config", cfg, "login", "--no-browser", "--timeout", "5s")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "200")
	assert.Contains(t, errOut, "missing X-Device-Id", "the broker's page says why")
}

// broker.return_to_state: false is for a broker that matches return_to
// exactly; with the default, such a broker refuses it and the error says
// which setting cures that.
func TestLoginReturnToState(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{ExactReturnTo: true, StartHeaders: []string{"X-Device-Id: laptop-42"}}})
	brokerSection := "broker: {url: " + env.BrokerURL + ", start_headers: [\"X-Device-Id: laptop-42\"]%s}\n"
	cfg := configFor(t, env, fmt.Sprintf(brokerSection, ""))
	code, _, errOut := runWithStdin(t, "", "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, broker.ReturnToRefusal)
	assert.Contains(t, errOut, "set broker.return_to_state: false")

	cfg = configFor(t, env, fmt.Sprintf(brokerSection, ", return_to_state: false"))
	code, _, errOut = runWithStdin(t, "", "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	require.Equal(t, exitOK, code, errOut)
	var returnTo string
	for _, r := range env.Broker.Stats().Requests {
		if r.Path == "/auth/openrouter/start" {
			q, err := url.ParseQuery(r.Query)
			require.NoError(t, err)
			returnTo = q.Get("return_to")
		}
	}
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/callback$`, returnTo, "return_to without a query")
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
}
