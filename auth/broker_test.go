package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// fakes is a fake OpenRouter and a fake broker that mints keys there.
type fakes struct {
	or        *openrouter.Server
	orURL     string // API base, …/api/v1
	broker    *broker.Server
	brokerURL string
}

func newFakes(t *testing.T, opts broker.Options) *fakes {
	t.Helper()
	or := openrouter.New(openrouter.Options{})
	orSrv := httptest.NewServer(or.Handler())
	t.Cleanup(orSrv.Close)
	opts.Issuer = broker.ServerIssuer(or)
	b, err := broker.New(opts)
	require.NoError(t, err)
	bSrv := httptest.NewServer(b.Handler())
	t.Cleanup(bSrv.Close)
	return &fakes{or: or, orURL: orSrv.URL + "/api/v1", broker: b, brokerURL: bSrv.URL}
}

func (f *fakes) client(t *testing.T, headers ...string) *BrokerClient {
	t.Helper()
	bc, err := NewBrokerClient(f.brokerURL, headers, 2*time.Second, nil)
	require.NoError(t, err)
	return bc
}

// keyStatus is what the fake OpenRouter answers to GET /key with key.
func (f *fakes) keyStatus(t *testing.T, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.orURL+"/key", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

var testHTTP = &http.Client{Timeout: 5 * time.Second}

var noFollow = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// codeFrom plays a browser at the start URL and returns the code it is sent back with.
func codeFrom(t *testing.T, startURL string) secret.Secret {
	t.Helper()
	resp, err := noFollow.Get(startURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	u, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return secret.New(u.Query().Get("code"))
}

func TestBrokerExchangeAndRotate(t *testing.T) {
	f := newFakes(t, broker.Options{})
	bc := f.client(t)
	ctx := testCtx(t)
	assert.Equal(t, f.brokerURL, bc.BaseURL())

	start, err := bc.StartURL(ctx, "http://127.0.0.1:5555/callback?state=xyz")
	require.NoError(t, err)
	assert.Equal(t, f.brokerURL+"/auth/openrouter/start?return_to=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback%3Fstate%3Dxyz", start)
	assert.Zero(t, f.broker.Stats().StartCalls, "without start headers the browser does the request")

	got, err := bc.Exchange(ctx, codeFrom(t, start))
	require.NoError(t, err)
	cur := f.broker.Stats().CurrentKey
	require.NotNil(t, cur)
	assert.Equal(t, cur.Key, got.APIKey.Reveal())
	assert.Equal(t, cur.Hash, got.KeyHash)
	assert.Equal(t, cur.Label, got.KeyLabel)
	assert.True(t, cur.ExpiresAt.Equal(got.KeyExpiresAt))
	assert.False(t, got.RefreshToken.IsZero())
	assert.Equal(t, http.StatusOK, f.keyStatus(t, got.APIKey.Reveal()))

	rotated, err := bc.Rotate(ctx, got.RefreshToken)
	require.NoError(t, err)
	assert.NotEqual(t, got.APIKey, rotated.APIKey)
	assert.Equal(t, got.RefreshToken, rotated.RefreshToken)
	assert.Equal(t, http.StatusUnauthorized, f.keyStatus(t, got.APIKey.Reveal()), "the old key is revoked")
	assert.Equal(t, http.StatusOK, f.keyStatus(t, rotated.APIKey.Reveal()))

	c := rotated.Credential(bc.BaseURL())
	assert.Equal(t, SourceBroker, c.Source)
	assert.Equal(t, f.brokerURL, c.BrokerURL)
	assert.Equal(t, rotated.RefreshToken, c.RefreshToken)
}

func TestBrokerRotateWithoutRefreshTokenKeepsTheOld(t *testing.T) {
	f := newFakes(t, broker.Options{OmitRotatedRefreshToken: true})
	bc := f.client(t)
	ctx := testCtx(t)
	start, err := bc.StartURL(ctx, "http://127.0.0.1:5555/callback?state=xyz")
	require.NoError(t, err)
	got, err := bc.Exchange(ctx, codeFrom(t, start))
	require.NoError(t, err)
	rotated, err := bc.Rotate(ctx, got.RefreshToken)
	require.NoError(t, err)
	assert.Equal(t, got.RefreshToken.Reveal(), rotated.RefreshToken.Reveal())
	_, err = bc.Rotate(ctx, rotated.RefreshToken)
	require.NoError(t, err, "the kept token works for the next rotation")

	f = newFakes(t, broker.Options{RotateRefreshTokens: true})
	bc = f.client(t)
	start, err = bc.StartURL(ctx, "http://127.0.0.1:5555/callback?state=xyz")
	require.NoError(t, err)
	got, err = bc.Exchange(ctx, codeFrom(t, start))
	require.NoError(t, err)
	rotated, err = bc.Rotate(ctx, got.RefreshToken)
	require.NoError(t, err)
	assert.NotEqual(t, got.RefreshToken.Reveal(), rotated.RefreshToken.Reveal(), "a new refresh token replaces the old")
}

func TestBrokerRejectedAndFailedRotations(t *testing.T) {
	f := newFakes(t, broker.Options{})
	bc := f.client(t)
	ctx := testCtx(t)
	start, err := bc.StartURL(ctx, "http://127.0.0.1:5555/callback?state=xyz")
	require.NoError(t, err)
	got, err := bc.Exchange(ctx, codeFrom(t, start))
	require.NoError(t, err)
	refresh := got.RefreshToken

	_, err = bc.Rotate(ctx, secret.New("rt-not-known-to-the-broker"))
	assert.True(t, IsRefreshRejected(err), "%v", err)
	_, err = bc.Rotate(ctx, secret.Secret{})
	assert.ErrorContains(t, err, "no refresh token")

	f.broker.SetFault(broker.Fault{RejectRefresh: true})
	_, err = bc.Rotate(ctx, refresh)
	require.Error(t, err)
	assert.True(t, IsRefreshRejected(err))
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "refresh token revoked")

	// OAuth's answer to a refresh token it no longer knows.
	f.broker.SetFault(broker.Fault{Endpoint: "rotate", Status: 400, Detail: "invalid_grant"})
	_, err = bc.Rotate(ctx, refresh)
	assert.True(t, IsRefreshRejected(err), "%v", err)

	f.broker.SetFault(broker.Fault{Detail: "database is down"})
	_, err = bc.Rotate(ctx, refresh)
	require.Error(t, err)
	assert.False(t, IsRefreshRejected(err))
	var be *BrokerError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "rotate", be.Op)
	assert.Equal(t, 500, be.Status)
	assert.Equal(t, "database is down", be.Message)
	assert.Equal(t, "broker rotate: 500 Internal Server Error: database is down", err.Error())

	f.broker.SetFault(broker.Fault{Detail: []any{map[string]any{"loc": []string{"header", "authorization"}, "msg": "field required"}}, Status: 422})
	_, err = bc.Rotate(ctx, refresh)
	assert.ErrorContains(t, err, `422 Unprocessable Entity: [{"loc":["header","authorization"],"msg":"field required"}]`)

	f.broker.SetFault(broker.Fault{ErrorMessage: "key service unavailable", Status: 503})
	_, err = bc.Rotate(ctx, refresh)
	assert.EqualError(t, err, "broker rotate: 503 Service Unavailable: key service unavailable")
	assert.False(t, IsRefreshRejected(err))

	f.broker.SetFault(broker.Fault{Garbage: true})
	_, err = bc.Rotate(ctx, refresh)
	assert.ErrorContains(t, err, "not a JSON object")
	assert.False(t, IsRefreshRejected(err))

	f.broker.SetFault(broker.Fault{Detail: "bad code", Status: 401, Endpoint: "exchange"})
	_, err = bc.Exchange(ctx, secret.New("whatever-code"))
	assert.ErrorContains(t, err, "broker exchange code: 401 Unauthorized: bad code")
	assert.False(t, IsRefreshRejected(err), "only a rotation can reject a refresh token")

	// Wrapped errors still classify.
	f.broker.SetFault(broker.Fault{RejectRefresh: true})
	s := newTestStore(t)
	require.NoError(t, s.Save(ctx, got.Credential(bc.BaseURL())))
	_, err = s.Update(ctx, func(cur *Credential) (*Credential, error) {
		bc2, err := bc.Rotate(ctx, cur.RefreshToken)
		if err != nil {
			return nil, err
		}
		return bc2.Credential(bc.BaseURL()), nil
	})
	assert.True(t, IsRefreshRejected(err))
}

func TestBrokerTimeoutIsBounded(t *testing.T) {
	f := newFakes(t, broker.Options{})
	bc, err := NewBrokerClient(f.brokerURL, nil, 200*time.Millisecond, nil)
	require.NoError(t, err)
	for _, fault := range []broker.Fault{{Hang: true}, {Delay: 3 * time.Second}} {
		f.broker.SetFault(fault)
		began := time.Now()
		_, err = bc.Rotate(context.Background(), secret.New("rt-whatever-token"))
		require.Error(t, err)
		assert.Less(t, time.Since(began), 2*time.Second)
		assert.False(t, IsRefreshRejected(err), "a timeout is transient")
		var be *BrokerError
		require.ErrorAs(t, err, &be)
		assert.Zero(t, be.Status)
	}
}

func TestBrokerOddAnswers(t *testing.T) {
	var answer atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answer.Load().([2]any)
		w.WriteHeader(a[0].(int))
		_, _ = io.WriteString(w, a[1].(string))
	}))
	defer srv.Close()
	bc, err := NewBrokerClient(srv.URL+"/", nil, 2*time.Second, nil)
	require.NoError(t, err)
	refresh := secret.New(testRefresh)
	ctx := testCtx(t)
	set := func(status int, body string) { answer.Store([2]any{status, body}) }

	set(200, `{"broker_refresh_token":"rt-x","openrouter_key_hash":"h"}`)
	_, err = bc.Rotate(ctx, refresh)
	assert.ErrorContains(t, err, "no openrouter_api_key")
	set(200, `{"openrouter_api_key":""}`)
	_, err = bc.Exchange(ctx, secret.New("code-1234"))
	assert.ErrorContains(t, err, "no openrouter_api_key")
	set(200, `{"openrouter_api_key":null}`)
	_, err = bc.Exchange(ctx, secret.New("code-1234"))
	assert.ErrorContains(t, err, "no openrouter_api_key")

	// Lenient about what is not the key: an odd expiry must not lose a
	// freshly rotated key.
	set(200, `{"openrouter_api_key":"sk-or-v1-new","openrouter_key_expires_at":"next tuesday","openrouter_key_label":7}`)
	got, err := bc.Rotate(ctx, refresh)
	require.NoError(t, err)
	assert.Equal(t, "sk-or-v1-new", got.APIKey.Reveal())
	assert.True(t, got.KeyExpiresAt.IsZero())
	assert.Equal(t, refresh, got.RefreshToken)
	set(200, `{"openrouter_api_key":"sk-or-v1-new","openrouter_key_expires_at":"2026-12-01 10:00:00"}`)
	got, err = bc.Rotate(ctx, refresh)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), got.KeyExpiresAt)
	set(200, `{"openrouter_api_key":"sk-or-v1-new","openrouter_key_expires_at":1796083200}`)
	got, err = bc.Rotate(ctx, refresh)
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1796083200, 0).UTC(), got.KeyExpiresAt)

	// Messages are bounded and stripped of control characters and of the
	// secret the broker echoes back.
	set(500, `{"detail":"bad\u001b[31m token `+testRefresh+`\nsecond line `+strings.Repeat("x", 1000)+`"}`)
	_, err = bc.Rotate(ctx, refresh)
	require.Error(t, err)
	msg := err.Error()
	assert.NotContains(t, msg, testRefresh)
	assert.NotContains(t, msg, "\x1b")
	assert.NotContains(t, msg, "\n")
	assert.Less(t, len(msg), 500)
	assert.Contains(t, msg, "bad [31m token")

	set(502, "<html><body>Bad gateway</body></html>")
	_, err = bc.Rotate(ctx, refresh)
	assert.EqualError(t, err, "broker rotate: 502 Bad Gateway: <html><body>Bad gateway</body></html>")
}

func TestBrokerNeverFollowsRedirects(t *testing.T) {
	var hits atomic.Int32
	var sawAuth atomic.Value
	sawAuth.Store("")
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		sawAuth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, `{"openrouter_api_key":"sk-or-v1-stolen"}`)
	}))
	defer elsewhere.Close()
	for _, status := range []int{301, 302, 307, 308} {
		broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/steal?x=1", status)
		}))
		bc, err := NewBrokerClient(broker.URL, nil, 2*time.Second, nil)
		require.NoError(t, err)
		_, err = bc.Rotate(testCtx(t), secret.New(testRefresh))
		require.Error(t, err)
		var be *BrokerError
		require.ErrorAs(t, err, &be)
		assert.Equal(t, status, be.Status)
		assert.Contains(t, err.Error(), "not followed")
		assert.NotContains(t, err.Error(), "x=1")
		assert.False(t, IsRefreshRejected(err))
		_, err = bc.Exchange(testCtx(t), secret.New("code-abcdef"))
		assert.ErrorContains(t, err, "not followed")
		broker.Close()
	}
	assert.Zero(t, hits.Load(), "the redirect target must never be contacted")
	assert.Equal(t, "", sawAuth.Load())
}

func TestBrokerStartHeaders(t *testing.T) {
	_, err := NewBrokerClient("http://127.0.0.1:1", []string{"X-A: 1\r\nX-Evil: 2"}, 0, nil)
	assert.ErrorContains(t, err, "line break")
	_, err = NewBrokerClient("http://127.0.0.1:1", []string{"no colon here"}, 0, nil)
	assert.ErrorContains(t, err, "Name: value")
	for _, bad := range []string{"", "broker.example.com", "ftp://x", "https://u:p@x", "https://x/?q=1"} {
		_, err = NewBrokerClient(bad, nil, 0, nil)
		assert.Error(t, err, bad)
	}

	f := newFakes(t, broker.Options{StartHeaders: []string{"X-Device-Id: dev-7", "X-User: ana"}})
	ctx := testCtx(t)
	returnTo := "http://127.0.0.1:5555/callback?state=xyz"

	bc := f.client(t, "X-Device-Id: dev-7", "x-user:ana")
	loc, err := bc.StartURL(ctx, returnTo)
	require.NoError(t, err)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5555", u.Host, "the Location of the redirect is returned, not followed")
	assert.Equal(t, "xyz", u.Query().Get("state"))
	assert.NotEmpty(t, u.Query().Get("code"))
	st := f.broker.Stats()
	require.Len(t, st.Requests, 1)
	assert.Equal(t, "dev-7", st.Requests[0].Header.Get("X-Device-Id"))
	assert.Equal(t, "ana", st.Requests[0].Header.Get("X-User"))
	assert.Equal(t, returnTo, mustQuery(t, st.Requests[0].Query).Get("return_to"))

	bc = f.client(t, "X-Device-Id: dev-8", "X-User: ana")
	_, err = bc.StartURL(ctx, returnTo)
	assert.EqualError(t, err, "broker start: 403 Forbidden: missing or wrong identity header X-Device-Id")

	f = newFakes(t, broker.Options{StartHeaders: []string{"X-Device-Id: dev-7"}, MissingHeadersStatus: 200})
	bc = f.client(t, "X-Other: 1")
	_, err = bc.StartURL(ctx, returnTo)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broker start: 200 OK: <!doctype html><title>Sign in</title>")
}

func TestBrokerStartRedirectToOddPlaces(t *testing.T) {
	for loc, want := range map[string]string{
		"/login?x=1":         "",
		"file:///etc/passwd": "non-web address",
		"javascript:alert()": "non-web address",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", loc)
			w.WriteHeader(http.StatusFound)
		}))
		bc, err := NewBrokerClient(srv.URL, []string{"X-A: 1"}, time.Second, nil)
		require.NoError(t, err)
		got, err := bc.StartURL(testCtx(t), "http://127.0.0.1:1/callback?state=s")
		if want == "" {
			require.NoError(t, err)
			assert.Equal(t, srv.URL+"/login?x=1", got, "a relative Location resolves against the broker")
		} else {
			assert.ErrorContains(t, err, want)
		}
		srv.Close()
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	require.NoError(t, err)
	return q
}

func TestSanitize(t *testing.T) {
	assert.Equal(t, "a b c", Sanitize("a\n\tb\x1b c\u2028"))
	assert.Equal(t, "x\uFFFDy", Sanitize("x\xffy"))
	long := Sanitize(strings.Repeat("z", 1000))
	assert.Equal(t, maxMessageLen+1, len([]rune(long)))
	assert.Equal(t, "", Sanitize(" \n "))
}
