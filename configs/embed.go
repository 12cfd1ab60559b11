// Package configs carries the documented example configuration inside the
// binary, so `orproxy service install` can write a default config file on a
// machine that has only the binary.
package configs

import _ "embed"

//go:embed config.example.yaml
var example []byte

// Example returns the contents of config.example.yaml: every key at its
// default with a one-line comment. The caller owns the returned slice.
func Example() []byte {
	return append([]byte(nil), example...)
}
