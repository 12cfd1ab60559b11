package soak

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestShortSoak is the soak in a few seconds, with the race detector in
// `make test`: steady JSON and SSE load from 64 clients while the key is
// revoked behind the daemon's back every 1.5 s. Nothing may fail, every
// revocation is followed by exactly one rotation, and the goroutines come
// back down once the load stops. `make soak` runs the long version.
func TestShortSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{
		Duration:    6 * time.Second,
		Clients:     64,
		Rate:        100,
		RevokeEvery: 1500 * time.Millisecond,
		SampleEvery: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.Print(os.Stderr)
	if err := rep.OK(); err != nil {
		t.Fatal(err)
	}
	if rep.Revocations < 2 {
		t.Fatalf("only %d revocations", rep.Revocations)
	}
}
