package main

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMain keeps serve's GOMAXPROCS out of the other tests of this package,
// which run serve in this process: a GOMAXPROCS set in the environment is
// left alone.
func TestMain(m *testing.M) {
	if os.Getenv("GOMAXPROCS") == "" {
		os.Setenv("GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0)))
	}
	os.Exit(m.Run())
}

func TestLimitProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	runtime.GOMAXPROCS(4)

	t.Setenv("GOMAXPROCS", "4")
	limitProcs()
	assert.Equal(t, 4, runtime.GOMAXPROCS(0), "GOMAXPROCS in the environment wins")

	t.Setenv("GOMAXPROCS", "")
	limitProcs()
	assert.Equal(t, serveProcs, runtime.GOMAXPROCS(0))
}
