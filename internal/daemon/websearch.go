package daemon

import (
	"net/http"
	"strings"

	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/proxy"
	"github.com/orproxy/orproxy/websearch"
)

// OptOutHeader turns the web search tool off for one request.
const OptOutHeader = "X-Orproxy-Web-Search"

// webSearchPatcher adapts the websearch Injector to the proxy's BodyPatcher,
// so neither package needs to know the other.
type webSearchPatcher struct{ in *websearch.Injector }

func (p webSearchPatcher) Patch(r *http.Request, upstreamPath string, body []byte) ([]byte, proxy.PatchInfo) {
	out, d := p.in.Patch(websearch.Request{
		Method:          r.Method,
		Path:            upstreamPath,
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
		OptOut:          optOut(r.Header.Get(OptOutHeader)),
	}, body)
	return out, proxy.PatchInfo{Patched: d.Patched, Model: d.Model, Stream: d.Stream}
}

func (p webSearchPatcher) ToolRejected(model string, status int, body []byte) bool {
	return p.in.ToolRejected(model, status, body)
}

func (p webSearchPatcher) Status() statusdoc.WebSearch { return p.in.Status() }

func optOut(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "false", "no":
		return true
	}
	return false
}
