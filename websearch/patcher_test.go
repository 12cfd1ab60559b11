package websearch

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/bodypatch"
)

// PatchRequest reads the request as the proxy hands it over: headers, the
// opt-out, and reports what the body told in the proxy's terms.
func TestPatchRequest(t *testing.T) {
	const chat = `{"model":"m","messages":[],"stream":true}`
	tests := []struct {
		name   string
		method string
		target string // the client's URL; "" = /api/v1 + path
		path   string
		header map[string]string
		body   string
		want   bodypatch.Info
	}{
		{name: "patched", path: "/chat/completions", body: chat, want: bodypatch.Info{Patched: true, Scanned: true, Model: "m", Stream: true}},
		{name: "opt-out", path: "/chat/completions", header: map[string]string{bodypatch.OptOutHeader: "off"}, body: chat, want: bodypatch.Info{Scanned: true, Model: "m", Stream: true}},
		{name: "opt-out in other words", path: "/chat/completions", header: map[string]string{"x-orproxy-web-search": " FALSE "}, body: chat, want: bodypatch.Info{Scanned: true, Model: "m", Stream: true}},
		{name: "opt-out header saying on", path: "/chat/completions", header: map[string]string{bodypatch.OptOutHeader: "on"}, body: chat, want: bodypatch.Info{Patched: true, Scanned: true, Model: "m", Stream: true}},
		{name: "messages with Claude Code's query", target: "/v1/messages?beta=true", path: "/messages", header: map[string]string{"anthropic-version": "2023-06-01"}, body: `{"model":"m","messages":[],"stream":true}`, want: bodypatch.Info{Patched: true, Scanned: true, Model: "m", Stream: true}},
		{name: "messages opt-out", target: "/v1/messages?beta=true", path: "/messages", header: map[string]string{bodypatch.OptOutHeader: "off"}, body: `{"model":"m","messages":[]}`, want: bodypatch.Info{Scanned: true, Model: "m"}},
		{name: "count_tokens is not patched", target: "/v1/messages/count_tokens?beta=true", path: "/messages/count_tokens", body: `{"model":"m","messages":[]}`, want: bodypatch.Info{}},
		{name: "gzip body is not read", path: "/chat/completions", header: map[string]string{"Content-Encoding": "gzip"}, body: chat, want: bodypatch.Info{}},
		{name: "not a chat path: left to the proxy to read", path: "/embeddings", body: `{"model":"e","input":"x"}`, want: bodypatch.Info{}},
		{name: "not JSON", path: "/chat/completions", header: map[string]string{"Content-Type": "text/plain"}, body: chat, want: bodypatch.Info{}},
		{name: "invalid JSON", path: "/chat/completions", body: `{"model":"m",`, want: bodypatch.Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newTestInjector(t, testSettings())
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			target := tt.target
			if target == "" {
				target = "/api/v1" + tt.path
			}
			r := httptest.NewRequest(method, target, strings.NewReader(tt.body))
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			out, info := in.PatchRequest(r, tt.path, []byte(tt.body))
			assert.Equal(t, tt.want, info)
			if !info.Patched {
				assert.Equal(t, tt.body, string(out))
			} else {
				assert.Contains(t, string(out), "openrouter:web_search")
			}
		})
	}
}
