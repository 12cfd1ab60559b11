package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/bodypatch"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// alwaysPatch appends a marker and never blames it for an error.
type alwaysPatch struct{}

func (alwaysPatch) PatchRequest(_ *http.Request, _ string, body []byte) ([]byte, bodypatch.Info) {
	return append(append([]byte{}, body...), " "...), bodypatch.Info{Patched: true, Scanned: true, Model: "m"}
}
func (alwaysPatch) ToolRejected(string, int, []byte) bool { return false }
func (alwaysPatch) Status() statusdoc.WebSearch           { return statusdoc.WebSearch{} }

// An error answer orproxy reads to decide what to do, and then passes on,
// reaches the client whole, however long it is.
func TestLongErrorAnswerPassedOnWhole(t *testing.T) {
	long := `{"error":{"code":400,"message":"` + strings.Repeat("x", 3*maxErrorBody) + `"}}`
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, long)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL + "/api/v1")
	h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Upstream, o.Patcher = u, alwaysPatch{} })
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", `{"model":"m","messages":[]}`, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, long, body)
}

// A body the client framed wrongly is refused with a reason, not answered
// with an empty 200.
func TestUnreadableBodyIs400(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	addr := strings.TrimPrefix(h.proxy.URL, "http://")
	status, body := rawRequest(t, addr, "POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	require.Equal(t, http.StatusBadRequest, status, body)
	assert.Contains(t, body, "the request body could not be read")
	assert.Empty(t, h.fake.Requests(), "nothing went upstream")
}
