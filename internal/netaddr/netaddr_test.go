package netaddr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":        true,
		"LocalHost":        true,
		"127.0.0.1":        true,
		"127.1.2.3":        true,
		"::1":              true,
		"[::1]":            true,
		"":                 false,
		"0.0.0.0":          false,
		"::":               false,
		"10.0.0.1":         false,
		"example.com":      false,
		"localhost.":       false,
		"127.0.0.1.nip.io": false,
	} {
		assert.Equal(t, want, IsLoopbackHost(host), host)
	}
}

func TestDialAddress(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8765": "127.0.0.1:8765",
		"0.0.0.0:9000":   "127.0.0.1:9000",
		":9001":          "127.0.0.1:9001",
		"[::]:9002":      "[::1]:9002",
		"[::1]:9003":     "[::1]:9003",
		"localhost:9004": "localhost:9004",
	} {
		got, err := DialAddress(listen)
		require.NoError(t, err, listen)
		assert.Equal(t, want, got, listen)
	}
	_, err := DialAddress("8765")
	assert.ErrorContains(t, err, `listen address "8765"`)
	_, err = DialAddress("127.0.0.1:0")
	assert.ErrorContains(t, err, "port 0 (any free port)")
}

func TestParseHeaderLine(t *testing.T) {
	name, value, err := ParseHeaderLine("x-device-id:  abc def ")
	require.NoError(t, err)
	assert.Equal(t, "X-Device-Id", name)
	assert.Equal(t, "abc def", value)
	for _, bad := range []string{"X-A: b\r\nX-B: c", "no colon", ": empty name", "Bad Name: x", "X-A: b\n", "X-A: b\x00"} {
		_, _, err := ParseHeaderLine(bad)
		assert.Error(t, err, bad)
	}
}

// The value of an identity header may be a token: a refusal names the
// header, never its value.
func TestParseHeaderLineHidesTheValue(t *testing.T) {
	for _, bad := range []string{"X-Token tok-0123456789abcdef", "X-Token: tok-0123456789abcdef\nX-Other: 1"} {
		_, _, err := ParseHeaderLine(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "tok-0123456789abcdef", bad)
		assert.Contains(t, err.Error(), "X-Token", bad)
	}
}
