package daemon

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/testenv"
)

// startedLoginURL is the login URL a 401 names when the daemon started one.
var startedLoginURL = regexp.MustCompile(`orproxy started a login: open (\S+) to log in`)

// postAsync sends n chat requests at once and returns their statuses.
func (d *daemonUnderTest) postAsync(t *testing.T, n int) chan int {
	out := make(chan int, n)
	for range n {
		go func() {
			resp, err := client.Post(d.url+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
			if err != nil {
				out <- 0
				return
			}
			resp.Body.Close()
			out <- resp.StatusCode
		}()
	}
	return out
}

func (d *daemonUnderTest) loginURL(t *testing.T) string {
	t.Helper()
	resp, err := client.Get(d.url + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Credential struct {
			LoginURL string `json:"login_url"`
		} `json:"credential"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Credential.LoginURL
}

// openInBrowser plays the user: it opens u and follows it to the end.
func openInBrowser(t *testing.T, u string) {
	t.Helper()
	resp, err := client.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A key OpenRouter rejects that no rotation can replace starts the login:
// the request that met the rejection learns its URL in its 401, the ones
// after it wait and go through once the user has logged in.
func TestAutoLoginWhenTheKeyCannotBeReplaced(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, env *testenv.Env)
		says  string
	}{
		{name: "pasted key rejected", says: "the key came from a pasted key", setup: func(t *testing.T, env *testenv.Env) {
			env.OpenRouter.Revoke(env.StoreKey(t, auth.SourceManual).APIKey.Reveal())
		}},
		{name: "broker refuses the refresh token", says: "the broker refused the refresh token", setup: func(t *testing.T, env *testenv.Env) {
			env.OpenRouter.Revoke(env.LoginBroker(t).APIKey.Reveal())
			env.Broker.SetFault(broker.Fault{RejectRefresh: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			tc.setup(t, env)
			d := startDaemon(t, env, func(c *config.Config) { c.Login.AutoLogin, c.Login.OpenBrowser = true, false })
			exchanges := env.Broker.Stats().ExchangeCalls

			status, body := d.post(t, chatBody)
			assert.Equal(t, http.StatusUnauthorized, status)
			assert.Contains(t, body, tc.says)
			m := startedLoginURL.FindStringSubmatch(body)
			require.Len(t, m, 2, body)
			assert.Contains(t, m[1], env.BrokerURL+"/auth/openrouter/start?return_to=")
			assert.Equal(t, m[1], d.loginURL(t))

			waiting := d.postAsync(t, 3)
			time.Sleep(100 * time.Millisecond) // the requests reach the login
			openInBrowser(t, m[1])
			for range 3 {
				assert.Equal(t, http.StatusOK, <-waiting)
			}
			assert.Equal(t, exchanges+1, env.Broker.Stats().ExchangeCalls, "one login")
			assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
		})
	}
}

// With login.method openrouter the automatic login is OpenRouter's own, and
// needs no broker.
func TestAutoLoginWithOpenRouter(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	d := startDaemon(t, env, func(c *config.Config) {
		c.Broker.URL = ""
		c.Login.Method, c.Login.AutoLogin, c.Login.OpenBrowser = "openrouter", true, false
	})
	waiting := d.postAsync(t, 2)
	var u string
	require.Eventually(t, func() bool { u = d.loginURL(t); return u != "" }, 5*time.Second, 10*time.Millisecond)
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	assert.Equal(t, "/auth", parsed.Path)
	assert.True(t, strings.HasPrefix(parsed.Query().Get("key_label"), "orproxy on "))
	openInBrowser(t, u)
	for range 2 {
		assert.Equal(t, http.StatusOK, <-waiting)
	}
	assert.Equal(t, auth.SourceOpenRouterOAuth, env.Stored(t).Source)
}

// broker.return_to_state: false reaches the automatic login: a broker that
// matches return_to exactly takes it.
func TestAutoLoginReturnToWithoutState(t *testing.T) {
	env := testenv.New(t, testenv.Options{Broker: broker.Options{ExactReturnTo: true}})
	d := startDaemon(t, env, func(c *config.Config) {
		c.Broker.ReturnToState = false
		c.Login.AutoLogin, c.Login.OpenBrowser = true, false
	})
	waiting := d.postAsync(t, 1)
	var u string
	require.Eventually(t, func() bool { u = d.loginURL(t); return u != "" }, 5*time.Second, 10*time.Millisecond)
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	rt, err := url.Parse(parsed.Query().Get("return_to"))
	require.NoError(t, err)
	assert.Empty(t, rt.RawQuery)
	openInBrowser(t, u)
	assert.Equal(t, http.StatusOK, <-waiting)
}
