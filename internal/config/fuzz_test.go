package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzDecode checks the config decoder on any file: it never panics, reports
// problems as an *Error that names the file, and what it accepts reads back
// the same from a file written out of it. Seeds are in testdata/fuzz/FuzzDecode:
// configs/config.example.yaml and the files of TestBadInput.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode("fuzz.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a *config.Error with problems", err)
			}
			for _, p := range ce.Problems {
				if !strings.HasPrefix(p, "fuzz.yaml") && !strings.Contains(p, "fuzz.yaml:") {
					t.Fatalf("problem %q does not name the file", p)
				}
			}
			return
		}
		_ = c.Validate() // any decoded config can be validated without a panic
		again, err := Decode("again.yaml", encodeForTest(t, c))
		if err != nil {
			t.Fatalf("a file written from an accepted config does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v", c, again)
		}
	})
}

// encodeForTest writes c as a config file, every key spelled out, durations
// and sizes in their text forms.
func encodeForTest(t *testing.T, c Config) []byte {
	t.Helper()
	var walk func(v reflect.Value) map[string]any
	walk = func(v reflect.Value) map[string]any {
		out := map[string]any{}
		for i := range v.NumField() {
			f, key := v.Field(i), yamlKey(v.Type().Field(i))
			switch {
			case f.Type() == durationType:
				out[key] = time.Duration(f.Int()).String()
			case f.Type() == byteSizeType:
				out[key] = ByteSize(f.Int()).String()
			case f.Kind() == reflect.Struct:
				out[key] = walk(f)
			case f.Kind() == reflect.Slice:
				items := []string{}
				if !f.IsNil() {
					items = f.Interface().([]string)
				}
				out[key] = items
			default:
				out[key] = f.Interface()
			}
		}
		return out
	}
	b, err := yaml.Marshal(walk(reflect.ValueOf(c)))
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}
