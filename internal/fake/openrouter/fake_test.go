package openrouter

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
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
)

var testClient = &http.Client{Timeout: 10 * time.Second}

func post(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestChatAuthAndRevocation(t *testing.T) {
	fake := New(Options{Keys: []string{"sk-or-v1-good"}})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	chat := srv.URL + "/api/v1/chat/completions"
	body := `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	resp := post(t, chat, "", body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	data, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"error":{"code":401,"message":"Missing Authentication header"}}`, string(data))

	resp = post(t, chat, "sk-or-v1-good", body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	assert.Equal(t, DefaultReply, out.Choices[0].Message.Content)

	require.True(t, fake.Revoke("sk-or-v1-good"))
	resp = post(t, chat, "sk-or-v1-good", body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	reqs := fake.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, body, string(reqs[1].Body))
	assert.Equal(t, "Bearer sk-or-v1-good", reqs[1].Header.Get("Authorization"))
	assert.Equal(t, 3, fake.Count("/api/v1/chat/completions"))
}

func TestChatStreamsEventsApart(t *testing.T) {
	fake := New(Options{Keys: []string{"k"}, ChunkDelay: 30 * time.Millisecond})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	resp := post(t, srv.URL+"/api/v1/chat/completions", "k", `{"stream":true,"messages":[],"tools":[{"type":"openrouter:web_search"}]}`)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	var times []time.Time
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
			times = append(times, time.Now())
		}
	}
	require.NoError(t, sc.Err())
	assert.Equal(t, ": OPENROUTER PROCESSING", lines[0])
	assert.Equal(t, "data: [DONE]", lines[len(lines)-1])
	assert.Contains(t, strings.Join(lines, "\n"), `"url_citation"`)
	assert.GreaterOrEqual(t, times[len(times)-1].Sub(times[0]), 150*time.Millisecond, "events must be spread over time")
}

func TestPKCE(t *testing.T) {
	fake := New(Options{})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	verifier := "a-verifier-of-enough-length-0123456789abcdefghijkl"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authURL := srv.URL + "/auth?" + url.Values{
		"callback_url":          {"http://127.0.0.1:9999/callback?state=xyz"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}.Encode()
	resp, err := noRedirect.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "xyz", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)

	exchange := func(code, verifier string) *http.Response {
		b, _ := json.Marshal(map[string]string{"code": code, "code_verifier": verifier, "code_challenge_method": "S256"})
		return post(t, srv.URL+"/api/v1/auth/keys", "", string(b))
	}
	assert.Equal(t, http.StatusForbidden, exchange(code, "wrong-verifier").StatusCode)
	assert.Equal(t, http.StatusForbidden, exchange(code, verifier).StatusCode, "a code is single use, even after a failed try")

	resp, err = noRedirect.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	loc, _ = url.Parse(resp.Header.Get("Location"))
	ok := exchange(loc.Query().Get("code"), verifier)
	require.Equal(t, http.StatusOK, ok.StatusCode)
	var out struct{ Key string }
	require.NoError(t, json.NewDecoder(ok.Body).Decode(&out))
	assert.True(t, strings.HasPrefix(out.Key, "sk-or-v1-"))
	assert.Equal(t, http.StatusOK, post(t, srv.URL+"/api/v1/chat/completions", out.Key, `{"messages":[]}`).StatusCode)
}

func TestAdminClient(t *testing.T) {
	fake := New(Options{})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	ctx := context.Background()
	admin := &AdminClient{BaseURL: srv.URL}
	info, err := admin.IssueKey(ctx, "label", nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, post(t, srv.URL+"/api/v1/chat/completions", info.Key, `{"messages":[]}`).StatusCode)
	require.NoError(t, admin.SetFault(ctx, Fault{Status: http.StatusTooManyRequests}))
	assert.Equal(t, http.StatusTooManyRequests, post(t, srv.URL+"/api/v1/chat/completions", info.Key, `{"messages":[]}`).StatusCode)
	require.NoError(t, admin.Revoke(ctx, info.Key))
	assert.Equal(t, http.StatusUnauthorized, post(t, srv.URL+"/api/v1/chat/completions", info.Key, `{"messages":[]}`).StatusCode)
	reqs, err := admin.Requests(ctx)
	require.NoError(t, err)
	assert.Len(t, reqs, 3)
	assert.Error(t, admin.Revoke(ctx, "sk-or-v1-unknown"))
}
