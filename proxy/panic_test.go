package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/bodypatch"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// panicPatcher fails the way a bug in the web search patch would.
type panicPatcher struct{}

func (panicPatcher) PatchRequest(*http.Request, string, []byte) ([]byte, bodypatch.Info) {
	var tools []string
	_ = tools[3] // index out of range, as a real bug would
	return nil, bodypatch.Info{}
}
func (panicPatcher) ToolRejected(string, int, []byte) bool { return false }
func (panicPatcher) Status() statusdoc.WebSearch           { return statusdoc.WebSearch{} }

// panicAfter yields its data, then panics on the next read: a bug that hits
// once the answer's headers are on their way to the client.
type panicAfter struct{ data io.Reader }

func (p *panicAfter) Read(b []byte) (int, error) {
	if n, _ := p.data.Read(b); n > 0 {
		return n, nil
	}
	panic("bug while copying the answer")
}
func (p *panicAfter) Close() error { return nil }

// panicEntry is the single error-level entry about the panic, with its stack.
func panicEntry(t *testing.T, logs *observer.ObservedLogs) observer.LoggedEntry {
	t.Helper()
	entries := logs.FilterMessageSnippet("panic").All()
	require.Len(t, entries, 1, "one log entry for the panic")
	e := entries[0]
	assert.Equal(t, zapcore.ErrorLevel, e.Level)
	assert.Contains(t, e.Message, "orproxy bug")
	return e
}

// A panic before anything was sent answers 500 in OpenRouter's error shape,
// is logged at error level with its stack, and the daemon keeps serving.
func TestPanicBeforeAnswerIs500AndLogged(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Patcher = panicPatcher{} })
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"Content-Type": "application/json"})

	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, body)
	assert.Contains(t, body, `"error":{"code":500`)
	assert.Contains(t, body, "bug in orproxy")
	assert.Contains(t, body, "please report it")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.True(t, resp.Close, "a half-handled request leaves no connection to reuse")
	assert.Empty(t, h.fake.Requests(), "nothing went upstream")

	f := panicEntry(t, h.logs).ContextMap()
	assert.Contains(t, f["panic"], "index out of range")
	assert.Contains(t, f["stack"], "panicPatcher.Patch", "the stack shows where it panicked")
	assert.Equal(t, "/api/v1/chat/completions", f["path"])
	req := h.logs.FilterMessage("request").All()
	require.Len(t, req, 1)
	assert.EqualValues(t, 500, req[0].ContextMap()["status"])

	resp, body = h.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// A panic after the headers went out cannot become a 500: the connection is
// aborted, so the client sees a broken answer rather than a whole one, and
// the panic is logged at error level with its stack.
func TestPanicAfterHeadersAbortsAndIsLogged(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"Content-Type": {"text/event-stream"}},
				Body:       &panicAfter{data: strings.NewReader("data: {\"choices\":[]}\n\n")},
				Request:    r,
			}, nil
		})
	})
	resp, err := client.Post(h.proxy.URL+"/api/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Error(t, err, "the aborted answer must not look complete")
	assert.Contains(t, string(data), "data: {", "what was sent before the panic arrived")

	f := panicEntry(t, h.logs).ContextMap()
	assert.Equal(t, "bug while copying the answer", f["panic"])
	assert.Contains(t, f["stack"], "panicAfter).Read")

	resp2, body := h.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, resp2.StatusCode, body)
}
