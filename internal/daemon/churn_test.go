package daemon

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testenv"
)

// credentialStatus is the credential part of /status.
func (d *daemonUnderTest) credentialStatus(t *testing.T) statusdoc.Credential {
	t.Helper()
	resp, err := client.Get(d.url + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st struct {
		Credential statusdoc.Credential `json:"credential"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Credential
}

// TestBrokerHandingOutUnusableKeysBacksOff: a broker that answers a
// rotation with the key OpenRouter rejected, or with new keys OpenRouter
// rejects as well, is a broker failing, not a success to repeat: 50 requests
// in a row make at most 4 broker calls (the backoff's budget), each client
// gets OpenRouter's 401 with the reason, /status shows it, and once the
// broker heals requests succeed again within the backoff (30 s at most).
func TestBrokerHandingOutUnusableKeysBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault broker.Fault
		want  string
	}{
		{"same key again", broker.Fault{SameKey: true}, "the broker returned the key OpenRouter had just rejected"},
		{"dead keys", broker.Fault{DeadKeys: true}, "the broker issued a new key but OpenRouter rejected it too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			old := env.LoginBroker(t)
			d := startDaemon(t, env)
			env.Broker.SetFault(tc.fault)
			env.OpenRouter.Revoke(old.APIKey.Reveal())

			const n = 50
			for i := range n {
				status, body := d.post(t, chatBody)
				require.Equal(t, http.StatusUnauthorized, status, "request %d: %s", i, body)
				assert.Contains(t, body, "User not found.", "request %d: the original 401 message stays", i)
				assert.Contains(t, body, tc.want, "request %d", i)
				assert.Contains(t, body, "if this persists", "request %d says what to do", i)
			}
			calls := env.Broker.Stats().RotateCalls
			assert.LessOrEqual(t, calls, 4, "at most 4 broker calls per backoff window")
			assert.GreaterOrEqual(t, calls, 1)
			assert.LessOrEqual(t, env.OpenRouter.Count("/api/v1/chat/completions"), n+calls,
				"a retry only after a rotation, never a second one")
			st := d.credentialStatus(t)
			assert.Contains(t, st.LastRotationError, tc.want)
			assert.GreaterOrEqual(t, st.RotationFailures, auth.FailuresBeforeBackoff)
			assert.NotNil(t, st.RotationWaitUntil, "backing off")
			d.healthy(t)

			env.Broker.SetFault(broker.Fault{})
			healed := time.Now()
			deadline := healed.Add(35 * time.Second)
			var status int
			var body string
			for time.Now().Before(deadline) {
				if status, body = d.post(t, chatBody); status == http.StatusOK {
					break
				}
				time.Sleep(50 * time.Millisecond) // pacing a poll, not waiting for readiness
			}
			require.Equal(t, http.StatusOK, status, "recovers once the broker heals: %s", body)
			assert.Less(t, time.Since(healed), 30*time.Second, "within the longest backoff")
			st = d.credentialStatus(t)
			assert.Empty(t, st.LastRotationError)
			assert.Zero(t, st.RotationFailures)
			assert.Nil(t, st.RotationWaitUntil)
			assert.NotEqual(t, old.APIKey, env.Stored(t).APIKey)
		})
	}
}
