package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/fake/broker"
)

// outputs collects everything orproxy says to anyone: command output,
// the daemon's log, HTTP answers and the browser pages of the logins.
type outputs struct {
	t     *testing.T
	texts []string
	names []string
}

func (o *outputs) add(name, text string) {
	o.names = append(o.names, name)
	o.texts = append(o.texts, text)
}

// answer sends a request to the daemon and keeps the whole answer,
// headers included.
func (o *outputs) answer(name, method, u, body string, header map[string]string) (int, string) {
	o.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(o.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	require.NoError(o.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(o.t, err)
	var head strings.Builder
	_ = resp.Header.Write(&head)
	o.add(name, head.String()+"\n"+string(b))
	return resp.StatusCode, string(b)
}

// interactiveLogin is runLogin keeping what the command and the browser's
// page said.
func (s *stack) interactiveLogin(o *outputs, name string, browse func(loginURL string) string, args ...string) {
	s.t.Helper()
	run := s.runLogin(browse, args...)
	o.add(name+" browser page", run.page)
	o.add(name+" stdout", run.stdout)
	o.add(name+" stderr", run.stderr)
}

func (s *stack) run(o *outputs, name, stdin string, args ...string) error {
	s.t.Helper()
	out, errOut, err := s.orproxy(stdin, args...)
	o.add(name+" stdout", out)
	o.add(name+" stderr", errOut)
	return err
}

// rawExchange sends request as written and returns the answer, whose status
// must lie in [low, high].
func rawExchange(t *testing.T, addr, request string, low, high int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, request)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "%q", request)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.True(t, resp.StatusCode >= low && resp.StatusCode <= high, "%q: %d %s", request, resp.StatusCode, body)
	var head strings.Builder
	_ = resp.Header.Write(&head)
	return resp.Status + "\n" + head.String() + "\n" + string(body)
}

// TestNoSecretReachesAnyOutput drives every flow with the real binary:
// the three logins, status, serving, a rotation, broker failures, the
// rotate command, error answers and logout. Every key OpenRouter issued,
// every refresh token, the PKCE code and verifier and the broker's code are
// then looked for in everything orproxy printed, logged or answered: none
// may appear. The credential file is private.
func TestNoSecretReachesAnyOutput(t *testing.T) {
	s := newStack(t)
	o := &outputs{t: t}
	ctx := s.ctx()
	var secrets []string
	refreshTokens := func() {
		data, err := os.ReadFile(s.credFile)
		if err == nil {
			if rt := gjson.GetBytes(data, "broker_refresh_token").String(); rt != "" {
				secrets = append(secrets, rt)
			}
		}
	}
	noFollow := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(c *http.Client, u string) string {
		resp, err := c.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u, b)
		return string(b)
	}

	// A pasted key.
	pasted, err := s.openrouter.IssueKey(ctx, "pasted", nil)
	require.NoError(t, err)
	require.NoError(t, s.run(o, "login --method key", pasted.Key+"\n", "login", "--method", "key"))
	require.NoError(t, s.run(o, "status", "", "status"))

	// OpenRouter's PKCE flow, the test as the browser.
	s.interactiveLogin(o, "login --method openrouter", func(u string) string { return page(httpClient, u) }, "--method", "openrouter")
	reqs, err := s.openrouter.Requests(ctx)
	require.NoError(t, err)
	var pkce []string
	for _, r := range reqs {
		if r.Path == "/api/v1/auth/keys" {
			pkce = append(pkce, gjson.GetBytes(r.Body, "code").String(), gjson.GetBytes(r.Body, "code_verifier").String())
		}
	}
	require.Len(t, pkce, 2, "the fake saw one PKCE exchange")
	secrets = append(secrets, pkce...)
	require.NoError(t, s.run(o, "status --json", "", "status", "--json"))

	// The broker flow: the test follows the broker's redirect itself to
	// learn the code it carries.
	s.interactiveLogin(o, "login (broker)", func(u string) string {
		resp, err := noFollow.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		code := loc.Query().Get("code")
		require.NotEmpty(t, code)
		secrets = append(secrets, code)
		return page(httpClient, loc.String())
	})
	refreshTokens()
	for path, want := range map[string]os.FileMode{s.credFile: 0o600, s.credFile + ".lock": 0o600, filepath.Dir(s.credFile): 0o700} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, want, info.Mode().Perm(), path)
	}

	// Serving: answers, a rotation, broker failures, error answers.
	s.startProxy()
	api := s.proxyURL + "/api/v1"
	chat := `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	o.answer("chat", "POST", api+"/chat/completions", chat, map[string]string{"Authorization": "Bearer client-placeholder"})
	o.answer("stream", "POST", api+"/chat/completions", `{"model":"openai/gpt-4o-mini","stream":true,"messages":[]}`, nil)
	o.answer("models", "GET", api+"/models", "", nil)
	o.answer("healthz", "GET", s.proxyURL+"/healthz", "", nil)
	o.answer("not found", "GET", s.proxyURL+"/nope", "", nil)
	o.answer("guard", "POST", api+"/chat/completions", chat, map[string]string{"Origin": "https://evil.example"})

	// What the guard refuses, sent as written, over a raw connection.
	addr := strings.TrimPrefix(s.proxyURL, "http://")
	for name, request := range map[string]string{
		"foreign Host":     "POST /api/v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
		"CONNECT":          "CONNECT openrouter.ai:443 HTTP/1.1\r\nHost: openrouter.ai:443\r\n\r\n",
		"absolute-form":    "GET http://openrouter.ai/api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
		"path escape":      "GET /api/v1/../../x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
		"encoded dot path": "GET /api/v1/%2e%2e/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
		"Origin null":      "GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: null\r\nConnection: close\r\n\r\n",
	} {
		o.add("raw "+name, rawExchange(t, addr, request, 400, 499))
	}

	// A second daemon on the same credential file, with an access token and
	// an upstream that is gone: refusals for the token, a 502 past it.
	const token = "e2e-access-token-0123456789abcdef"
	secrets = append(secrets, token)
	guarded := filepath.Join(s.home, "guarded.yaml")
	require.NoError(t, os.WriteFile(guarded, fmt.Appendf(nil,
		"listen: %s\nupstream: http://%s/api/v1\naccess_token: %s\ncredentials: {file: %s}\nlog: {level: debug, format: json}\n",
		freeAddr(t), freeAddr(t), token, s.credFile), 0o600))
	second, secondURL := serve(t, s.env, "--config", guarded)
	for name, auth := range map[string]string{"no token": "", "wrong token": "Bearer not-the-token-0123456789", "token": "Bearer " + token} {
		status, _ := o.answer("guarded daemon, "+name, "POST", secondURL+"/api/v1/chat/completions", chat, map[string]string{"Authorization": auth})
		if auth == "Bearer "+token {
			assert.Equal(t, http.StatusBadGateway, status, "past the token, the gone upstream")
		} else {
			assert.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, name)
		}
	}

	_, err = s.broker.RevokeCurrentKey(ctx)
	require.NoError(t, err)
	status, body := o.answer("chat after revocation", "POST", api+"/chat/completions", chat, nil)
	require.Equal(t, http.StatusOK, status, body)
	refreshTokens()

	for _, f := range []broker.Fault{{Detail: "vault sealed"}, {ErrorMessage: "key service down"}, {Garbage: true}, {RejectRefresh: true}} {
		require.NoError(t, s.broker.SetFault(ctx, f))
		_, err = s.broker.RevokeCurrentKey(ctx)
		require.NoError(t, err)
		status, body = o.answer(fmt.Sprintf("chat with broker fault %+v", f), "POST", api+"/chat/completions", chat, nil)
		assert.Equal(t, http.StatusUnauthorized, status, body)
		assert.Error(t, s.run(o, fmt.Sprintf("rotate with broker fault %+v", f), "", "rotate"))
		require.NoError(t, s.broker.SetFault(ctx, broker.Fault{}))
		status, body = o.answer("chat after the fault", "POST", api+"/chat/completions", chat, nil)
		require.Equal(t, http.StatusOK, status, body)
		refreshTokens()
	}
	require.NoError(t, s.run(o, "rotate", "", "rotate"))
	refreshTokens()
	require.NoError(t, s.run(o, "status with the daemon", "", "status"))
	require.NoError(t, s.run(o, "status --json with the daemon", "", "status", "--json"))
	o.answer("/status", "GET", s.proxyURL+"/status", "", nil)
	require.NoError(t, s.run(o, "logout", "", "logout"))
	status, _ = o.answer("chat logged out", "POST", api+"/chat/completions", chat, nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	o.add("daemon log", s.proxy.Output())
	o.add("guarded daemon log", second.Output())

	// Every key OpenRouter ever issued: pasted, PKCE, the broker's.
	keys, err := s.openrouter.Keys(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(keys), 8)
	for _, k := range keys {
		secrets = append(secrets, k.Key)
	}
	for _, sec := range secrets {
		require.GreaterOrEqual(t, len(sec), 16, "a secret to look for is too short to mean anything: %q", sec)
	}
	for i, text := range o.texts {
		for _, sec := range secrets {
			assert.NotContains(t, text, sec, "%s shows a secret", o.names[i])
		}
	}
	// The redacted form is what users see instead.
	assert.Contains(t, strings.Join(o.texts, "\n"), "sk-or-v1-…")
}
