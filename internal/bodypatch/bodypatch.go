// Package bodypatch is what the proxy and a body patcher (the web search
// tool) agree on, so that neither imports the other: what a patch learned
// about a body, which bodies are JSON, and the header a client turns the
// patch off with.
package bodypatch

import "strings"

// Info is what a patcher learned from a request body.
type Info struct {
	// Patched is true when the body to send is not the client's: it carries
	// the patch.
	Patched bool
	// Scanned is true when the patcher read the body as a JSON object; Model
	// and Stream are then what the body holds, and nobody reads it again
	// for them.
	Scanned bool
	// Model is the top-level "model" string; "" when there is none.
	Model string
	// Stream is true when the body has "stream": true.
	Stream bool
}

// ControlHeaderPrefix starts the headers that are orproxy's own. The proxy
// never sends them upstream; whoever reads one does so before forwarding.
const ControlHeaderPrefix = "X-Orproxy-"

// OptOutHeader, set to off (or 0, false, no), sends one request without the
// web search tool. The patcher reads it; the proxy strips it with the other
// control headers.
const OptOutHeader = ControlHeaderPrefix + "Web-Search"

// IsJSON is the one rule for which request bodies are read as JSON, by the
// patch and for the log line alike. It accepts an empty Content-Type (some
// SDKs omit it), application/json and any +json type, with any parameters
// and in any case, and application/x-www-form-urlencoded, which curl -d
// sends unless told otherwise: OpenRouter reads those bodies as JSON all the
// same. Whether the body really is JSON is for the scan to find out.
//
// It allocates nothing: it runs for every request.
func IsJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/json") ||
		strings.EqualFold(mt, "application/x-www-form-urlencoded") ||
		(len(mt) > len("+json") && strings.EqualFold(mt[len(mt)-len("+json"):], "+json") && strings.Contains(mt, "/"))
}
