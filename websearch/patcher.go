package websearch

import (
	"net/http"
	"strings"

	"github.com/orproxy/orproxy/internal/bodypatch"
)

// PatchRequest is Patch for the proxy: the Injector is the proxy's
// BodyPatcher. It reads what the patch needs from r, the client's opt-out
// header included (the proxy strips it afterwards with the other control
// headers), and reports what the body told, so the proxy reads it no more.
// upstreamPath is r's path below /api/v1 or /v1.
func (in *Injector) PatchRequest(r *http.Request, upstreamPath string, body []byte) ([]byte, bodypatch.Info) {
	out, d := in.Patch(Request{
		Method:          r.Method,
		Path:            upstreamPath,
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
		OptOut:          optedOut(r.Header.Get(bodypatch.OptOutHeader)),
	}, body)
	return out, bodypatch.Info{Patched: d.Patched, Scanned: d.Scanned, Model: d.Model, Stream: d.Stream}
}

// optedOut reads the opt-out header's value: off, 0, false or no, in any case.
func optedOut(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "false", "no":
		return true
	}
	return false
}
