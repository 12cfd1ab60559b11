package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// syncBuffer is an output stream the test can read while Login writes.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor returns the first line matching re, waiting for it to be written.
func (b *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		text, changed := b.buf.String(), b.changed
		b.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			if re.MatchString(line) {
				return line
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no line matching %v in:\n%s", re, text)
		}
	}
}

var urlLine = regexp.MustCompile(`^https?://\S+$`)

// loginRun is a Login running in the background, with its inputs and outputs.
type loginRun struct {
	stdout, stderr, logs *syncBuffer
	stdin                *io.PipeWriter
	done                 chan struct{}
	cred                 *auth.Credential
	err                  error
}

func startLogin(t *testing.T, store *auth.Store, opts Options) *loginRun {
	t.Helper()
	r := &loginRun{stdout: newSyncBuffer(), stderr: newSyncBuffer(), logs: newSyncBuffer(), done: make(chan struct{})}
	pr, pw := io.Pipe()
	r.stdin = pw
	t.Cleanup(func() { pw.Close() })
	opts.Stdin, opts.Stdout, opts.Stderr = pr, r.stdout, r.stderr
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	opts.Logger = zap.New(zapcore.NewCore(enc, zapcore.AddSync(r.logs), zapcore.DebugLevel))
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	opts.getenv = func(string) string { return "" }
	go func() {
		defer close(r.done)
		r.cred, r.err = Run(context.Background(), store, opts)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("Login did not return")
		}
	})
	return r
}

func (r *loginRun) wait(t *testing.T) (*auth.Credential, error) {
	t.Helper()
	select {
	case <-r.done:
		return r.cred, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("Login did not return")
		return nil, nil
	}
}

func (r *loginRun) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// assertNoSecrets checks every output of the login for the raw values.
func (r *loginRun) assertNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	outputs := map[string]string{"stdout": r.stdout.String(), "stderr": r.stderr.String(), "log": r.logs.String()}
	if r.err != nil {
		outputs["error"] = r.err.Error()
	}
	for name, out := range outputs {
		for _, s := range secrets {
			require.NotEmpty(t, s, "a secret to look for is empty")
			assert.NotContains(t, out, s, "%s leaks a secret", name)
		}
	}
}

// browser plays the user's browser: it follows redirects, and remembers
// where it went.
type browser struct {
	mu      sync.Mutex
	visited []*url.URL
	client  *http.Client
}

func newBrowser() *browser {
	b := &browser{}
	b.client = &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		b.mu.Lock()
		b.visited = append(b.visited, req.URL)
		b.mu.Unlock()
		return nil
	}}
	return b
}

func (b *browser) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := b.client.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// callbackCode is the code the browser carried to the callback.
func (b *browser) callbackCode(t *testing.T) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.visited {
		if u.Path == callbackPath {
			p, err := parseCallbackQuery(u.RawQuery)
			require.NoError(t, err)
			return p.Code.Reveal()
		}
	}
	t.Fatal("the browser never reached the callback")
	return ""
}

// returnTo is the callback address a broker start URL carries.
func returnTo(t *testing.T, startURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(startURL)
	require.NoError(t, err)
	rt, err := url.Parse(u.Query().Get("return_to"))
	require.NoError(t, err)
	return rt
}

func brokerOpts(t *testing.T, f *fakes, headers ...string) Options {
	return Options{Method: MethodBroker, Broker: f.client(t, headers...), Upstream: f.orURL}
}

func TestLoginBrokerEndToEnd(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))

	start := run.stdout.waitFor(t, urlLine)
	rt := returnTo(t, start)
	assert.Equal(t, "127.0.0.1", rt.Hostname())
	assert.NotEqual(t, "0", rt.Port())
	assert.Equal(t, callbackPath, rt.Path)
	state := rt.Query().Get("state")
	assert.Len(t, state, 43, "256 random bits, base64url")

	b := newBrowser()
	status, page := b.get(t, start)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "Logged in")

	cred, err := run.wait(t)
	require.NoError(t, err)
	cur := f.broker.Stats().CurrentKey
	require.NotNil(t, cur)
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, stored, cred)
	assert.Equal(t, auth.SourceBroker, stored.Source)
	assert.Equal(t, cur.Key, stored.APIKey.Reveal())
	assert.Equal(t, cur.Hash, stored.KeyHash)
	assert.Equal(t, cur.Label, stored.KeyLabel)
	assert.True(t, cur.ExpiresAt.Equal(stored.KeyExpiresAt))
	assert.Equal(t, f.brokerURL, stored.BrokerURL)
	assert.False(t, stored.RefreshToken.IsZero())
	assert.WithinDuration(t, time.Now(), stored.UpdatedAt, time.Minute)
	info, err := os.Stat(store.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The refresh token works with the broker.
	_, err = f.client(t).Rotate(testCtx(t), stored.RefreshToken)
	require.NoError(t, err)

	assert.Contains(t, run.stdout.String(), "Logged in through the broker. Key sk-or-v1-…"+cur.Key[len(cur.Key)-4:])
	run.assertNoSecrets(t, cur.Key, stored.RefreshToken.Reveal(), b.callbackCode(t))

	// The server is gone: a replayed code reaches nobody.
	_, err = newBrowser().client.Get(rt.String() + "&code=" + b.callbackCode(t))
	assert.Error(t, err)
}

func TestLoginBrokerRefusesForeignCallbacks(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	rt := returnTo(t, run.stdout.waitFor(t, urlLine))
	base := "http://" + rt.Host
	b := newBrowser()

	for _, tc := range []struct {
		method, url string
		status      int
		says        string
	}{
		{"GET", base + "/callback?state=wrong-state&code=stolen-code-1", 400, "does not match"},
		{"GET", base + "/callback?code=stolen-code-2", 400, "no state"},
		{"GET", base + "/callback?state=" + rt.Query().Get("state"), 400, "no code"},
		{"GET", base + "/callback?state=%zz&code=x", 400, "malformed"},
		{"GET", base + "/other?" + rt.RawQuery + "&code=x", 404, ""},
		{"GET", base + "/", 404, ""},
		{"POST", rt.String() + "&code=x", 405, ""},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		require.NoError(t, err)
		resp, err := b.client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.status, resp.StatusCode, tc.url)
		assert.Contains(t, string(body), tc.says)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.True(t, run.running(), "a refused callback must not end the login")
	}
	// A page that rebinds a host name to 127.0.0.1 is refused even with the state.
	req, err := http.NewRequest(http.MethodGet, rt.String()+"&code=x", nil)
	require.NoError(t, err)
	req.Host = "evil.example:" + rt.Port()
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Zero(t, f.broker.Stats().ExchangeCalls, "no refused callback reached the broker")

	status, page := b.get(t, run.stdout.waitFor(t, urlLine))
	assert.Equal(t, http.StatusOK, status, page)
	_, err = run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
}

func TestLoginBrokerNaiveAppend(t *testing.T) {
	f := newFakes(t, broker.Options{NaiveAppend: true})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	b := newBrowser()
	status, _ := b.get(t, run.stdout.waitFor(t, urlLine))
	assert.Equal(t, http.StatusOK, status)
	_, err := run.wait(t)
	require.NoError(t, err)
	b.mu.Lock()
	assert.Contains(t, b.visited[0].RawQuery, "?code=", "the broker glued ?code= onto the query")
	b.mu.Unlock()
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, f.broker.Stats().CurrentKey.Key, stored.APIKey.Reveal())
}

func TestLoginTimesOut(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	opts := brokerOpts(t, f)
	opts.Timeout = 150 * time.Millisecond
	run := startLogin(t, store, opts)
	_, err := run.wait(t)
	require.EqualError(t, err, "no answer from the browser within 150ms; run `orproxy login` again, with --paste on a machine without a browser: open the address elsewhere and paste here the address the browser ends on")
	_, err = store.Load()
	assert.ErrorIs(t, err, auth.ErrNoCredential)
	rt := returnTo(t, run.stdout.waitFor(t, urlLine))
	_, err = newBrowser().client.Get(rt.String() + "&code=late")
	assert.Error(t, err, "the callback server is closed after the timeout")
}

func TestLoginCanceled(t *testing.T) {
	f := newFakes(t, broker.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	opts := brokerOpts(t, f)
	opts.Stdout = newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, newTestStore(t), opts)
		done <- err
	}()
	opts.Stdout.(*syncBuffer).waitFor(t, urlLine)
	cancel()
	err := <-done
	assert.ErrorIs(t, err, context.Canceled)
}

func TestLoginBrokerPastedAddress(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	opts := brokerOpts(t, f)
	opts.Paste = true
	run := startLogin(t, store, opts)
	start := run.stdout.waitFor(t, urlLine)

	// The browser is "on another machine": it gets the redirect but cannot
	// reach the callback, and the user copies the address instead.
	resp, err := noFollow.Get(start)
	require.NoError(t, err)
	resp.Body.Close()
	final := resp.Header.Get("Location")
	code := codeFromLocation(t, final)

	wrong := strings.Replace(final, "state=", "state=x", 1)
	_, err = io.WriteString(run.stdin, wrong+"\n")
	require.NoError(t, err)
	run.stderr.waitFor(t, regexp.MustCompile(`different login`))
	_, err = io.WriteString(run.stdin, "\nhello there\n")
	require.NoError(t, err)
	run.stderr.waitFor(t, regexp.MustCompile(`not the address the browser ended on`))
	assert.True(t, run.running())

	_, err = io.WriteString(run.stdin, "  "+final+"  \n")
	require.NoError(t, err)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, f.broker.Stats().CurrentKey.Key, cred.APIKey.Reveal())
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
	run.assertNoSecrets(t, cred.APIKey.Reveal(), cred.RefreshToken.Reveal(), code)
}

func TestLoginPasteNeedsTerminalOrFlag(t *testing.T) {
	f := newFakes(t, broker.Options{})
	opts := brokerOpts(t, f)
	opts.Timeout = 300 * time.Millisecond
	run := startLogin(t, newTestStore(t), opts)
	start := run.stdout.waitFor(t, urlLine)
	resp, err := noFollow.Get(start)
	require.NoError(t, err)
	resp.Body.Close()
	// Not a terminal and no --paste: stdin is not read, so this write stays
	// pending until the test ends and closes the pipe.
	go func() { _, _ = io.WriteString(run.stdin, resp.Header.Get("Location")+"\n") }()
	_, err = run.wait(t)
	assert.ErrorContains(t, err, "no answer from the browser")
}

func codeFromLocation(t *testing.T, loc string) string {
	t.Helper()
	p, err := parsePastedCallback(loc)
	require.NoError(t, err)
	return p.Code.Reveal()
}

func TestLoginBrokerSecondCodeRefused(t *testing.T) {
	f := newFakes(t, broker.Options{})
	// The exchange is slow, so a second callback arrives while the first is in use.
	f.broker.SetFault(broker.Fault{Endpoint: "exchange", Delay: 400 * time.Millisecond})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	start := run.stdout.waitFor(t, urlLine)
	rt := returnTo(t, start)

	first := make(chan int, 1)
	b := newBrowser()
	go func() {
		resp, err := b.client.Get(start)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return f.broker.Stats().ExchangeCalls == 1 }, 10*time.Second, 5*time.Millisecond)

	resp, err := newBrowser().client.Get(rt.String() + "&code=second-code-123")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Contains(t, string(body), "already received")

	assert.Equal(t, http.StatusOK, <-first)
	_, err = run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
	_, err = newBrowser().client.Get(rt.String() + "&code=third-code-456")
	assert.Error(t, err, "closed after the good code")
}

func TestLoginBrokerFailures(t *testing.T) {
	_, err := Run(context.Background(), newTestStore(t), Options{Method: MethodBroker})
	assert.EqualError(t, err, "no broker is configured: set broker.url or ORPROXY_BROKER_URL, or use --method openrouter|key")
	_, err = Run(context.Background(), newTestStore(t), Options{Method: "magic"})
	assert.ErrorContains(t, err, "not one of broker, openrouter, key")
	_, err = Run(context.Background(), newTestStore(t), Options{Method: MethodKey, Headless: true})
	assert.EqualError(t, err, "--headless works with --method openrouter only")

	f := newFakes(t, broker.Options{})
	f.broker.SetFault(broker.Fault{Endpoint: "exchange", Detail: "code already used", Status: 400})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	b := newBrowser()
	status, page := b.get(t, run.stdout.waitFor(t, urlLine))
	assert.Equal(t, http.StatusBadGateway, status)
	assert.Contains(t, page, "Login failed")
	assert.Contains(t, page, "code already used")
	_, err = run.wait(t)
	assert.EqualError(t, err, "exchange the login code: broker exchange code: 400 Bad Request: code already used")
	_, err = store.Load()
	assert.ErrorIs(t, err, auth.ErrNoCredential)
	run.assertNoSecrets(t, b.callbackCode(t))

	// The user refused in the browser: the login ends with the reason.
	f = newFakes(t, broker.Options{})
	run = startLogin(t, newTestStore(t), brokerOpts(t, f))
	rt := returnTo(t, run.stdout.waitFor(t, urlLine))
	status, page = b.get(t, rt.String()+"&error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E")
	assert.Equal(t, http.StatusBadGateway, status)
	assert.Contains(t, page, "&lt;b&gt;no&lt;/b&gt;", "the page escapes what it shows")
	_, err = run.wait(t)
	assert.EqualError(t, err, "the login was refused in the browser (access_denied: <b>no</b>)")

	// The broker's start page refuses: the login does not start.
	f = newFakes(t, broker.Options{StartHeaders: []string{"X-Device: d1"}})
	_, err = Run(context.Background(), newTestStore(t), brokerOpts(t, f, "X-Device: d2"))
	assert.EqualError(t, err, "start the broker login: broker start: 403 Forbidden: missing or wrong identity header X-Device")
}

// With start headers the broker knows the user and redirects straight back
// with the one-time code: the login follows that redirect itself and never
// prints, opens or logs the address that holds the code.
func TestLoginBrokerWithStartHeaders(t *testing.T) {
	f := newFakes(t, broker.Options{StartHeaders: []string{"X-Device: d1"}})
	store := newTestStore(t)
	opts := brokerOpts(t, f, "X-Device: d1")
	opts.OpenBrowser = true
	opts.OpenURL = func(context.Context, string) error {
		t.Error("the browser was opened for a login that needs none")
		return nil
	}
	run := startLogin(t, store, opts)
	_, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, 1, f.broker.Stats().StartCalls)
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
	assert.Contains(t, run.stderr.String(), "approved this login without a browser")
	for name, out := range map[string]string{"stdout": run.stdout.String(), "stderr": run.stderr.String(), "log": run.logs.String()} {
		assert.NotContains(t, out, "code=", "%s shows the broker's code", name)
		assert.NotContains(t, out, "could not follow", name)
	}
	stored, err := store.Load()
	require.NoError(t, err)
	run.assertNoSecrets(t, stored.APIKey.Reveal(), stored.RefreshToken.Reveal())
}

func TestLoginOpensTheBrowser(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	opts := brokerOpts(t, f)
	opts.OpenBrowser = true
	opened := make(chan string, 1)
	b := newBrowser()
	opts.OpenURL = func(ctx context.Context, u string) error {
		opened <- u
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	run := startLogin(t, store, opts)
	_, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, run.stdout.waitFor(t, urlLine), <-opened)

	// A failing opener is reported and the login keeps waiting.
	opts.OpenURL = func(context.Context, string) error { return errors.New("no browser today") }
	opts.Timeout = 200 * time.Millisecond
	run = startLogin(t, newTestStore(t), opts)
	_, err = run.wait(t)
	assert.ErrorContains(t, err, "no answer from the browser")
	assert.Contains(t, run.stderr.String(), "Could not open a browser (no browser today)")
}

func TestCanOpenBrowser(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	assert.False(t, canOpenBrowser(env(map[string]string{"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22", "DISPLAY": ":0"})))
	assert.False(t, canOpenBrowser(env(map[string]string{"SSH_TTY": "/dev/pts/1"})))
	if isLinuxLike() {
		assert.False(t, canOpenBrowser(env(nil)))
		assert.True(t, canOpenBrowser(env(map[string]string{"DISPLAY": ":0"})))
		assert.True(t, canOpenBrowser(env(map[string]string{"WAYLAND_DISPLAY": "wayland-0"})))
		assert.True(t, canOpenBrowser(env(map[string]string{"WSL_DISTRO_NAME": "Ubuntu"})))
	}
}

func TestLoginOpenRouterPKCE(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodOpenRouter, Upstream: f.orURL})
	authURL := run.stdout.waitFor(t, urlLine)
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	assert.Equal(t, "/auth", u.Path, "the consent page is the upstream's origin plus /auth")
	assert.Equal(t, strings.TrimSuffix(f.orURL, "/api/v1"), u.Scheme+"://"+u.Host)
	q := u.Query()
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	challenge := q.Get("code_challenge")
	cb, err := url.Parse(q.Get("callback_url"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", cb.Hostname())
	assert.Equal(t, callbackPath, cb.Path)
	assert.Len(t, cb.Query().Get("state"), 43)

	b := newBrowser()
	status, page := b.get(t, authURL)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "Logged in")
	cred, err := run.wait(t)
	require.NoError(t, err)

	assert.Equal(t, auth.SourceOpenRouterOAuth, cred.Source)
	assert.True(t, cred.RefreshToken.IsZero())
	assert.Equal(t, http.StatusOK, f.keyStatus(t, cred.APIKey.Reveal()))
	var issued openrouter.KeyInfo
	for _, k := range f.or.Keys() {
		if k.Key == cred.APIKey.Reveal() {
			issued = k
		}
	}
	assert.Equal(t, issued.Hash, cred.KeyHash, "our hash is OpenRouter's")
	assert.NotEmpty(t, cred.KeyLabel, "label read back from /key")
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, cred, stored)

	verifier := pkceExchangeBody(t, f.or)["code_verifier"]
	assert.Len(t, verifier, 43, "32 random bytes, base64url without padding")
	assert.Equal(t, challenge, s256(verifier), "the fake checked S256(verifier) == challenge; so do we")
	assert.Equal(t, "S256", pkceExchangeBody(t, f.or)["code_challenge_method"])
	run.assertNoSecrets(t, cred.APIKey.Reveal(), verifier, b.callbackCode(t))
}

func TestLoginOpenRouterPaste(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodOpenRouter, Upstream: f.orURL, Paste: true})
	resp, err := noFollow.Get(run.stdout.waitFor(t, urlLine))
	require.NoError(t, err)
	resp.Body.Close()
	final := resp.Header.Get("Location")
	_, err = io.WriteString(run.stdin, strings.Replace(final, "state=", "state=y", 1)+"\n")
	require.NoError(t, err)
	run.stderr.waitFor(t, regexp.MustCompile(`different login`))
	_, err = io.WriteString(run.stdin, final+"\n")
	require.NoError(t, err)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, auth.SourceOpenRouterOAuth, cred.Source)
	run.assertNoSecrets(t, cred.APIKey.Reveal(), codeFromLocation(t, final), pkceExchangeBody(t, f.or)["code_verifier"])
}

func TestLoginOpenRouterHeadless(t *testing.T) {
	f := newFakes(t, broker.Options{})
	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodOpenRouter, Upstream: f.orURL, Headless: true})
	authURL := run.stdout.waitFor(t, urlLine)
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	assert.False(t, u.Query().Has("callback_url"), "headless mode has no callback")
	assert.NotEmpty(t, u.Query().Get("code_challenge"))

	status, page := newBrowser().get(t, authURL)
	require.Equal(t, http.StatusOK, status)
	m := regexp.MustCompile(`<pre id="code">([^<]+)</pre>`).FindStringSubmatch(page)
	require.Len(t, m, 2)
	code := m[1]

	_, err = io.WriteString(run.stdin, "\n  "+code+"  \n")
	require.NoError(t, err)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, auth.SourceOpenRouterOAuth, cred.Source)
	assert.Equal(t, http.StatusOK, f.keyStatus(t, cred.APIKey.Reveal()))
	verifier := pkceExchangeBody(t, f.or)["code_verifier"]
	assert.Equal(t, u.Query().Get("code_challenge"), s256(verifier))
	run.assertNoSecrets(t, cred.APIKey.Reveal(), code, verifier)

	// A code OpenRouter does not know: its message is shown.
	run = startLogin(t, newTestStore(t), Options{Method: MethodOpenRouter, Upstream: f.orURL, Headless: true})
	run.stdout.waitFor(t, urlLine)
	_, err = io.WriteString(run.stdin, "code-made-up-by-the-user\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	assert.EqualError(t, err, "OpenRouter refused the code: 403 Forbidden: Invalid code or code_verifier")

	// Input ends without a code.
	run = startLogin(t, newTestStore(t), Options{Method: MethodOpenRouter, Upstream: f.orURL, Headless: true})
	run.stdout.waitFor(t, urlLine)
	require.NoError(t, run.stdin.Close())
	_, err = run.wait(t)
	assert.ErrorContains(t, err, "input ended before a code was pasted")
}

func TestPKCEExchangeChecksTheVerifier(t *testing.T) {
	f := newFakes(t, broker.Options{})
	p, err := newPKCE()
	require.NoError(t, err)
	authURL, err := authPageURL(f.orURL, "", p, "")
	require.NoError(t, err)
	_, page := newBrowser().get(t, authURL)
	code := regexp.MustCompile(`<pre id="code">([^<]+)</pre>`).FindStringSubmatch(page)[1]

	other, err := newPKCE()
	require.NoError(t, err)
	_, err = auth.ExchangePKCE(testCtx(t), testHTTP, f.orURL, secretOf(code), other.verifier)
	assert.EqualError(t, err, "OpenRouter refused the code: 403 Forbidden: Invalid code or code_verifier")
}

func pkceExchangeBody(t *testing.T, or *openrouter.Server) map[string]string {
	t.Helper()
	for _, r := range or.Requests() {
		if r.Path == "/api/v1/auth/keys" {
			var body map[string]string
			require.NoError(t, json.Unmarshal(r.Body, &body))
			return body
		}
	}
	t.Fatal("no code exchange reached the fake OpenRouter")
	return nil
}

func TestLoginKey(t *testing.T) {
	f := newFakes(t, broker.Options{})
	good := openrouter.NewKey()
	info := f.or.AddKey(good, "my laptop key", nil)

	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL})
	_, err := io.WriteString(run.stdin, "\n"+good+"\n")
	require.NoError(t, err)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, cred.Source)
	assert.Equal(t, good, cred.APIKey.Reveal())
	assert.Equal(t, info.Hash, cred.KeyHash, "our hash is OpenRouter's")
	assert.Equal(t, "my laptop key", cred.KeyLabel)
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, cred, stored)
	assert.Contains(t, run.stdout.String(), "sk-or-v1-…"+good[len(good)-4:])
	run.assertNoSecrets(t, good)
}

func TestLoginKeyRejected(t *testing.T) {
	f := newFakes(t, broker.Options{})
	bad := openrouter.NewKey()
	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodKey, Upstream: f.orURL})
	_, err := io.WriteString(run.stdin, bad+"\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	assert.EqualError(t, err, "OpenRouter rejected the key (401 Unauthorized: User not found.); nothing was stored. Check that you pasted the whole key")
	var rejected *auth.KeyRejectedError
	assert.ErrorAs(t, err, &rejected)
	_, err = store.Load()
	assert.ErrorIs(t, err, auth.ErrNoCredential)
	run.assertNoSecrets(t, bad)
}

// A key OpenRouter cannot be asked about is stored only with --force: a
// typo would otherwise surface as 401s much later.
func TestLoginKeyOffline(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/api/v1"
	dead.Close()
	key := openrouter.NewKey()
	store := newTestStore(t)
	run := startLogin(t, store, Options{Method: MethodKey, Upstream: deadURL})
	_, err := io.WriteString(run.stdin, key+"\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "could not check the key with OpenRouter")
	assert.Contains(t, err.Error(), "nothing was stored")
	assert.Contains(t, err.Error(), "--force")
	_, err = store.Load()
	assert.ErrorIs(t, err, auth.ErrNoCredential)
	run.assertNoSecrets(t, key)

	run = startLogin(t, store, Options{Method: MethodKey, Upstream: deadURL, Force: true})
	_, err = io.WriteString(run.stdin, key+"\n")
	require.NoError(t, err)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, key, cred.APIKey.Reveal())
	assert.Contains(t, run.stderr.String(), "Warning: could not check the key with OpenRouter")
	assert.Contains(t, run.stderr.String(), "unchecked")
	stored, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, auth.SourceManual, stored.Source)
	run.assertNoSecrets(t, key)
}

func TestLoginKeyBadInput(t *testing.T) {
	for input, want := range map[string]string{
		"":                               "no key on standard input",
		"\n\n":                           "no key on standard input",
		"sk-or-v1-abc def\n":             "spaces or control characters",
		strings.Repeat("k", 2000) + "\n": "too long",
	} {
		_, err := Run(context.Background(), newTestStore(t), Options{Method: MethodKey, Upstream: "http://127.0.0.1:1/api/v1", Stdin: strings.NewReader(input)})
		assert.ErrorContains(t, err, want)
	}
}

func secretOf(raw string) secret.Secret { return secret.New(raw) }

func isLinuxLike() bool { return runtime.GOOS != "darwin" && runtime.GOOS != "windows" }
