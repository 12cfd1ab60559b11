package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseWrk(t *testing.T) {
	out := []byte("Running 3s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n" +
		"WRKRESULT 30000 3001234 2 5 1800 2500 9100 1\nRequests/sec: 9996.12\n")
	s, err := parseWrk(out)
	require.NoError(t, err)
	assert.Equal(t, wrkSummary{requests: 30000, durationUS: 3001234, ioErrors: 2, statusErrors: 5,
		p50: 1800, p90: 2500, p99: 9100, timeouts: 1}, s)

	_, err = parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n"))
	assert.ErrorContains(t, err, "no result line")
	assert.ErrorContains(t, err, "Connection refused", "the error shows what wrk said")

	_, err = parseWrk([]byte("WRKRESULT 1 2 3 4 x 6 7 8\n"))
	assert.ErrorContains(t, err, `field 5 "x"`)
}
