package broker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	or     *openrouter.Server
	orURL  string
	broker *Server
	url    string
	client *http.Client // does not follow redirects
}

func setup(t *testing.T, opts Options) *env {
	t.Helper()
	or := openrouter.New(openrouter.Options{})
	orSrv := httptest.NewServer(or.Handler())
	t.Cleanup(orSrv.Close)
	if opts.Issuer == nil {
		opts.Issuer = ServerIssuer(or)
	}
	b, err := New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return &env{or: or, orURL: orSrv.URL, broker: b, url: srv.URL, client: &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (e *env) do(t *testing.T, method, path, bearer, body string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data), resp.Header
}

const returnTo = "http://127.0.0.1:4567/callback?state=abc"

func (e *env) startCode(t *testing.T) string {
	t.Helper()
	status, _, h := e.do(t, http.MethodGet, "/auth/openrouter/start?return_to="+url.QueryEscape(returnTo), "", "", nil)
	require.Equal(t, http.StatusFound, status)
	u, err := url.Parse(h.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "abc", u.Query().Get("state"))
	require.NotEmpty(t, u.Query().Get("code"))
	return u.Query().Get("code")
}

type answerBody struct {
	Key       string  `json:"openrouter_api_key"`
	Refresh   *string `json:"broker_refresh_token"`
	Hash      string  `json:"openrouter_key_hash"`
	Label     string  `json:"openrouter_key_label"`
	ExpiresAt *string `json:"openrouter_key_expires_at"`
}

func (e *env) exchange(t *testing.T, code string) answerBody {
	t.Helper()
	status, body, _ := e.do(t, http.MethodPost, "/auth/openrouter/credential", "", `{"code":"`+code+`"}`, nil)
	require.Equal(t, http.StatusOK, status, body)
	var a answerBody
	require.NoError(t, json.Unmarshal([]byte(body), &a))
	return a
}

func (e *env) keyWorks(t *testing.T, key string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.orURL+"/api/v1/key", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestLoginExchangeAndRotate(t *testing.T) {
	e := setup(t, Options{})
	code := e.startCode(t)
	a := e.exchange(t, code)
	assert.True(t, strings.HasPrefix(a.Key, "sk-or-v1-"))
	require.NotNil(t, a.Refresh)
	require.NotNil(t, a.ExpiresAt)
	exp, err := time.Parse(time.RFC3339, *a.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(DefaultKeyTTL), exp, time.Minute)
	assert.NotEmpty(t, a.Hash)
	assert.Contains(t, a.Label, "orproxy-fake-broker")
	assert.True(t, e.keyWorks(t, a.Key))

	// Codes are single use.
	status, body, _ := e.do(t, http.MethodPost, "/auth/openrouter/credential", "", `{"code":"`+code+`"}`, nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, `{"detail":"invalid or expired code"}`, body)

	status, body, _ = e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	require.Equal(t, http.StatusOK, status, body)
	var r answerBody
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	assert.NotEqual(t, a.Key, r.Key)
	require.NotNil(t, r.Refresh)
	assert.Equal(t, *a.Refresh, *r.Refresh, "refresh tokens stay unless RotateRefreshTokens")
	assert.False(t, e.keyWorks(t, a.Key), "rotation revokes the old key at OpenRouter")
	assert.True(t, e.keyWorks(t, r.Key))

	status, _, _ = e.do(t, http.MethodPost, "/credentials/rotate", "rt-unknown", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = e.do(t, http.MethodPost, "/credentials/rotate", "", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)

	st := e.broker.Stats()
	assert.Equal(t, 1, st.StartCalls)
	assert.Equal(t, 2, st.ExchangeCalls)
	assert.Equal(t, 3, st.RotateCalls)
	require.NotNil(t, st.CurrentKey)
	assert.Equal(t, r.Key, st.CurrentKey.Key)
	assert.Equal(t, "Bearer "+*a.Refresh, st.Requests[3].Header.Get("Authorization"))
}

func TestRotateRefreshTokensAndOmit(t *testing.T) {
	e := setup(t, Options{RotateRefreshTokens: true, KeyTTL: -1})
	a := e.exchange(t, e.startCode(t))
	assert.Nil(t, a.ExpiresAt, "negative TTL: no expiry")
	status, body, _ := e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	require.Equal(t, http.StatusOK, status)
	var r answerBody
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.NotNil(t, r.Refresh)
	assert.NotEqual(t, *a.Refresh, *r.Refresh)
	status, _, _ = e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	assert.Equal(t, http.StatusUnauthorized, status, "the old refresh token is gone")

	e = setup(t, Options{OmitRotatedRefreshToken: true, KeyTTL: time.Hour})
	a = e.exchange(t, e.startCode(t))
	status, body, _ = e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, "broker_refresh_token")
	status, _, _ = e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	assert.Equal(t, http.StatusOK, status, "the kept refresh token still works")
}

func TestStartRedirects(t *testing.T) {
	e := setup(t, Options{NaiveAppend: true})
	status, _, h := e.do(t, http.MethodGet, "/auth/openrouter/start?return_to="+url.QueryEscape(returnTo), "", "", nil)
	require.Equal(t, http.StatusFound, status)
	assert.Regexp(t, `^http://127\.0\.0\.1:4567/callback\?state=abc\?code=bc-[0-9a-f]+$`, h.Get("Location"))

	for _, bad := range []string{"", "https://evil.example/callback", "javascript:alert(1)", "http://10.0.0.1/cb"} {
		status, _, _ = e.do(t, http.MethodGet, "/auth/openrouter/start?return_to="+url.QueryEscape(bad), "", "", nil)
		assert.Equal(t, http.StatusBadRequest, status, bad)
	}
}

func TestStartExactReturnTo(t *testing.T) {
	e := setup(t, Options{ExactReturnTo: true})
	start := func(rt string) (int, string, http.Header) {
		return e.do(t, http.MethodGet, "/auth/openrouter/start?return_to="+url.QueryEscape(rt), "", "", nil)
	}
	status, body, _ := start(returnTo)
	assert.Equal(t, http.StatusBadRequest, status, "a return_to with ?state=")
	assert.JSONEq(t, `{"detail":"`+ReturnToRefusal+`"}`, body)
	for _, bad := range []string{"http://127.0.0.1:4567/callback?", "http://127.0.0.1:4567/callback#x", "http://127.0.0.1:4567/other"} {
		status, _, _ = start(bad)
		assert.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _, h := start("http://127.0.0.1:4567/callback")
	require.Equal(t, http.StatusFound, status)
	assert.Regexp(t, `^http://127\.0\.0\.1:4567/callback\?code=bc-[0-9a-f]+$`, h.Get("Location"))
	assert.Equal(t, 5, e.broker.Stats().StartCalls, "every start is counted")
}

func TestStartHeaders(t *testing.T) {
	good := http.Header{"X-Device-Id": {"dev-1"}, "X-User": {"ana"}}
	e := setup(t, Options{StartHeaders: []string{"X-Device-Id: dev-1", "x-user: ana"}})
	path := "/auth/openrouter/start?return_to=" + url.QueryEscape(returnTo)
	status, body, _ := e.do(t, http.MethodGet, path, "", "", nil)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, "X-Device-Id")
	status, _, _ = e.do(t, http.MethodGet, path, "", "", http.Header{"X-Device-Id": {"dev-2"}, "X-User": {"ana"}})
	assert.Equal(t, http.StatusForbidden, status)
	status, _, _ = e.do(t, http.MethodGet, path, "", "", good)
	assert.Equal(t, http.StatusFound, status)

	e = setup(t, Options{StartHeaders: []string{"X-Device-Id: dev-1"}, MissingHeadersStatus: http.StatusOK})
	status, body, h := e.do(t, http.MethodGet, path, "", "", nil)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, h.Get("Content-Type"), "text/html")
	assert.Contains(t, body, "Sign in")

	_, err := New(Options{Issuer: ServerIssuer(openrouter.New(openrouter.Options{})), StartHeaders: []string{"bad header"}})
	assert.Error(t, err)
}

func TestFaults(t *testing.T) {
	e := setup(t, Options{})
	a := e.exchange(t, e.startCode(t))
	rotate := func() (int, string) {
		status, body, _ := e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
		return status, body
	}

	e.broker.SetFault(Fault{Detail: "database unavailable"})
	status, body := rotate()
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.JSONEq(t, `{"detail":"database unavailable"}`, body)

	e.broker.SetFault(Fault{Detail: []any{map[string]any{"loc": []string{"body", "code"}, "msg": "field required"}}, Status: 422})
	status, body = rotate()
	assert.Equal(t, 422, status)
	assert.Contains(t, body, "field required")

	e.broker.SetFault(Fault{ErrorMessage: "upstream exploded"})
	status, body = rotate()
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.JSONEq(t, `{"error":{"code":500,"message":"upstream exploded"}}`, body)

	e.broker.SetFault(Fault{Status: http.StatusServiceUnavailable})
	status, body = rotate()
	assert.Equal(t, http.StatusServiceUnavailable, status, "a status alone is a failure too")
	assert.JSONEq(t, `{"detail":"Service Unavailable"}`, body)

	e.broker.SetFault(Fault{Garbage: true})
	status, body = rotate()
	assert.Equal(t, http.StatusOK, status)
	assert.False(t, json.Valid([]byte(body)))

	e.broker.SetFault(Fault{RejectRefresh: true})
	status, _ = rotate()
	assert.Equal(t, http.StatusUnauthorized, status)
	// The start page is not hit unless asked.
	e.startCode(t)

	e.broker.SetFault(Fault{Endpoint: "start", Detail: "down"})
	status, _, _ = e.do(t, http.MethodGet, "/auth/openrouter/start?return_to="+url.QueryEscape(returnTo), "", "", nil)
	assert.Equal(t, http.StatusInternalServerError, status)
	status, _ = rotate()
	assert.Equal(t, http.StatusOK, status, "an endpoint-limited fault spares the others")

	e.broker.SetFault(Fault{Delay: 100 * time.Millisecond})
	began := time.Now()
	status, _ = rotate()
	assert.Equal(t, http.StatusOK, status)
	assert.GreaterOrEqual(t, time.Since(began), 100*time.Millisecond)

	e.broker.SetFault(Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/credentials/rotate", nil)
	require.NoError(t, err)
	_, err = e.client.Do(req)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	e.broker.Reset()
	status, _ = rotate()
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 1, e.broker.Stats().RotateCalls, "Reset clears the counters")
}

func TestAdminAPIAndRemoteIssuer(t *testing.T) {
	// The broker reaches the fake OpenRouter only through its admin API,
	// as when both run as processes.
	or := openrouter.New(openrouter.Options{})
	orSrv := httptest.NewServer(or.Handler())
	defer orSrv.Close()
	e := setup(t, Options{Issuer: &openrouter.AdminClient{BaseURL: orSrv.URL}})
	e.orURL = orSrv.URL
	admin := &AdminClient{BaseURL: e.url}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := admin.RevokeCurrentKey(ctx)
	assert.Error(t, err, "nothing issued yet")

	a := e.exchange(t, e.startCode(t))
	assert.True(t, e.keyWorks(t, a.Key))
	revoked, err := admin.RevokeCurrentKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, a.Key, revoked.Key)
	assert.False(t, e.keyWorks(t, a.Key))

	require.NoError(t, admin.SetFault(ctx, Fault{Detail: "nope", Status: 503}))
	status, body, _ := e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	assert.Equal(t, 503, status)
	assert.Contains(t, body, "nope")

	st, err := admin.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.ExchangeCalls)
	assert.Equal(t, 1, st.RotateCalls)
	require.NotNil(t, st.CurrentKey)
	assert.Equal(t, a.Key, st.CurrentKey.Key)

	require.NoError(t, admin.Reset(ctx))
	status, body, _ = e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
	require.Equal(t, http.StatusOK, status, body)
	st, err = admin.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.RotateCalls)
	assert.NotEqual(t, a.Key, st.CurrentKey.Key)
	assert.True(t, e.keyWorks(t, st.CurrentKey.Key))
}

// TestKeyFaults: the broker answers, but with keys OpenRouter rejects: the
// one it was asked to replace, or new ones that are revoked at once. Set
// through the admin API, as a soak test against the processes does, and
// healed by clearing the fault.
func TestKeyFaults(t *testing.T) {
	e := setup(t, Options{})
	admin := &AdminClient{BaseURL: e.url}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := e.exchange(t, e.startCode(t))
	rotate := func() answerBody {
		t.Helper()
		status, body, _ := e.do(t, http.MethodPost, "/credentials/rotate", *a.Refresh, "", nil)
		require.Equal(t, http.StatusOK, status, body)
		var r answerBody
		require.NoError(t, json.Unmarshal([]byte(body), &r))
		return r
	}

	require.NoError(t, admin.SetFault(ctx, Fault{SameKey: true}))
	keys := len(e.or.Keys())
	r := rotate()
	assert.Equal(t, a.Key, r.Key, "the key it was asked to replace comes back")
	assert.Equal(t, *a.Refresh, *r.Refresh)
	assert.True(t, e.keyWorks(t, a.Key), "nothing was revoked")
	assert.Len(t, e.or.Keys(), keys, "nothing was issued")
	_, err := admin.RevokeCurrentKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, a.Key, rotate().Key, "even once OpenRouter rejects it")

	require.NoError(t, admin.SetFault(ctx, Fault{DeadKeys: true}))
	dead := rotate()
	assert.NotEqual(t, a.Key, dead.Key)
	assert.True(t, strings.HasPrefix(dead.Key, "sk-or-v1-"))
	assert.False(t, e.keyWorks(t, dead.Key), "issued and revoked at once")
	assert.False(t, e.keyWorks(t, rotate().Key))
	st, err := admin.Stats(ctx)
	require.NoError(t, err)
	require.NotNil(t, st.CurrentKey)
	assert.True(t, st.CurrentKey.Revoked)
	assert.False(t, e.keyWorks(t, e.exchange(t, e.startCode(t)).Key), "a login gets a dead key too")

	require.NoError(t, admin.SetFault(ctx, Fault{}))
	assert.True(t, e.keyWorks(t, rotate().Key), "healed")
	st, err = admin.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, st.RotateCalls)
}
