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
	// and cleaned, without the query: "/chat/completions" and "/responses"
	// are patched, and "/messages" when Settings.Messages is on.
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
	// Scanned is true when the body was read as a JSON request to an
	// endpoint that gets the tool, patched or not: Model and Stream are
	// then what it holds.
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
	ReasonNotChat                      // not POST /chat/completions, /responses or /messages
	ReasonMessagesOff                  // POST /messages while web_search.messages is false
	ReasonEncoded                      // the body has a Content-Encoding
	ReasonNotJSON                      // the Content-Type is not JSON
	ReasonInvalidJSON                  // the body is not one valid JSON object
	ReasonNoMessages                   // no "messages" array (chat, messages) or "input" string or array (responses)
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
	ReasonMessagesOff:    "messages_off",
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

// endpoint is the API a request is for, as far as the patch cares.
type endpoint uint8

const (
	otherEndpoint     endpoint = iota
	chatEndpoint               // POST /chat/completions
	responsesEndpoint          // POST /responses
	messagesEndpoint           // POST /messages (Anthropic's API)
)

// endpointOf matches the path alone: a query such as Claude Code's
// ?beta=true on /messages is not part of Request.Path.
func endpointOf(req Request) endpoint {
	if req.Method != http.MethodPost {
		return otherEndpoint
	}
	switch req.Path {
	case "/chat/completions":
		return chatEndpoint
	case "/responses":
		return responsesEndpoint
	case "/messages":
		return messagesEndpoint
	}
	return otherEndpoint
}

func (in *Injector) patch(req Request, body []byte) ([]byte, Decision) {
	var (
		d      Decision
		t      topLevel
		st     depthStack
		parsed bool
	)
	ep := endpointOf(req)
	wanted := ep != otherEndpoint && (ep != messagesEndpoint || in.settings.Messages)
	identity := isIdentity(req.ContentEncoding)
	jsonBody := bodypatch.IsJSON(req.ContentType)
	// The body is scanned even when the tool will not be added, so the proxy
	// can log model and stream for every such request without reading it
	// again. Messages bodies with web_search.messages off are not: they
	// cost no more than before the option existed.
	if wanted && identity && jsonBody {
		if parsed = parseTop(body, &t, &st); parsed {
			d.Scanned = true
			d.Model = modelOf(body, t.model)
			d.Stream = t.stream.ok() && string(body[t.stream.start:t.stream.end]) == "true"
		}
	}
	d.Reason = in.skipReason(req, body, &t, &st, d.Model, ep, identity, jsonBody, parsed)
	if d.Reason != ReasonNone {
		return body, d
	}
	d.Patched = true
	return in.splice(body, &t), d
}

func (in *Injector) skipReason(req Request, body []byte, t *topLevel, st *depthStack, model string, ep endpoint, identity, jsonBody, parsed bool) Reason {
	switch {
	case !in.settings.Enabled:
		return ReasonDisabled
	case req.OptOut:
		return ReasonOptOut
	case ep == otherEndpoint:
		return ReasonNotChat
	case ep == messagesEndpoint && !in.settings.Messages:
		return ReasonMessagesOff
	case !identity:
		return ReasonEncoded
	case !jsonBody:
		return ReasonNotJSON
	case !parsed:
		return ReasonInvalidJSON
	case !hasConversation(body, t, ep):
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
	case t.tools.ok() && hasWebSearchTool(body, t.tools, st):
		return ReasonHasWebSearch
	}
	return ReasonNone
}

// hasConversation checks for what makes the body a request the tool makes
// sense in: chat and Anthropic Messages need a messages array, Responses an
// input string or array.
func hasConversation(body []byte, t *topLevel, ep endpoint) bool {
	if ep == responsesEndpoint {
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

// hasWebSearchTool looks in the tools array at s (null or an array, in a
// body parseTop accepted) for a tool that already searches the web: ours, or
// a provider's (OpenAI's in chat and Responses, Anthropic's in Messages).
// Two would search twice and pay twice. Every "type" member of a tool
// counts, since parsers disagree on which of two duplicates wins.
//
// It walks the array with the scanner rather than gjson, which would
// unescape (and allocate) every string member of every tool on the way:
// Anthropic tools carry their descriptions at the top.
func hasWebSearchTool(b []byte, s span, st *depthStack) bool {
	if b[s.start] != '[' {
		return false
	}
	// The body is valid JSON, so the walk needs no bounds or syntax
	// checks. The array is at depth 2 (the top object is 1); the depths
	// given to skipValue are the ones the validating scan used.
	i := skipWS(b, s.start+1)
	for b[i] != ']' {
		if b[i] != '{' {
			i = skipValue(b, i, 2, st)
		} else if i = skipWS(b, i+1); b[i] != '}' {
			for {
				ks := i
				i = skipString(b, i)
				name := b[ks+1 : i-1]
				vs := skipWS(b, skipWS(b, i)+1)
				i = skipValue(b, vs, 3, st)
				if b[vs] == '"' && keyOf(name) == keyType && isWebSearchType(stringAt(b, span{vs, i})) {
					return true
				}
				if i = skipWS(b, i); b[i] == '}' {
					break
				}
				i = skipWS(b, i+1) // past ','
			}
			i++
		} else {
			i++
		}
		if i = skipWS(b, i); b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	return false
}

// stringAt is the JSON string at s, unescaped. Without escapes it is a view
// of the body that must not outlive the call that made it; the rare escaped
// one is a copy.
func stringAt(b []byte, s span) string {
	raw := b[s.start+1 : s.end-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return unsafe.String(unsafe.SliceData(raw), len(raw))
	}
	return gjson.Parse(view(b, s)).String()
}

// isWebSearchType matches OpenRouter's server tool and every type named
// web_search*: OpenAI's web_search, web_search_preview and their dated
// variants, Anthropic's web_search_20250305, web_search_20260209 and what
// follows them. A name a provider adds later is more likely another web
// search than anything else, and a search not added costs less than one
// paid twice.
func isWebSearchType(s string) bool {
	return s == "openrouter:web_search" || strings.HasPrefix(s, "web_search")
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
