package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
)

// TestTwoDaemonsAndRotateRaceOnARevokedKey: two daemons and an `orproxy
// rotate`, each its own process, meet a revoked key at the same moment on one
// credential file. The broker is slow, so all three are under way while the
// first rotation runs. There must be exactly one rotation, and all three end
// with the same key.
func TestTwoDaemonsAndRotateRaceOnARevokedKey(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	first := s.proxyURL
	second := s.startAnotherProxy()
	for _, d := range []string{first, second} {
		curl(t, d+"/api/v1/chat/completions", "-d", `{"model":"openai/gpt-4o-mini","messages":[]}`)
	}
	old := s.storedKey()

	ctx := s.ctx()
	require.NoError(t, s.broker.SetFault(ctx, broker.Fault{Endpoint: "rotate", Delay: 3 * time.Second}))
	_, err := s.broker.RevokeCurrentKey(ctx)
	require.NoError(t, err)

	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, d := range []string{first, second} {
		wg.Go(func() {
			resp, err := httpClient.Post(d+"/api/v1/chat/completions", "application/json", strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[]}`))
			if err != nil {
				t.Errorf("daemon %d: %v", i+1, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	var rotateOut, rotateErr string
	var rotateFailed error
	wg.Go(func() { rotateOut, rotateErr, rotateFailed = s.orproxy("", "rotate") })
	wg.Wait()

	require.NoError(t, rotateFailed, rotateErr)
	assert.Equal(t, []int{http.StatusOK, http.StatusOK}, statuses)
	stats, err := s.broker.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, stats.RotateCalls, "one rotation for two daemons and the command; rotate said: %s", rotateOut)

	key := s.storedKey()
	require.NotEqual(t, old, key)
	redacted := "sk-or-v1-…" + key[len(key)-4:]
	assert.Contains(t, rotateOut, redacted, "the command ends with the stored key")
	require.NoError(t, s.broker.SetFault(ctx, broker.Fault{}))
	for i, d := range []string{first, second} {
		resp, err := httpClient.Get(d + "/status")
		require.NoError(t, err)
		var st struct {
			Credential struct {
				Key string `json:"key"`
			} `json:"credential"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		resp.Body.Close()
		assert.Equal(t, redacted, st.Credential.Key, "daemon %d", i+1)

		from := len(s.chatRequests())
		curl(t, d+"/api/v1/chat/completions", "-d", `{"model":"openai/gpt-4o-mini","messages":[]}`)
		reqs := s.chatRequests()[from:]
		require.Len(t, reqs, 1, "daemon %d needed no retry", i+1)
		assert.Equal(t, "Bearer "+key, reqs[0].Header.Get("Authorization"), "daemon %d", i+1)
	}
}

// startAnotherProxy runs a second `orproxy serve` on the stack's config and
// credential file, on a port of its own, and returns its base URL.
func (s *stack) startAnotherProxy() string {
	s.t.Helper()
	_, base := serve(s.t, s.env, "--config", s.configFile, "--listen", "127.0.0.1:0")
	return base
}
