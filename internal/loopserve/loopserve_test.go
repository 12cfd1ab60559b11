package loopserve

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestListenRefusesBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:80"} {
		_, err := Listen(addr)
		require.ErrorContains(t, err, "loopback only", addr)
	}

	ln, err := Listen("localhost:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
}

func TestServeEndsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "up")
	}), ReadHeaderTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, func() error { return srv.Serve(ln) }) }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + ln.Addr().String())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "up", string(body))

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "a shutdown asked for is no error")
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestServeReportsAFailedStart(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	srv := &http.Server{ReadHeaderTimeout: time.Second}
	err = Serve(context.Background(), srv, func() error { return srv.Serve(ln) })
	assert.Error(t, err, "serving on a closed listener fails at once")
}
