package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orproxy/orproxy/internal/fake/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a fake like the process would and returns the URL it printed.
func start(t *testing.T, ctx context.Context, args ...string) (string, <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return strings.TrimSpace(line), done
}

func TestBrokerProcessAgainstOpenRouterProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orURL, orDone := start(t, ctx, "openrouter")
	require.True(t, strings.HasSuffix(orURL, "/api/v1"), orURL)
	brokerURL, brokerDone := start(t, ctx, "broker", "--openrouter-admin", orURL, "--naive-append", "--key-ttl", "1h",
		"--start-header", "X-Device: d1")

	client := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodGet, brokerURL+"/auth/openrouter/start?return_to="+
		url.QueryEscape("http://127.0.0.1:9/callback?state=s"), nil)
	require.NoError(t, err)
	req.Header.Set("X-Device", "d1")
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.Contains(t, loc, "?state=s?code=", "naive append")
	code := loc[strings.Index(loc, "code=")+5:]

	resp, err = client.Post(brokerURL+"/auth/openrouter/credential", "application/json", strings.NewReader(`{"code":"`+code+`"}`))
	require.NoError(t, err)
	var answer struct {
		Key     string `json:"openrouter_api_key"`
		Expires string `json:"openrouter_key_expires_at"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	exp, err := time.Parse(time.RFC3339, answer.Expires)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)

	keyOK := func(key string) int {
		req, err := http.NewRequest(http.MethodGet, orURL+"/key", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, keyOK(answer.Key), "the broker minted the key at the OpenRouter process")

	admin := &broker.AdminClient{BaseURL: brokerURL}
	_, err = admin.RevokeCurrentKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, keyOK(answer.Key))
	st, err := admin.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.ExchangeCalls)

	cancel()
	require.NoError(t, <-brokerDone)
	require.NoError(t, <-orDone)
}

func TestBrokerExactReturnTo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orURL, orDone := start(t, ctx, "openrouter")
	brokerURL, brokerDone := start(t, ctx, "broker", "--openrouter-admin", orURL, "--exact-return-to")
	client := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status := func(returnTo string) int {
		resp, err := client.Get(brokerURL + "/auth/openrouter/start?return_to=" + url.QueryEscape(returnTo))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, status("http://127.0.0.1:9/callback?state=s"))
	assert.Equal(t, http.StatusFound, status("http://127.0.0.1:9/callback"))
	cancel()
	require.NoError(t, <-brokerDone)
	require.NoError(t, <-orDone)
}

func TestBadArguments(t *testing.T) {
	ctx := context.Background()
	assert.Error(t, run(ctx, nil, io.Discard))
	assert.ErrorContains(t, run(ctx, []string{"nope"}, io.Discard), "unknown fake")
	assert.ErrorContains(t, run(ctx, []string{"broker"}, io.Discard), "--openrouter-admin is required")
	assert.ErrorContains(t, run(ctx, []string{"broker", "--openrouter-admin", "http://127.0.0.1:1", "--listen", "0.0.0.0:0"}, io.Discard), "loopback only")
	assert.ErrorContains(t, run(ctx, []string{"broker", "--openrouter-admin", "http://127.0.0.1:1", "--start-header", "nocolon"}, io.Discard), "start header")
}

// --help is an answer, not an error, for the program and each fake.
func TestHelp(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"openrouter", "--help"}, {"broker", "--help"}, {"broker", "-h"}} {
		var out strings.Builder
		require.NoError(t, run(ctx, args, &out), "%v", args)
		assert.Contains(t, out.String(), "orproxy-fake", "%v", args)
	}
	var out strings.Builder
	require.NoError(t, run(ctx, []string{"broker", "--help"}, &out))
	assert.Contains(t, out.String(), "-openrouter-admin")
	assert.Contains(t, out.String(), "-start-header")
	out.Reset()
	require.NoError(t, run(ctx, []string{"openrouter", "--help"}, &out))
	assert.Contains(t, out.String(), "-chunk-delay")
	// A wrong flag is still an error, and says which.
	assert.ErrorContains(t, run(ctx, []string{"broker", "--nope"}, io.Discard), "flag provided but not defined: -nope")
}
