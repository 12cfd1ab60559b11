package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/secret"
)

// Layer is one of the places a setting can come from, in rising precedence.
type Layer int

// The layers, in the order Load applies them; a later one wins.
const (
	LayerDefault Layer = iota
	LayerFile
	LayerEnv
	LayerFlag
)

func (l Layer) String() string {
	switch l {
	case LayerFile:
		return "file"
	case LayerEnv:
		return "environment"
	case LayerFlag:
		return "flag"
	}
	return "default"
}

// MarshalText makes a Layer its name in JSON.
func (l Layer) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a Layer's name, for programs that read `orproxy
// config show --json`.
func (l *Layer) UnmarshalText(b []byte) error {
	for _, c := range []Layer{LayerDefault, LayerFile, LayerEnv, LayerFlag} {
		if c.String() == string(b) {
			*l = c
			return nil
		}
	}
	return fmt.Errorf("%q is not a config layer (default, file, environment or flag)", b)
}

// Source is where a key's value came from: the layer that set it last and,
// within the layer, exactly where.
type Source struct {
	Layer Layer `json:"layer"`
	// Where is "path:line" for the file, the variable's name for the
	// environment and the flag as typed ("--listen") for a flag; empty for a
	// default, and for a flag whose name Load was not told.
	Where string `json:"where,omitempty"`
}

// where names the source in a message: the variable, the flag, or "the
// command line".
func (s Source) where() string {
	if s.Where == "" && s.Layer == LayerFlag {
		return "the command line"
	}
	return s.Where
}

func (s Source) String() string {
	if s.Where == "" {
		return s.Layer.String()
	}
	return s.Layer.String() + " " + s.Where
}

// Source tells where the value of key (dotted, as in Keys) came from.
func (l *Loaded) Source(key string) Source {
	if s, ok := l.sources[key]; ok {
		return s
	}
	return Source{Layer: LayerDefault}
}

// Setting is one key of the effective configuration.
type Setting struct {
	Key string `json:"key"`
	// Value is a string, bool, int or []string; durations and sizes are
	// written as a config file would have them ("10s", "32MiB"). Secrets
	// are redacted.
	Value  any    `json:"value"`
	Source Source `json:"source"`
}

// Settings lists every key, in the order of Keys, with its value and where
// it came from. Secrets are redacted, so the result is safe to print: the
// access token and start header values show only their fingerprint, and a
// URL's password is replaced.
func (l *Loaded) Settings() []Setting {
	keys := Keys()
	out := make([]Setting, 0, len(keys))
	for _, k := range keys {
		out = append(out, Setting{Key: k, Value: redact(k, printable(l.Config.value(k))), Source: l.Source(k)})
	}
	return out
}

// value is the field of c that key names; key comes from Keys.
func (c *Config) value(key string) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(key, ".") {
		v, _ = fieldByKey(v, part)
	}
	return v
}

// printable turns a field into the plain value a file would hold.
func printable(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return FormatDuration(time.Duration(v.Int()))
	case v.Type() == byteSizeType:
		return ByteSize(v.Int()).String()
	case v.Kind() == reflect.Slice:
		return append([]string{}, v.Interface().([]string)...)
	}
	return v.Interface()
}

// FormatDuration writes d the way a config file would, without the zero
// units time.Duration.String adds ("24h", not "24h0m0s").
func FormatDuration(d time.Duration) string {
	if d >= 2*Day && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// redactors hide the secret part of the keys that hold one.
var redactors = map[string]func(any) any{
	"access_token": func(v any) any {
		if s := v.(string); s != "" {
			return secret.Redact(s)
		}
		return v
	},
	"broker.start_headers": func(v any) any {
		lines := v.([]string)
		for i, line := range lines {
			// The name says which identity header is sent; the value
			// may be a token.
			name, value, _ := strings.Cut(line, ":")
			lines[i] = strings.TrimSpace(name) + ": " + secret.Redact(strings.TrimSpace(value))
		}
		return lines
	},
}

func redact(key string, v any) any {
	if r, ok := redactors[key]; ok {
		return r(v)
	}
	if s, ok := v.(string); ok {
		return secret.RedactURL(s)
	}
	return v
}
