package websearch

import (
	"bytes"
	"net/http"
	"path"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/bodypatch"
)

// Request is what the patch needs to know about an HTTP request. The proxy
// fills it in; the package never sees the *http.Request.
type Request struct {
	// Method is the HTTP method; only POST is patched.
	Method string
	// Path is the upstream-relative path, already stripped of /api/v1 or /v1
	// and cleaned: "/chat/completions" or "/responses" are patched.
	Path string
	// ContentType is the raw Content-Type header. A JSON type by
	// bodypatch.IsJSON is patched.
	ContentType string
	// ContentEncoding is the raw Content-Encoding header. Anything but empty
	// or "identity" is left alone rather than decoded.
	ContentEncoding string
	// OptOut is set when the client sent bodypatch.OptOutHeader: off.
	OptOut bool
}

// Decision is the outcome of Patch for one request.
type Decision struct {
	// Patched is true when the returned body carries the added tool.
	Patched bool
	// Reason says why the body went out unchanged; ReasonNone when Patched.
	Reason Reason
	// Scanned is true when the body was read as a JSON chat request,
	// patched or not: Model and Stream are then what it holds.
	Scanned bool
	// Model is the request's top-level "model" string, unescaped; "" when
	// absent, not a string, or the body was not scanned.
	Model string
	// Stream is true when the body has "stream": true.
	Stream bool
}

// Reason is why a request went out without the web search tool. Its String
// form is stable and serves as a counter key in Status.
type Reason uint8

// The reasons, in the order they are checked; a Decision carries the first
// that applies.
const (
	ReasonNone           Reason = iota // patched
	ReasonDisabled                     // web_search.enabled is false
	ReasonOptOut                       // the client sent X-Orproxy-Web-Search: off
	ReasonNotChat                      // not POST /chat/completions or POST /responses
	ReasonEncoded                      // the body has a Content-Encoding
	ReasonNotJSON                      // the Content-Type is not JSON
	ReasonInvalidJSON                  // the body is not one valid JSON object
	ReasonNoMessages                   // no "messages" array (chat) or "input" string or array (responses)
	ReasonDuplicateTools               // "tools" appears twice at the top level
	ReasonDuplicateKey                 // model, messages, input, plugins or models appears twice
	ReasonToolsNotArray                // "tools" is neither an array nor null
	ReasonModelsFallback               // a "models" fallback array: server tools fail with it
	ReasonOnlineModel                  // the model ends in :online, which searches already
	ReasonExcludedModel                // the model matches web_search.exclude_models
	ReasonNoToolSupport                // the model catalogue says the model takes no tools
	ReasonCooldown                     // upstream rejected the tool for this model recently
	ReasonWebPlugin                    // "plugins" holds the web plugin, which searches already
	ReasonHasWebSearch                 // a web search tool is already in "tools"
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:           "none",
	ReasonDisabled:       "disabled",
	ReasonOptOut:         "opt_out",
	ReasonNotChat:        "not_chat",
	ReasonEncoded:        "encoded",
	ReasonNotJSON:        "not_json",
	ReasonInvalidJSON:    "invalid_json",
	ReasonNoMessages:     "no_messages",
	ReasonDuplicateTools: "duplicate_tools",
	ReasonDuplicateKey:   "duplicate_key",
	ReasonToolsNotArray:  "tools_not_array",
	ReasonModelsFallback: "models_fallback",
	ReasonOnlineModel:    "online_model",
	ReasonExcludedModel:  "excluded_model",
	ReasonNoToolSupport:  "no_tool_support",
	ReasonCooldown:       "cooldown",
	ReasonWebPlugin:      "web_plugin",
	ReasonHasWebSearch:   "has_web_search",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// MarshalText gives JSON and structured logs the name, not the number.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Patch returns the body to send upstream and what was decided. A patched
// body is a new slice equal to body with the web search tool appended to
// "tools" (or a "tools" array added); every other byte is kept. Otherwise the
// returned slice is body itself. body is never modified. Patch is safe for
// concurrent use and counts its decisions in Status.
func (in *Injector) Patch(req Request, body []byte) ([]byte, Decision) {
	out, d := in.patch(req, body)
	if d.Patched {
		in.patched.Add(1)
	} else {
		in.skipped[d.Reason].Add(1)
	}
	return out, d
}

func (in *Injector) patch(req Request, body []byte) ([]byte, Decision) {
	var (
		d      Decision
		t      topLevel
		st     depthStack
		parsed bool
	)
	responses := req.Path == "/responses"
	chat := req.Method == http.MethodPost && (responses || req.Path == "/chat/completions")
	identity := isIdentity(req.ContentEncoding)
	jsonBody := bodypatch.IsJSON(req.ContentType)
	// The body is scanned even when the tool will not be added, so the proxy
	// can log model and stream for every chat request without reading it again.
	if chat && identity && jsonBody {
		if parsed = parseTop(body, &t, &st); parsed {
			d.Scanned = true
			d.Model = modelOf(body, t.model)
			d.Stream = t.stream.ok() && string(body[t.stream.start:t.stream.end]) == "true"
		}
	}
	d.Reason = in.skipReason(req, body, &t, d.Model, chat, identity, jsonBody, parsed, responses)
	if d.Reason != ReasonNone {
		return body, d
	}
	d.Patched = true
	return in.splice(body, &t), d
}

func (in *Injector) skipReason(req Request, body []byte, t *topLevel, model string, chat, identity, jsonBody, parsed, responses bool) Reason {
	switch {
	case !in.settings.Enabled:
		return ReasonDisabled
	case req.OptOut:
		return ReasonOptOut
	case !chat:
		return ReasonNotChat
	case !identity:
		return ReasonEncoded
	case !jsonBody:
		return ReasonNotJSON
	case !parsed:
		return ReasonInvalidJSON
	case !hasConversation(body, t, responses):
		return ReasonNoMessages
	case t.nTools > 1:
		return ReasonDuplicateTools
	case t.dupKey:
		return ReasonDuplicateKey
	case t.tools.ok() && body[t.tools.start] != '[' && body[t.tools.start] != 'n':
		return ReasonToolsNotArray
	case t.models.ok() && body[t.models.start] == '[':
		return ReasonModelsFallback
	case strings.HasSuffix(model, ":online"):
		return ReasonOnlineModel
	case in.excluded(model):
		return ReasonExcludedModel
	case in.noToolSupport(model):
		return ReasonNoToolSupport
	case in.inCooldown(model):
		return ReasonCooldown
	case t.plugins.ok() && hasWebPlugin(view(body, t.plugins)):
		return ReasonWebPlugin
	case t.tools.ok() && hasWebSearchTool(view(body, t.tools)):
		return ReasonHasWebSearch
	}
	return ReasonNone
}

// hasConversation checks for what makes the body a request the tool makes
// sense in: chat needs a messages array, responses an input string or array.
func hasConversation(body []byte, t *topLevel, responses bool) bool {
	if responses {
		return t.input.ok() && (body[t.input.start] == '"' || body[t.input.start] == '[')
	}
	return t.messages.ok() && body[t.messages.start] == '['
}

// splice builds the patched body: the body around one insertion (or, for
// "tools": null, one replacement), copied once into memory of the exact size.
func (in *Injector) splice(body []byte, t *topLevel) []byte {
	var at, cut int // body[:at] + insert + body[cut:]
	var insert []byte
	switch {
	case !t.tools.ok():
		// After the last member's value, so whitespace before the closing
		// brace stays where it was. hasConversation guarantees a member.
		at, cut, insert = t.lastEnd, t.lastEnd, in.toolMember
	case body[t.tools.start] == 'n':
		at, cut, insert = t.tools.start, t.tools.end, in.toolList
	default:
		// Right after the last element, or right after "[" when empty.
		j := t.tools.end - 2
		for body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r' {
			j--
		}
		at, cut, insert = j+1, j+1, in.toolNext
		if body[j] == '[' {
			insert = in.tool
		}
	}
	// bytes.Join allocates without zeroing: every byte is written anyway.
	return bytes.Join([][]byte{body[:at], insert, body[cut:]}, nil)
}

// view shows a span of the body to gjson without copying it. The string
// must not outlive the call that made it: the caller owns body.
func view(body []byte, s span) string {
	return unsafe.String(&body[s.start], s.end-s.start)
}

func modelOf(body []byte, s span) string {
	if !s.ok() || body[s.start] != '"' {
		return ""
	}
	raw := body[s.start+1 : s.end-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return gjson.Parse(view(body, s)).String() // already a copy
}

func (in *Injector) excluded(model string) bool {
	if len(in.exclude) == 0 {
		return false
	}
	model = strings.ReplaceAll(model, "/", slashStandIn)
	for _, g := range in.exclude {
		// Patterns were checked in New, so Match cannot fail here.
		if ok, _ := path.Match(g, model); ok {
			return true
		}
	}
	return false
}

// slashStandIn replaces "/" in model globs and IDs before path.Match, whose
// * and ? stop at "/": every OpenRouter ID has one, and "*:free" must match
// "meta-llama/llama-3.3-70b-instruct:free". No real model ID holds a NUL.
const slashStandIn = "\x00"

func slashless(globs []string) []string {
	out := make([]string, len(globs))
	for i, g := range globs {
		out[i] = strings.ReplaceAll(g, "/", slashStandIn)
	}
	return out
}

// hasWebSearchTool looks for a tool that already searches the web: ours, or a
// provider's that OpenRouter hoists to ours. Two would search twice and pay
// twice. Every "type" member of a tool counts, since parsers disagree on which
// of two duplicates wins.
func hasWebSearchTool(tools string) bool {
	found := false
	gjson.Parse(tools).ForEach(func(_, tool gjson.Result) bool {
		if tool.IsObject() {
			tool.ForEach(func(k, v gjson.Result) bool {
				found = k.Str == "type" && v.Type == gjson.String && isWebSearchType(v.Str)
				return !found
			})
		}
		return !found
	})
	return found
}

// isWebSearchType matches OpenRouter's server tool and the providers' own
// names: OpenAI's web_search, web_search_preview and dated variants,
// Anthropic's web_search_20250305 and later.
func isWebSearchType(s string) bool {
	return s == "openrouter:web_search" || s == "web_search" ||
		strings.HasPrefix(s, "web_search_preview") || strings.HasPrefix(s, "web_search_20")
}

// hasWebPlugin finds the deprecated {"id":"web"} plugin. With it the request
// already searches on every call, disabled or not: the client chose.
func hasWebPlugin(plugins string) bool {
	p := gjson.Parse(plugins)
	if !p.IsArray() {
		return false
	}
	found := false
	p.ForEach(func(_, plugin gjson.Result) bool {
		if plugin.IsObject() {
			plugin.ForEach(func(k, v gjson.Result) bool {
				found = k.Str == "id" && v.Type == gjson.String && v.Str == "web"
				return !found
			})
		}
		return !found
	})
	return found
}

func isIdentity(encoding string) bool {
	e := strings.TrimSpace(encoding)
	return e == "" || strings.EqualFold(e, "identity")
}
