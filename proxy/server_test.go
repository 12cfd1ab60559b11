package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNewServerDefaultsTheReadHeaderTimeout(t *testing.T) {
	// Without it a client that never finishes its headers holds a
	// connection (and a goroutine) for ever.
	srv := NewServer(http.NotFoundHandler(), ServerOptions{})
	assert.Positive(t, srv.ReadHeaderTimeout)
	assert.Equal(t, DefaultReadHeaderTimeout, srv.ReadHeaderTimeout)
	assert.Equal(t, 10*time.Second, srv.ReadHeaderTimeout, "the documented default")
	assert.Zero(t, srv.WriteTimeout, "a write timeout would cut SSE streams")

	srv = NewServer(http.NotFoundHandler(), ServerOptions{ReadHeaderTimeout: 3 * time.Second})
	assert.Equal(t, 3*time.Second, srv.ReadHeaderTimeout)
}
