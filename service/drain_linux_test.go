//go:build linux

package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/daemon"
	"github.com/orproxy/orproxy/internal/secret"
)

// heldStream is an upstream whose chat completion streams one event, then
// waits for release before it finishes.
type heldStream struct {
	streaming chan struct{}
	release   chan struct{}
}

func (h *heldStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
	w.(http.Flusher).Flush()
	close(h.streaming)
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"last\"}}]}\n\ndata: [DONE]\n\n")
}

// TestServiceStopDrainsAnOpenStream runs the real daemon the way the service
// manager does and stops it with SIGTERM while a stream is open: the stream
// must finish and RunServe return nil, as after SIGTERM in a terminal. Stop
// used to wait a fixed time shorter than the drain.
func TestServiceStopDrainsAnOpenStream(t *testing.T) {
	playServiceManager(t)
	saved := stopMargin
	stopMargin = 100 * time.Millisecond // far shorter than the drain below
	t.Cleanup(func() { stopMargin = saved })
	const drain = 10 * time.Second

	up := &heldStream{streaming: make(chan struct{}), release: make(chan struct{})}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(up.release)
		}
	})

	store := auth.NewStore(filepath.Join(t.TempDir(), "credentials.json"))
	require.NoError(t, store.Save(context.Background(), &auth.Credential{Source: auth.SourceManual, APIKey: secret.New("sk-or-v1-" + strings.Repeat("a", 64))}))
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = upstream.URL + "/api/v1"
	cfg.Credentials.File = store.Path()
	// Never the user's own ledger.
	cfg.Usage.File = filepath.Join(filepath.Dir(store.Path()), "usage.db")
	cfg.Credentials.ValidateOnStart = false
	cfg.WebSearch.Enabled = false
	require.Empty(t, cfg.Validate())

	core, logs := observer.New(zapcore.InfoLevel)
	ready := make(chan net.Addr, 1)
	done := runAsyncDrain(context.Background(), drain, func(ctx context.Context) error {
		return daemon.Run(ctx, cfg, daemon.Options{Logger: zap.New(core), DrainTimeout: drain, Ready: func(a net.Addr) { ready <- a }})
	})
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("the daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not start in time")
	}

	client := &http.Client{Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Post("http://"+addr.String()+"/api/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body := bufio.NewReader(resp.Body)
	first, err := body.ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, first, "first")
	<-up.streaming

	// What systemd and launchd send for `stop`.
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	require.Eventually(t, func() bool {
		return logs.FilterMessageSnippet("shutting down").Len() > 0
	}, 5*time.Second, 10*time.Millisecond, "the stop request did not start the drain")
	select {
	case err := <-done:
		t.Fatalf("RunServe returned while a stream was still draining: %v", err)
	case <-time.After(5 * stopMargin):
	}

	released = true
	close(up.release)
	rest, err := io.ReadAll(body)
	require.NoError(t, err, "the stream was cut")
	assert.Contains(t, string(rest), "last")
	assert.Contains(t, string(rest), "data: [DONE]")
	assert.NoError(t, within(t, done))
}
