package daemon

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/testenv"
)

// /status says whether an upstream connection is held and when the proxy
// last sent a request; the window runs recent_use from that request.
func TestStatusShowsTheWarmConnection(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.StoreKey(t, auth.SourceManual)
	d := startDaemon(t, env, func(c *config.Config) { c.Keepalive.RecentUse = 2 * time.Hour })
	before := time.Now()
	status, body := d.post(t, chatBody)
	require.Equal(t, http.StatusOK, status, body)

	w := d.statusDoc(t).WarmConnection
	require.NotNil(t, w)
	assert.True(t, w.Enabled)
	assert.EqualValues(t, 7200, w.RecentUseSeconds)
	assert.True(t, w.Held, "the request's connection stays open")
	assert.WithinDuration(t, before, w.LastUsed, 5*time.Second)
	assert.Equal(t, w.LastUsed.Add(2*time.Hour).Unix(), w.KeptUntil.Unix())
}

func TestStatusWithKeepaliveOff(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.StoreKey(t, auth.SourceManual)
	d := startDaemon(t, env, func(c *config.Config) { c.Keepalive.Enabled = false })
	w := d.statusDoc(t).WarmConnection
	require.NotNil(t, w)
	assert.False(t, w.Enabled)
	assert.True(t, w.KeptUntil.IsZero())
	assert.Zero(t, w.Warmups)
}
