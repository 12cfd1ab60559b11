package proxy

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/orproxy/orproxy/internal/netaddr"
)

// refusal is a request the local guard turned away.
type refusal struct {
	status  int
	message string
}

// guard applies the local guard (docs/ARCHITECTURE.md). The proxy spends the user's
// credits on every request it forwards, so anything that did not plainly come
// from a program on this machine is refused: requests for other hosts (DNS
// rebinding), from web pages (foreign Origin, cross-site fetch metadata),
// forward-proxy forms (CONNECT, absolute-form targets) and paths that do not
// say plainly where they go.
func (h *Handler) guard(r *http.Request) *refusal {
	if r.Method == http.MethodConnect {
		return &refusal{http.StatusMethodNotAllowed, "CONNECT is refused: orproxy is not a forward proxy; send requests to http://" + h.listenHint() + "/api/v1/…"}
	}
	if r.URL.IsAbs() || r.URL.Host != "" || r.RequestURI == "*" || !strings.HasPrefix(r.RequestURI, "/") {
		return &refusal{http.StatusBadRequest, "request target " + quote(r.RequestURI) + " is refused: orproxy is not a forward proxy; use a path such as /api/v1/chat/completions"}
	}
	if !h.opts.AllowAnyHost && !loopbackHostHeader(r.Host) {
		return &refusal{http.StatusForbidden, "Host " + quote(r.Host) + " is refused: orproxy answers only to localhost or a loopback address (DNS-rebinding protection)"}
	}
	// Every value counts: a check of the first alone is passed by putting a
	// harmless value in front of the real one.
	hasOrigin := false
	for _, origin := range r.Header.Values("Origin") {
		if origin == "" {
			continue
		}
		hasOrigin = true
		if !loopbackOrigin(origin) {
			return &refusal{http.StatusForbidden, "requests from web pages are refused (Origin " + quote(origin) + "): a page must not spend your OpenRouter credits"}
		}
	}
	if !hasOrigin {
		for _, site := range r.Header.Values("Sec-Fetch-Site") {
			if s := strings.TrimSpace(site); strings.EqualFold(s, "cross-site") || strings.EqualFold(s, "same-site") {
				return &refusal{http.StatusForbidden, "cross-site browser requests are refused (Sec-Fetch-Site: " + printable(site) + "): a page must not spend your OpenRouter credits"}
			}
		}
	}
	if msg := checkPath(r); msg != "" {
		return &refusal{http.StatusBadRequest, msg}
	}
	// Service managers probe /healthz without the token; it says nothing
	// and spends nothing. The checks above still apply to it.
	if !h.opts.AccessToken.IsZero() && r.URL.Path != "/healthz" && !h.presentsAccessToken(r) {
		return &refusal{http.StatusUnauthorized, "this proxy requires its access token: send it as Authorization: Bearer <token> or x-api-key (see access_token in the orproxy config)"}
	}
	return nil
}

// loopbackHostHeader reports whether a Host header (or an origin's host)
// names this machine: localhost or a loopback IP, with an optional numeric
// port. It is strict about the form, as a lenient parse is what DNS-rebinding
// and smuggling tricks aim at: "[[::1]]", "localhost:abc", "127.0.0.1]" and
// an unbracketed IPv6 address are refused.
func loopbackHostHeader(host string) bool {
	name, port, hasPort := host, "", false
	if rest, ok := strings.CutPrefix(host, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return false
		}
		name = rest[:end]
		if after := rest[end+1:]; after != "" {
			if after[0] != ':' {
				return false
			}
			port, hasPort = after[1:], true
		}
		// Brackets hold an IPv6 address and nothing else.
		ip := net.ParseIP(name)
		if ip == nil || !strings.Contains(name, ":") || !ip.IsLoopback() {
			return false
		}
	} else {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			name, port, hasPort = host[:i], host[i+1:], true
		}
		if strings.ContainsAny(name, "[]:") || !netaddr.IsLoopbackHost(name) {
			return false
		}
	}
	return !hasPort || validPort(port)
}

// validPort accepts what RFC 3986 calls a port, digits only, up to 65535;
// the empty port of "localhost:" is allowed there too.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	if len(port) > 5 {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false // includes the opaque "null" origin of sandboxed pages and files
	}
	return loopbackHostHeader(u.Host)
}

// checkPath refuses paths whose meaning depends on who normalises them:
// dot segments (also percent-encoded), empty segments, encoded slashes and
// backslashes. Upstream must see exactly the path the client meant.
func checkPath(r *http.Request) string {
	p := r.URL.Path
	raw := r.URL.EscapedPath()
	lower := strings.ToLower(raw)
	switch {
	case strings.Contains(lower, "%2f"), strings.Contains(lower, "%5c"), strings.Contains(p, "\\"):
		return "path " + quote(raw) + " is refused: encoded slashes and backslashes are not allowed"
	case strings.Contains(p, "//"):
		return "path " + quote(raw) + " is refused: empty path segments are not allowed"
	case strings.Contains(p, "\x00"):
		return "path " + quote(raw) + " is refused: it contains a NUL byte"
	}
	trimmed := strings.TrimSuffix(p, "/")
	if trimmed == "" {
		trimmed = "/"
	}
	if path.Clean(p) != trimmed {
		return "path " + quote(raw) + " is refused: dot segments (. or ..) are not allowed"
	}
	return ""
}

func (h *Handler) presentsAccessToken(r *http.Request) bool {
	want := []byte(h.opts.AccessToken.Reveal())
	matches := func(got string) bool {
		return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1
	}
	bearer, _ := cutBearer(r.Header.Get("Authorization"))
	return matches(bearer) || matches(r.Header.Get("X-Api-Key"))
}

func cutBearer(h string) (string, bool) {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// quote shows a client-supplied value in a message, bounded so a hostile
// request cannot make our error answer huge.
func quote(s string) string { return `"` + printable(s) + `"` }

// printable bounds a client-supplied value and replaces control characters,
// so it can go into a message or a log line as it is.
func printable(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}

func (h *Handler) listenHint() string {
	if h.opts.Listen != "" {
		return h.opts.Listen
	}
	return "127.0.0.1:8765"
}
