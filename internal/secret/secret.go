// Package secret holds credentials in a type that cannot print itself whole.
//
// Every output path of orproxy (logs, errors, /status, command output) formats
// keys and tokens through this package, so a key that slips into a log call
// shows only its fingerprint ("sk-or-v1-…a1b2").
package secret

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// Secret is a credential value. Its zero value is "no secret". The raw value is
// reachable only through Reveal, so string concatenation cannot leak it by
// accident; fmt, encoding/json, encoding.TextMarshaler and zap all see the
// redacted form.
type Secret struct {
	value string
}

// New wraps a raw credential value.
func New(raw string) Secret { return Secret{value: raw} }

// Reveal returns the raw value. Call it only where the value leaves the process
// for its owner: an Authorization header, the credential file.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no value is held.
func (s Secret) IsZero() bool { return s.value == "" }

// String returns the redacted form.
func (s Secret) String() string { return Redact(s.value) }

// GoString keeps %#v from printing the struct field.
func (s Secret) GoString() string { return "secret.Secret(" + Redact(s.value) + ")" }

// Format covers every verb, including %q, %x and %#v, which would otherwise
// reach the unexported field through reflection.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", Redact(s.value))
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(s.GoString()))
			return
		}
		_, _ = f.Write([]byte(Redact(s.value)))
	default:
		_, _ = f.Write([]byte(Redact(s.value)))
	}
}

// MarshalText makes encoders that use encoding.TextMarshaler print the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redact(s.value)), nil }

// MarshalJSON keeps json.Marshal of any struct holding a Secret safe for output.
// Files that must store the raw value use their own wire type.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(Redact(s.value)) }

// Field is a zap field that logs only the fingerprint.
func Field(key string, s Secret) zap.Field { return zap.Stringer(key, s) }

// keyPrefixes are the public, non-secret prefixes kept in the fingerprint
// because they tell a user which kind of credential it is.
var keyPrefixes = []string{"sk-or-v1-", "sk-or-", "sk-"}

// minRevealLen is the shortest value whose last four characters are shown; for
// anything shorter, four characters would be a large share of the secret.
const minRevealLen = 16

// Redact returns the printable fingerprint of a raw credential: its well-known
// prefix, an ellipsis and the last four characters ("sk-or-v1-…a1b2"). Short
// values show nothing but the ellipsis, and the empty value prints as "(none)".
func Redact(raw string) string {
	if raw == "" {
		return "(none)"
	}
	prefix := ""
	for _, p := range keyPrefixes {
		if strings.HasPrefix(raw, p) {
			prefix = p
			break
		}
	}
	runes := []rune(raw)
	if len(runes) < minRevealLen {
		return prefix + "…"
	}
	return prefix + "…" + string(runes[len(runes)-4:])
}

// RedactURL is raw as a message may show it: a URL's password hidden, a
// user name alone (it may be a token: https://TOKEN@host) replaced, and for
// text that does not parse as a URL whatever stood before an "@" left out.
// Other text is returned as it is.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "…" + raw[i:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		return u.Redacted()
	}
	u.User = url.User("xxxxx")
	return u.String()
}
