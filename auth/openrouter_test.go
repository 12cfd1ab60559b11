package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/testkit"
)

func TestCheckKey(t *testing.T) {
	f := newFakes(t, broker.Options{})
	expires := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	good := f.or.IssueKey("team key", &expires)
	ctx := testCtx(t)

	info, err := CheckKey(ctx, nil, f.orURL, secret.New(good.Key))
	require.NoError(t, err)
	assert.Equal(t, KeyInfo{Label: "team key", ExpiresAt: expires}, info)

	f.or.Revoke(good.Key)
	_, err = CheckKey(ctx, testHTTP, f.orURL+"/", secret.New(good.Key))
	require.Error(t, err)
	assert.True(t, IsKeyRejected(err))
	assert.EqualError(t, err, "OpenRouter rejected the key (401 Unauthorized: User not found.)")

	// Neither a server error, a 403 (moderation, a company proxy's block
	// page) nor an unreachable server is a verdict on the key.
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openrouter.WriteError(w, http.StatusForbidden, "blocked by policy")
	}))
	defer forbidden.Close()
	_, err = CheckKey(ctx, testHTTP, forbidden.URL, secret.New(good.Key))
	assert.EqualError(t, err, "GET /key: 403 Forbidden: blocked by policy")
	assert.False(t, IsKeyRejected(err))
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openrouter.WriteError(w, http.StatusBadGateway, "provider down")
	}))
	defer broken.Close()
	_, err = CheckKey(ctx, testHTTP, broken.URL, secret.New(good.Key))
	assert.EqualError(t, err, "GET /key: 502 Bad Gateway: provider down")
	assert.False(t, IsKeyRejected(err))
	broken.Close()
	_, err = CheckKey(ctx, testHTTP, broken.URL, secret.New(good.Key))
	require.Error(t, err)
	assert.False(t, IsKeyRejected(err))
	assert.NotContains(t, err.Error(), good.Key)

	// A hanging server is given up on within the call's bound or the
	// caller's context, whichever is first.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = CheckKey(short, &http.Client{Timeout: 5 * time.Second}, hang.URL, secret.New(good.Key))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// Neither the PKCE code and verifier nor a key follows a redirect to
// another server: Go's client would resend a 307/308 body and keep
// Authorization for another port of the same host.
func TestOpenRouterCallsRefuseRedirects(t *testing.T) {
	const code, verifier = "code-0123456789abcdef", "verifier-0123456789abcdef0123456789abcdef"
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			upstream, elsewhere, got := testkit.RedirectingUpstream(t, status)
			host := strings.TrimPrefix(elsewhere.URL, "http://")

			_, err := ExchangePKCE(testCtx(t), testHTTP, upstream, secret.New(code), secret.New(verifier))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "OpenRouter answered with a redirect ("+strconv.Itoa(status))
			assert.Contains(t, err.Error(), `to "`+host+`"`)
			assert.Contains(t, err.Error(), "orproxy does not follow it")
			assert.Contains(t, err.Error(), "check `upstream`")
			assert.NotContains(t, err.Error(), code)
			assert.NotContains(t, err.Error(), verifier)

			_, err = CheckKey(testCtx(t), testHTTP, upstream, secret.New(testKey))
			require.Error(t, err)
			assert.False(t, IsKeyRejected(err), "not a verdict on the key")
			assert.Contains(t, err.Error(), `redirect (`+strconv.Itoa(status))
			assert.Contains(t, err.Error(), `to "`+host+`"`)
			assert.NotContains(t, err.Error(), testKey)
			// A nil client is the default one, which must not follow either.
			_, err = CheckKey(testCtx(t), nil, upstream, secret.New(testKey))
			assert.ErrorContains(t, err, "orproxy does not follow it")

			assert.Empty(t, got(), "nothing reached the other server")
		})
	}
}
