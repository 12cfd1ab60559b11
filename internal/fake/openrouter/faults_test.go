package openrouter

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	faultKey   = "sk-or-v1-faults"
	chatJSON   = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	chatStream = `{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
)

func faultServer(t *testing.T, opts Options, f Fault) (*Server, string) {
	t.Helper()
	opts.Keys = []string{faultKey}
	fake := New(opts)
	fake.SetFault(f)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/api/v1/chat/completions"
}

// errorJSON is OpenRouter's error body, as far as these tests read it.
type errorJSON struct {
	Error struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		Metadata struct {
			Headers      map[string]string `json:"headers"`
			ErrorType    string            `json:"error_type"`
			ProviderName *string           `json:"provider_name"`
		} `json:"metadata"`
		Availability *struct {
			Code            string   `json:"code"`
			Retryable       bool     `json:"retryable"`
			RetryAfter      int      `json:"retry_after"`
			RequestedModels []string `json:"requested_models"`
		} `json:"availability"`
	} `json:"error"`
	UserID string `json:"user_id"`
}

func TestStatusFaultsInOpenRoutersShape(t *testing.T) {
	t.Run("429 from the rate limiter", func(t *testing.T) {
		for _, retryAfter := range []int{0, 7} {
			_, chat := faultServer(t, Options{}, Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter})
			before := time.Now()
			resp := post(t, chat, faultKey, chatJSON)
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			wantRetry := max(retryAfter, 1)
			assert.Equal(t, strconv.Itoa(wantRetry), resp.Header.Get("Retry-After"))
			assert.Equal(t, "20", resp.Header.Get("X-RateLimit-Limit"))
			assert.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
			reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
			require.NoError(t, err, "X-RateLimit-Reset is Unix milliseconds")
			assert.GreaterOrEqual(t, reset, before.Add(time.Duration(wantRetry)*time.Second).UnixMilli())
			assert.LessOrEqual(t, reset, time.Now().Add(time.Duration(wantRetry)*time.Second).UnixMilli())

			var body errorJSON
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, 429, body.Error.Code)
			assert.Contains(t, body.Error.Message, "Rate limit exceeded")
			assert.Equal(t, "rate_limit_exceeded", body.Error.Metadata.ErrorType)
			assert.Equal(t, map[string]string{
				"X-RateLimit-Limit":     resp.Header.Get("X-RateLimit-Limit"),
				"X-RateLimit-Remaining": resp.Header.Get("X-RateLimit-Remaining"),
				"X-RateLimit-Reset":     resp.Header.Get("X-RateLimit-Reset"),
			}, body.Error.Metadata.Headers, "the body repeats the headers")
			assert.NotEmpty(t, body.UserID)
		}
	})
	t.Run("502 provider failure", func(t *testing.T) {
		_, chat := faultServer(t, Options{}, Fault{Status: http.StatusBadGateway})
		resp := post(t, chat, faultKey, chatJSON)
		require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var body errorJSON
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		assert.Equal(t, 502, body.Error.Code)
		assert.Equal(t, "Provider returned error", body.Error.Message)
		assert.Equal(t, "provider_unavailable", body.Error.Metadata.ErrorType)
		require.NotNil(t, body.Error.Metadata.ProviderName)
		assert.Equal(t, "FakeProvider", *body.Error.Metadata.ProviderName)
	})
	t.Run("503 with and without Retry-After", func(t *testing.T) {
		for _, retryAfter := range []int{0, 30} {
			_, chat := faultServer(t, Options{}, Fault{Status: http.StatusServiceUnavailable, RetryAfter: retryAfter})
			resp := post(t, chat, faultKey, chatJSON)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			var body errorJSON
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, 503, body.Error.Code)
			require.NotNil(t, body.Error.Availability)
			assert.Equal(t, "temporarily_unavailable", body.Error.Availability.Code)
			assert.True(t, body.Error.Availability.Retryable)
			assert.Equal(t, []string{"openai/gpt-4o-mini"}, body.Error.Availability.RequestedModels)
			if retryAfter == 0 {
				assert.Empty(t, resp.Header.Get("Retry-After"))
			} else {
				assert.Equal(t, "30", resp.Header.Get("Retry-After"))
				assert.Equal(t, 30, body.Error.Availability.RetryAfter)
			}
		}
	})
	t.Run("other statuses keep the plain shape", func(t *testing.T) {
		_, chat := faultServer(t, Options{}, Fault{Status: http.StatusInternalServerError})
		resp := post(t, chat, faultKey, chatJSON)
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.JSONEq(t, `{"error":{"code":500,"message":"Internal Server Error"}}`, string(data))
	})
}

func TestStatusTimesIsABurstThatEnds(t *testing.T) {
	fake, chat := faultServer(t, Options{}, Fault{Status: http.StatusTooManyRequests, StatusTimes: 3})
	var got []int
	for range 5 {
		got = append(got, post(t, chat, faultKey, chatJSON).StatusCode)
	}
	assert.Equal(t, []int{429, 429, 429, 200, 200}, got)
	assert.Zero(t, fake.currentFault().Status, "the fault cleared itself")

	// A request with a bad key is refused before the fault and uses none of it.
	fake.SetFault(Fault{Status: http.StatusTooManyRequests, StatusTimes: 1})
	assert.Equal(t, http.StatusUnauthorized, post(t, chat, "sk-or-v1-wrong", chatJSON).StatusCode)
	assert.Equal(t, http.StatusTooManyRequests, post(t, chat, faultKey, chatJSON).StatusCode)
	assert.Equal(t, http.StatusOK, post(t, chat, faultKey, chatJSON).StatusCode)
}

// sseLines reads a whole stream and returns its non-empty lines.
func sseLines(t *testing.T, resp *http.Response) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	require.NoError(t, sc.Err(), "the stream ends cleanly")
	return lines
}

func TestMidStreamErrorEvent(t *testing.T) {
	for _, code := range []int{0, 429} {
		_, chat := faultServer(t, Options{Reply: "one two three four five"}, Fault{ErrorMidStream: 2, ErrorMidStreamCode: code})
		lines := sseLines(t, post(t, chat, faultKey, chatStream))
		var data []string
		for _, l := range lines {
			if d, ok := strings.CutPrefix(l, "data: "); ok {
				data = append(data, d)
			}
		}
		require.Len(t, data, 3, "two content chunks, then the error event and nothing else: %q", lines)
		assert.NotContains(t, lines, "data: [DONE]")
		for i, d := range data[:2] {
			var ev struct {
				Choices []struct {
					Delta        struct{ Content string }
					FinishReason *string `json:"finish_reason"`
				}
			}
			require.NoError(t, json.Unmarshal([]byte(d), &ev))
			assert.Equal(t, []string{"one ", "two "}[i], ev.Choices[0].Delta.Content)
			assert.Nil(t, ev.Choices[0].FinishReason)
		}
		var ev struct {
			Object string
			Error  struct {
				Code     int
				Message  string
				Metadata struct {
					ErrorType string `json:"error_type"`
				}
			}
			Choices []struct {
				Index        int
				Delta        map[string]any
				FinishReason string `json:"finish_reason"`
			}
		}
		require.NoError(t, json.Unmarshal([]byte(data[2]), &ev))
		assert.Equal(t, "chat.completion.chunk", ev.Object)
		want := map[int]struct {
			code               int
			message, errorType string
		}{
			0:   {502, "Provider returned error", "provider_unavailable"},
			429: {429, "Rate limit exceeded", "rate_limit_exceeded"},
		}[code]
		assert.Equal(t, want.code, ev.Error.Code)
		assert.Equal(t, want.message, ev.Error.Message)
		assert.Equal(t, want.errorType, ev.Error.Metadata.ErrorType)
		require.Len(t, ev.Choices, 1)
		assert.Equal(t, "error", ev.Choices[0].FinishReason)
		assert.Equal(t, map[string]any{"content": ""}, ev.Choices[0].Delta)
	}
}

func TestKeepAliveComments(t *testing.T) {
	const comment = ": OPENROUTER PROCESSING"
	t.Run("default: one first, one halfway", func(t *testing.T) {
		_, chat := faultServer(t, Options{Reply: "a b c"}, Fault{})
		lines := sseLines(t, post(t, chat, faultKey, chatStream))
		assert.Equal(t, comment, lines[0])
		n := 0
		for _, l := range lines {
			if l == comment {
				n++
			}
		}
		assert.Equal(t, 2, n, "%q", lines)
	})
	t.Run("counts and interval", func(t *testing.T) {
		const interval = 20 * time.Millisecond
		_, chat := faultServer(t, Options{Reply: "a b c"}, Fault{KeepAlives: 3, KeepAlivesBetween: 2, KeepAliveInterval: interval})
		start := time.Now()
		lines := sseLines(t, post(t, chat, faultKey, chatStream))
		elapsed := time.Since(start)
		// Three words, the finish chunk and usage: five events, two comments
		// between each two of them, none before [DONE].
		var shape strings.Builder
		for _, l := range lines {
			switch {
			case l == comment:
				shape.WriteByte(':')
			case l == "data: [DONE]":
				shape.WriteByte('D')
			case strings.HasPrefix(l, "data: {"):
				shape.WriteByte('e')
			default:
				t.Errorf("unexpected line %q", l)
			}
		}
		assert.Equal(t, ":::e::e::e::e::eD", shape.String())
		assert.GreaterOrEqual(t, elapsed, 11*interval, "each comment waits its interval")
	})
}

func TestSteppedStreamSendsOnePieceAStep(t *testing.T) {
	fake, chat := faultServer(t, Options{Reply: "a b"}, Fault{Stepped: true, ErrorMidStream: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := fake.Step(short)
	cancelShort()
	require.ErrorIs(t, err, context.DeadlineExceeded, "no stream is waiting")

	resp := post(t, chat, faultKey, chatStream) // the headers come before any step
	require.Equal(t, http.StatusOK, resp.StatusCode)
	srv := strings.TrimSuffix(chat, "/api/v1/chat/completions")
	admin := &AdminClient{BaseURL: srv}
	var all strings.Builder
	for i := 0; ; i++ {
		step := fake.Step
		if i%2 == 1 {
			step = admin.Step // the same through the admin API
		}
		piece, err := step(ctx)
		require.NoError(t, err, "step %d", i)
		buf := make([]byte, len(piece))
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		require.Equal(t, piece, string(buf), "the client reads exactly what the step sent")
		all.WriteString(piece)
		if strings.Contains(piece, `"finish_reason":"error"`) {
			break
		}
	}
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Empty(t, rest, "nothing after the error event")
	assert.Equal(t, 3, strings.Count(all.String(), "\n\n"), "a comment, the one chunk and the error event: %q", all.String())
}

func TestCutAfterBytes(t *testing.T) {
	const cut = 40
	t.Run("JSON with Content-Length", func(t *testing.T) {
		_, chat := faultServer(t, Options{}, Fault{CutAfterBytes: cut})
		resp := post(t, chat, faultKey, chatJSON)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Greater(t, resp.ContentLength, int64(cut), "the headers promise the whole answer")
		data, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Len(t, data, cut)
	})
	t.Run("stream", func(t *testing.T) {
		_, chat := faultServer(t, Options{}, Fault{CutAfterBytes: cut})
		resp := post(t, chat, faultKey, chatStream)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, int64(-1), resp.ContentLength)
		data, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "no terminating chunk")
		assert.Len(t, data, cut)
		assert.True(t, strings.HasPrefix(string(data), ": OPENROUTER PROCESSING\n\ndata: {"), "%q", data)
	})
}
