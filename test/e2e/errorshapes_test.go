package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// TestErrorShapes sends OpenRouter's error answers through the orproxy
// binary: each must reach the client as OpenRouter sent it, at once, and
// none may rotate the key.
func TestErrorShapes(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	api := s.proxyURL + "/api/v1"
	key := s.storedKey()
	const chat = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	const stream = `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	post := func(ctx context.Context, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer dummy")
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	setFault := func(f openrouter.Fault) {
		t.Helper()
		require.NoError(t, s.openrouter.SetFault(s.ctx(), f))
	}

	// A burst of 429s.
	{
		from := len(s.chatRequests())
		setFault(openrouter.Fault{Status: http.StatusTooManyRequests, StatusTimes: 3, RetryAfter: 5})
		for i := range 3 {
			resp := post(s.ctx(), chat)
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "request %d", i)
			assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.EqualValues(t, 429, gjson.GetBytes(body, "error.code").Int())
			for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
				assert.NotEmpty(t, resp.Header.Get(name), name)
				assert.Equal(t, resp.Header.Get(name), gjson.GetBytes(body, "error.metadata.headers."+name).String(),
					"%s: the header and the body OpenRouter sent, unchanged", name)
			}
		}
		resp := post(s.ctx(), chat)
		require.Equal(t, http.StatusOK, resp.StatusCode, "served again after the burst")

		reqs := s.chatRequests()[from:]
		require.Len(t, reqs, 4, "each request went upstream once: no retry")
		for _, r := range reqs {
			assert.Equal(t, "Bearer "+key, r.Header.Get("Authorization"))
		}
		assert.Equal(t, key, s.storedKey(), "the key was not rotated")
		stats, err := s.broker.Stats(s.ctx())
		require.NoError(t, err)
		assert.Zero(t, stats.RotateCalls)
		assert.EqualValues(t, 3, gjson.Get(curl(t, s.proxyURL+"/status"), "requests.rate_limited").Int())
	}

	// 502 and 503 keep OpenRouter's body.
	{
		for _, status := range []int{http.StatusBadGateway, http.StatusServiceUnavailable} {
			setFault(openrouter.Fault{Status: status, RetryAfter: 4})
			resp := post(s.ctx(), chat)
			require.Equal(t, status, resp.StatusCode)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.EqualValues(t, status, gjson.GetBytes(body, "error.code").Int())
			assert.Equal(t, "user_fake", gjson.GetBytes(body, "user_id").String(), "OpenRouter's body: %s", body)
			assert.NotContains(t, string(body), "orproxy")
			if status == http.StatusServiceUnavailable {
				assert.Equal(t, "4", resp.Header.Get("Retry-After"))
			}
		}
	}

	// Comments and a mid-stream error arrive one by one.
	{
		setFault(openrouter.Fault{Stepped: true, KeepAlives: 2, KeepAlivesBetween: 1, ErrorMidStream: 2})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp := post(ctx, stream)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var kinds strings.Builder
		for !strings.HasSuffix(kinds.String(), "E") {
			// The fake sends a piece only on a step, so each piece the client
			// reads here was passed on before the next one existed.
			piece, err := s.openrouter.Step(ctx)
			require.NoError(t, err, "after %q", kinds.String())
			got := make([]byte, len(piece))
			_, err = io.ReadFull(resp.Body, got)
			require.NoError(t, err, "the client never got %q", piece)
			require.Equal(t, piece, string(got))
			switch {
			case piece == ": OPENROUTER PROCESSING\n\n":
				kinds.WriteByte(':')
			case strings.Contains(piece, `"finish_reason":"error"`):
				var ev struct {
					Error struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(piece, "data: "))), &ev))
				assert.Equal(t, 502, ev.Error.Code)
				assert.NotEmpty(t, ev.Error.Message)
				kinds.WriteByte('E')
			default:
				kinds.WriteByte('e')
			}
		}
		assert.Equal(t, "::e:e:E", kinds.String())
		rest, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Empty(t, rest, "the stream ends after the error event, as OpenRouter's does")
	}

	// An answer cut mid-body is broken for curl too.
	{
		setFault(openrouter.Fault{CutAfterBytes: 60})
		// curl exits 18 for a body shorter than promised or a chunked body
		// without its last chunk, 52 for a connection closed before any answer.
		curlCut := func(body string) (string, int) {
			out, errOut, err := run(t, nil, "", "curl", "-sS", "-N", "--max-time", "30", api+"/chat/completions",
				"-H", "Content-Type: application/json", "-d", body)
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "curl must fail, got %v: %q %s", err, out, errOut)
			return out, exit.ExitCode()
		}
		out, code := curlCut(stream)
		assert.Equal(t, 18, code, "a stream that never ended: %q", out)
		assert.True(t, strings.HasPrefix(out, ": OPENROUTER PROCESSING\n\n"), "%q", out)
		assert.NotContains(t, out, "[DONE]")

		out, code = curlCut(chat)
		t.Logf("curl exited %d on the cut JSON answer", code)
		assert.Contains(t, []int{18, 52}, code, "never a clean end: %q", out)
		assert.False(t, gjson.Valid(out), "no whole answer: %q", out)
	}

	setFault(openrouter.Fault{})
	resp := post(s.ctx(), chat)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the daemon serves on after all of it")
	assert.NotContains(t, s.proxy.Output(), key, "no key reaches the log")
}
