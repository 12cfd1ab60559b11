package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// Fault tests: the upstream or the client misbehaves, and the proxy must end
// the request cleanly, say so once in the log, leak nothing and keep serving.

const streamBody = `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// leakFree builds a harness whose goroutines at the end of the test are
// checked against those running once it is up, and returns a client of its
// own, so idle connections of other tests do not count.
func leakFree(t *testing.T, fakeOpts openrouter.Options, opts ...harnessOption) (*harness, *http.Client, func()) {
	t.Helper()
	tr := testTransport(t)
	h := newHarness(t, fakeOpts, append(opts, func(o *Options) { o.Transport = tr })...)
	ct := &http.Transport{}
	c := &http.Client{Timeout: 10 * time.Second, Transport: ct}
	ignore := goleak.IgnoreCurrent()
	verify := func() {
		t.Helper()
		ct.CloseIdleConnections()
		tr.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	}
	return h, c, verify
}

func postStream(ctx context.Context, c *http.Client, base string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/chat/completions", strings.NewReader(streamBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.Do(req)
}

// infoLines are the log entries a daemon at its default level writes.
func infoLines(logs *observer.ObservedLogs) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.InfoLevel }).All()
}

func TestUpstreamClosesMidStream(t *testing.T) {
	h, c, verifyNoLeak := leakFree(t, openrouter.Options{Reply: "one two three four five six", ChunkDelay: 5 * time.Millisecond})
	h.fake.SetFault(openrouter.Fault{CloseMidStream: 3})

	resp, err := postStream(context.Background(), c, h.proxy.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the headers had gone out before the break")
	start := time.Now()
	data, err := io.ReadAll(resp.Body) // bounded by the client's timeout
	resp.Body.Close()
	require.Error(t, err, "a broken stream must not look complete")
	assert.Less(t, time.Since(start), 5*time.Second, "the client's stream ended instead of hanging")
	assert.Contains(t, string(data), `"content":"one "`, "events before the break arrived")
	assert.NotContains(t, string(data), "[DONE]")

	// Exactly one line for it, the request line, which says what happened.
	require.Eventually(t, func() bool { return len(infoLines(h.logs)) > 0 }, 2*time.Second, 5*time.Millisecond)
	lines := infoLines(h.logs)
	require.Len(t, lines, 1, "log: %v", lines)
	assert.Equal(t, "request", lines[0].Message)
	f := lines[0].ContextMap()
	assert.Equal(t, "the upstream stream broke off", f["problem"])
	assert.EqualValues(t, 200, f["status"])
	assert.Equal(t, true, f["stream"])

	// The next request works.
	h.fake.SetFault(openrouter.Fault{})
	resp, err = postStream(context.Background(), c, h.proxy.URL)
	require.NoError(t, err)
	data, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(data), "data: [DONE]\n\n"))
	verifyNoLeak()
}

func TestClientHangupMidStreamLeavesNothing(t *testing.T) {
	h, c, verifyNoLeak := leakFree(t, openrouter.Options{ChunkDelay: 400 * time.Millisecond, Reply: strings.Repeat("word ", 20)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := postStream(ctx, c, h.proxy.URL)
	require.NoError(t, err)
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	hungUp := time.Now()
	cancel()
	resp.Body.Close()

	var canceledAt time.Time
	require.Eventually(t, func() bool {
		reqs := h.fake.Requests()
		canceledAt = reqs[len(reqs)-1].Canceled
		return !canceledAt.IsZero()
	}, 2*time.Second, 5*time.Millisecond, "the fake never saw the cancellation")
	assert.Less(t, canceledAt.Sub(hungUp), 200*time.Millisecond)

	// A hang-up is the client's doing: a 499 at debug, nothing at info.
	require.Eventually(t, func() bool { return h.logs.FilterMessage("request").Len() == 1 }, 2*time.Second, 5*time.Millisecond)
	entry := h.logs.FilterMessage("request").All()[0]
	assert.Equal(t, zapcore.DebugLevel, entry.Level)
	assert.EqualValues(t, 499, entry.ContextMap()["status"])
	assert.Empty(t, infoLines(h.logs))
	verifyNoLeak()
}

func TestHeaderTimeoutReleasesTheUpstreamRequest(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h, c, verifyNoLeak := leakFree(t, openrouter.Options{}, func(o *Options) { o.HeaderTimeout = timeout })
	h.fake.SetFault(openrouter.Fault{HangBeforeHeaders: true})

	start := time.Now()
	resp, err := c.Post(h.proxy.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Contains(t, string(body), `"code":504`)
	assert.GreaterOrEqual(t, elapsed, timeout, "not before the configured timeout")
	assert.Less(t, elapsed, timeout+2*time.Second)
	require.Eventually(t, func() bool { return !h.fake.Requests()[0].Canceled.IsZero() }, 2*time.Second, 5*time.Millisecond,
		"the upstream request is abandoned, not left hanging")

	// A completion slower than a short header delay but within the timeout works.
	h.fake.SetFault(openrouter.Fault{HeaderDelay: timeout / 4})
	resp, err = c.Post(h.proxy.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), openrouter.DefaultReply)
	verifyNoLeak()
}

// TestReadmeStatesTheHeaderTimeout keeps the README's account of the 504 in
// step with the default, since users read it to understand a 504.
func TestReadmeStatesTheHeaderTimeout(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Zero(t, defaultHeaderTimeout%time.Minute, "the README speaks in minutes")
	want := fmt.Sprintf("504\nwhen it sends no response headers within %d minutes", int(defaultHeaderTimeout.Minutes()))
	assert.Contains(t, strings.Join(strings.Fields(string(readme)), " "), strings.Join(strings.Fields(want), " "))
}
