package netaddr

import (
	"fmt"
	"net/textproto"
	"strings"
)

// ParseHeaderLine splits a "Name: value" line and rejects what could smuggle a
// second header or request line.
func ParseHeaderLine(line string) (name, value string, err error) {
	// Only the name goes into a message: the value of an identity header
	// may be a token.
	name, value, ok := strings.Cut(line, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	shown := name
	if !ok {
		// No colon: the value may follow a space instead.
		shown, _, _ = strings.Cut(shown, " ")
	}
	if len(shown) > 40 {
		shown = shown[:40] + "…"
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return "", "", fmt.Errorf("header %q contains a line break or NUL; give one header per entry", shown)
	}
	if !ok || name == "" || !validHeaderName(name) {
		return "", "", fmt.Errorf("header %q is not a header line (use \"Name: value\"; the value is not shown)", shown)
	}
	return textproto.CanonicalMIMEHeaderKey(name), value, nil
}

func validHeaderName(s string) bool {
	for _, r := range s {
		if r > 127 || !(r == '!' || r == '#' || r == '$' || r == '%' || r == '&' || r == '\'' || r == '*' ||
			r == '+' || r == '-' || r == '.' || r == '^' || r == '_' || r == '`' || r == '|' || r == '~' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}
