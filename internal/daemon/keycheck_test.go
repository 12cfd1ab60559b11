package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/account"
	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testenv"
)

// TestOneKeyReadAtStart: a daemon asks OpenRouter about its key once at
// start, whether or not the start-up check runs: the check's answer is the
// key poller's first reading, and /status shows it.
func TestOneKeyReadAtStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		validate bool
	}{
		{"validate_on_start", true},
		{"no start-up check", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			cred := env.LoginBroker(t)
			limit := 20.0
			_, err := env.OpenRouter.SetKeyLimit(cred.APIKey.Reveal(), openrouter.KeyLimit{Limit: &limit, Reset: "monthly"})
			require.NoError(t, err)
			require.NoError(t, env.OpenRouter.Spend(cred.APIKey.Reveal(), 4.5))

			d := startDaemon(t, env, func(c *config.Config) { c.Credentials.ValidateOnStart = tc.validate })
			if tc.validate {
				require.Eventually(t, func() bool {
					return d.logs.FilterMessage("stored key accepted by OpenRouter").Len() == 1
				}, 10*time.Second, 5*time.Millisecond, "the start-up check ran")
			}
			require.Eventually(t, func() bool {
				c := d.statusDoc(t).Credits
				return c != nil && !c.CheckedAt.IsZero()
			}, 10*time.Second, 5*time.Millisecond, "/status shows the key's limit")
			// Long enough for a second GET /key on loopback to arrive.
			time.Sleep(300 * time.Millisecond)
			assert.Equal(t, 1, env.OpenRouter.Count("/api/v1/key"), "GET /key requests at start")

			c := d.statusDoc(t).Credits
			require.NotNil(t, c.Limit)
			assert.InDelta(t, 20, *c.Limit, 1e-9)
			require.NotNil(t, c.LimitRemaining)
			assert.InDelta(t, 15.5, *c.LimitRemaining, 1e-9)
			assert.Equal(t, "monthly", c.LimitReset)
			assert.InDelta(t, 4.5, c.Usage, 1e-9)
			assert.Empty(t, c.LastError)
		})
	}
}

// The poller starts from the first check's answer only when it succeeded,
// and not at all when the daemon stops while it waits.
func TestStartCheckAwait(t *testing.T) {
	for _, tc := range []struct {
		name      string
		settle    func(s *startCheck)
		stopped   bool
		wantRun   bool
		wantOffer bool
	}{
		{"accepted", func(s *startCheck) { s.settle(auth.KeyAnswer{Usage: 1.5}, nil) }, false, true, true},
		{"refused", func(s *startCheck) { s.settle(auth.KeyAnswer{}, &auth.KeyRejectedError{Status: 401}) }, false, true, false},
		{"unknown", func(s *startCheck) { s.settle(auth.KeyAnswer{}, errors.New("GET /key: 502 Bad Gateway")) }, false, true, false},
		{"a later check is not the first", func(s *startCheck) {
			s.settle(auth.KeyAnswer{}, errors.New("GET /key: 502 Bad Gateway"))
			s.settle(auth.KeyAnswer{Usage: 1.5}, nil)
		}, false, true, false},
		{"stopped while waiting", func(*startCheck) {}, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStartCheck()
			p := account.NewPoller(account.Options{})
			tc.settle(s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.stopped {
				cancel()
			}
			assert.Equal(t, tc.wantRun, s.await(ctx, p))
			if !tc.wantOffer {
				assert.Nil(t, p.Status())
				return
			}
			c := p.Status()
			require.NotNil(t, c)
			assert.InDelta(t, 1.5, c.Usage, 1e-9)
			assert.False(t, c.CheckedAt.IsZero())
		})
	}
}
