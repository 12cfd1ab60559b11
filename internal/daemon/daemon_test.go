package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testenv"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orproxy-daemon-test-")
	if err == nil {
		err = trustTestCA(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon tests:", err)
		os.Exit(1)
	}
	// goleak's VerifyTestMain exits, so the directory goes before it reports.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

const chatBody = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

type daemonUnderTest struct {
	url  string
	logs *observer.ObservedLogs
}

// startDaemon runs the real daemon against the fakes of env, until the test ends.
func startDaemon(t *testing.T, env *testenv.Env, mutate ...func(*config.Config)) *daemonUnderTest {
	t.Helper()
	return startDaemonWith(t, env, Options{}, mutate...)
}

// startDaemonWith is startDaemon with options for Run; its logger, drain
// timeout and Ready are the test's own.
func startDaemonWith(t *testing.T, env *testenv.Env, opts Options, mutate ...func(*config.Config)) *daemonUnderTest {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = env.UpstreamURL
	cfg.Broker.URL = env.BrokerURL
	cfg.Broker.Timeout = time.Second
	cfg.Credentials.File = env.Store.Path()
	cfg.Credentials.ValidateOnStart = false
	cfg.Usage.File = filepath.Join(t.TempDir(), "usage.db") // never the user's own ledger
	for _, f := range mutate {
		f(&cfg)
	}
	require.Empty(t, cfg.Validate())
	// Registered first, so it runs once the daemon has stopped: every
	// goroutine the daemon or its requests started is gone by then. The
	// fakes' own goroutines started before and are ignored.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before, ignoreFakeServers) })
	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		opts.Logger, opts.DrainTimeout, opts.Ready = zap.New(core), 2*time.Second, func(a net.Addr) { ready <- a }
		done <- Run(ctx, cfg, opts)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		client.CloseIdleConnections()
	})
	return &daemonUnderTest{url: "http://" + addr.String(), logs: logs}
}

// ignoreFakeServers leaves out a fake's server that a test starts after the
// daemon: it closes with the fakes, after this check.
var ignoreFakeServers = goleak.IgnoreAnyFunction("net/http/httptest.(*Server).goServe.func1")

var client = &http.Client{Timeout: 20 * time.Second}

func (d *daemonUnderTest) post(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := client.Post(d.url+"/api/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRevokedKeyManyConcurrentRequestsOneRotation(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.Revoke(old.APIKey.Reveal())

	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = d.post(t, chatBody)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		assert.Equal(t, http.StatusOK, s, "request %d", i)
	}
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
	stored := env.Stored(t)
	assert.NotEqual(t, old.APIKey, stored.APIKey)
	reqs := env.OpenRouter.Requests()
	assert.Equal(t, "Bearer "+stored.APIKey.Reveal(), reqs[len(reqs)-1].Header.Get("Authorization"))
}

func TestStreamingRequestRecoveredAfter401(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	resp, err := client.Post(d.url+"/api/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	var last string
	for sc.Scan() {
		if sc.Text() != "" {
			last = sc.Text()
		}
	}
	assert.Equal(t, "data: [DONE]", last)
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
}

func TestKeyFromAnotherProcessRecoversWithoutBroker(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	status, _ := d.post(t, chatBody)
	require.Equal(t, http.StatusOK, status)

	fresh := env.OpenRouter.IssueKey("", nil)
	next := old.Clone()
	next.APIKey = secret.New(fresh.Key)
	require.NoError(t, auth.NewStore(env.Store.Path()).Save(context.Background(), next))
	env.OpenRouter.Revoke(old.APIKey.Reveal())

	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusOK, status, body)
	assert.Zero(t, env.Broker.Stats().RotateCalls)
}

func TestBrokerFailuresGiveTheOriginal401WithTheReason(t *testing.T) {
	faults := []struct {
		name  string
		fault broker.Fault
		want  string
	}{
		{"500 detail", broker.Fault{Detail: "vault sealed"}, "vault sealed"},
		{"500 error.message", broker.Fault{ErrorMessage: "upstream key service down"}, "upstream key service down"},
		{"garbage", broker.Fault{Garbage: true}, "broker"},
		{"hang", broker.Fault{Hang: true}, "broker"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			old := env.LoginBroker(t)
			d := startDaemon(t, env)
			env.OpenRouter.Revoke(old.APIKey.Reveal())
			env.Broker.SetFault(f.fault)

			start := time.Now()
			status, body := d.post(t, chatBody)
			assert.Equal(t, http.StatusUnauthorized, status)
			assert.Less(t, time.Since(start), time.Second+2*time.Second, "bounded by broker.timeout plus a margin")
			assert.Contains(t, body, `"code":401`)
			assert.Contains(t, body, "User not found.", "the original 401 message stays")
			assert.Contains(t, body, "rotating the key through the broker failed")
			assert.Contains(t, body, "run `orproxy rotate` or `orproxy login`", "the answer says what to run")
			assert.Contains(t, body, f.want)

			resp, err := client.Get(d.url + "/healthz")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the daemon stays healthy")

			env.Broker.SetFault(broker.Fault{})
			status, body = d.post(t, chatBody)
			assert.Equal(t, http.StatusOK, status, "recovers once the broker does: %s", body)
		})
	}
}

// rejectingIssuer mints keys and revokes them at once, like a broker that
// hands out keys OpenRouter does not accept.
type rejectingIssuer struct {
	broker.KeyIssuer
	issued int
	mu     sync.Mutex
}

func (r *rejectingIssuer) IssueKey(ctx context.Context, label string, exp *time.Time) (openrouter.KeyInfo, error) {
	info, err := r.KeyIssuer.IssueKey(ctx, label, exp)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued++
	if err == nil && r.issued > 1 { // the first key is the login's
		err = r.KeyIssuer.Revoke(ctx, info.Key)
	}
	return info, err
}

func TestRotatedKeyAlsoRejectedIsRetriedOnlyOnce(t *testing.T) {
	env := testenv.New(t, testenv.Options{WrapIssuer: func(i broker.KeyIssuer) broker.KeyIssuer { return &rejectingIssuer{KeyIssuer: i} }})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusUnauthorized, status, body)
	assert.Equal(t, 2, env.OpenRouter.Count("/api/v1/chat/completions"), "one attempt, one retry, no loop")
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
}

func TestLargeBodyReplayedIntactAfter401(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env)
	env.OpenRouter.Revoke(old.APIKey.Reveal())

	var b bytes.Buffer
	b.WriteString(`{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"`)
	for b.Len() < 20<<20 {
		fmt.Fprintf(&b, "line %d of a long pasted log \\n", b.Len())
	}
	b.WriteString(`"}]}`)
	body := b.String()
	// Without the web search tool, so both attempts must be byte for byte the client's body.
	req, err := http.NewRequest(http.MethodPost, d.url+"/api/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Orproxy-Web-Search", "off")
	resp, err := client.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var chats []openrouter.Request
	for _, r := range env.OpenRouter.Requests() {
		if r.Path == "/api/v1/chat/completions" {
			chats = append(chats, r)
		}
	}
	require.Equal(t, 2, len(chats), "the rejected attempt and the replay")
	want := sha256.Sum256([]byte(body))
	for i, r := range chats {
		assert.Equal(t, want, sha256.Sum256(r.Body), "attempt %d carried the whole body", i)
		assert.Empty(t, r.Header.Values("X-Orproxy-Web-Search"), "control headers stay local")
	}
}

func TestBodyOverConfiguredLimit(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	d := startDaemon(t, env, func(c *config.Config) { c.Limits.MaxRequestBody = 64 * config.KiB })
	status, body := d.post(t, `{"messages":[{"role":"user","content":"`+strings.Repeat("z", 70<<10)+`"}]}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	assert.Contains(t, body, "limits.max_request_body")
	assert.Zero(t, env.OpenRouter.Count("/api/v1/chat/completions"))
}

func TestNoCredentialFile(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	d := startDaemon(t, env)
	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, body, "run `orproxy login`")
	assert.Zero(t, env.OpenRouter.Count("/api/v1/chat/completions"))
}

func TestAutoLoginOnFirstRequest(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	d := startDaemon(t, env, func(c *config.Config) { c.Login.AutoLogin = true; c.Login.OpenBrowser = false })

	const n = 5
	statuses := make(chan int, n)
	for range n {
		go func() {
			s, _ := d.post(t, chatBody)
			statuses <- s
		}()
	}
	// The test is the user: it finds the URL in /status and opens it.
	var loginURL string
	require.Eventually(t, func() bool {
		resp, err := client.Get(d.url + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Credential struct {
				LoginURL string `json:"login_url"`
			} `json:"credential"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		loginURL = st.Credential.LoginURL
		return loginURL != ""
	}, 5*time.Second, 10*time.Millisecond)
	assert.NotEmpty(t, d.logs.FilterMessageSnippet("open this URL to log in").All())
	resp, err := client.Get(loginURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for range n {
		assert.Equal(t, http.StatusOK, <-statuses)
	}
	assert.Equal(t, 1, env.Broker.Stats().ExchangeCalls, "one login for all waiting requests")
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
}

func TestAutoLoginUnfinishedGives401WithTheURL(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	d := startDaemonWith(t, env, Options{LoginTimeout: 500 * time.Millisecond}, func(c *config.Config) {
		c.Login.AutoLogin, c.Login.OpenBrowser = true, false
	})
	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, body, "nobody finished the login at http")
	assert.Contains(t, body, "/auth/openrouter/start")
	assert.Contains(t, body, "orproxy login")
}
