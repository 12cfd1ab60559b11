package login

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
)

func statelessOpts(t *testing.T, f *fakes, headers ...string) Options {
	opts := brokerOpts(t, f, headers...)
	opts.ReturnToWithoutState = true
	return opts
}

// A broker that matches return_to exactly takes the callback address when
// it carries no query; the callback server then takes one code, and only
// one, within the timeout.
func TestLoginBrokerReturnToWithoutState(t *testing.T) {
	f := newFakes(t, broker.Options{ExactReturnTo: true})
	// The exchange is slow, so a second callback arrives while the first is
	// in use, on a loaded machine too (the broker client's timeout is 2 s).
	f.broker.SetFault(broker.Fault{Endpoint: "exchange", Delay: 1200 * time.Millisecond})
	store := newTestStore(t)
	run := startLogin(t, store, statelessOpts(t, f))
	start := run.stdout.waitFor(t, urlLine)
	rt := returnTo(t, start)
	assert.Equal(t, "http://127.0.0.1:"+rt.Port()+"/callback", rt.String(), "return_to has no query")
	assert.NotContains(t, run.stderr.String(), "return_to_state", "no hint when the broker takes return_to")

	// Not a login answer: refused, and the login waits on.
	status, page := newBrowser().get(t, rt.String())
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, page, "no code")
	assert.True(t, run.running())

	// The broker's code, with a state the broker added of its own: the
	// login sent none, so there is none to check.
	resp, err := noFollow.Get(start)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/callback\?code=`, loc)
	first := make(chan int, 1)
	go func() {
		resp, err := newBrowser().client.Get(loc + "&state=the-brokers-own")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return f.broker.Stats().ExchangeCalls == 1 }, 10*time.Second, 2*time.Millisecond)
	// A second code while the first is in use is refused.
	status, page = newBrowser().get(t, rt.String()+"?code=a-second-code")
	assert.Equal(t, http.StatusConflict, status)
	assert.Contains(t, page, "already received")
	assert.Equal(t, http.StatusOK, <-first)

	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, f.broker.Stats().CurrentKey.Key, cred.APIKey.Reveal())
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)
	_, err = newBrowser().client.Get(rt.String() + "?code=late")
	assert.Error(t, err, "closed after the good code")
}

// Without a state, the address the browser ended on can be pasted too.
func TestLoginBrokerReturnToWithoutStatePasted(t *testing.T) {
	f := newFakes(t, broker.Options{ExactReturnTo: true})
	opts := statelessOpts(t, f)
	opts.Paste = true
	run := startLogin(t, newTestStore(t), opts)
	resp, err := noFollow.Get(run.stdout.waitFor(t, urlLine))
	require.NoError(t, err)
	resp.Body.Close()
	_, err = io.WriteString(run.stdin, resp.Header.Get("Location")+"\n")
	require.NoError(t, err)
	_, err = run.wait(t)
	require.NoError(t, err)
}

// The same broker refuses the default return_to, which carries ?state=: the
// browser shows its refusal, and the login says what cures it.
func TestLoginBrokerRefusesReturnToWithState(t *testing.T) {
	f := newFakes(t, broker.Options{ExactReturnTo: true})
	opts := brokerOpts(t, f)
	opts.Timeout = 300 * time.Millisecond
	run := startLogin(t, newTestStore(t), opts)
	start := run.stdout.waitFor(t, urlLine)
	run.stderr.waitFor(t, regexp.MustCompile(`set broker\.return_to_state: false`))
	assert.Contains(t, run.stderr.String(), "The broker answered 400 Bad Request to the start address.")

	status, page := newBrowser().get(t, start)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, page, broker.ReturnToRefusal)
	_, err := run.wait(t)
	assert.ErrorContains(t, err, "no answer from the browser")

	// With start headers orproxy makes the start request itself: the
	// refusal is the login's error, with the same advice.
	f = newFakes(t, broker.Options{ExactReturnTo: true, StartHeaders: []string{"X-Device: d1"}})
	_, err = Run(context.Background(), newTestStore(t), brokerOpts(t, f, "X-Device: d1"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broker start: 400 Bad Request: "+broker.ReturnToRefusal)
	assert.Contains(t, err.Error(), "set broker.return_to_state: false")

	// Without the state it goes through, the redirect followed by orproxy.
	store := newTestStore(t)
	_, err = Run(context.Background(), store, statelessOpts(t, f, "X-Device: d1"))
	require.NoError(t, err)
	_, err = store.Load()
	require.NoError(t, err)
}

// OpenRouter's login names the key it issues (key_label), so the user can
// tell it apart in OpenRouter's settings; the credential keeps that name.
func TestLoginOpenRouterKeyLabel(t *testing.T) {
	f := newFakes(t, broker.Options{})
	run := startLogin(t, newTestStore(t), Options{Method: MethodOpenRouter, Upstream: f.orURL})
	authURL := run.stdout.waitFor(t, urlLine)
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	assert.Equal(t, DefaultKeyLabel(), u.Query().Get("key_label"))
	assert.True(t, strings.HasPrefix(DefaultKeyLabel(), "orproxy on "), DefaultKeyLabel())
	status, _ := newBrowser().get(t, authURL)
	require.Equal(t, http.StatusOK, status)
	cred, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, DefaultKeyLabel(), cred.KeyLabel)

	// Headless mode, where OpenRouter's guide shows the parameter, with a
	// label of the caller's choosing.
	run = startLogin(t, newTestStore(t), Options{Method: MethodOpenRouter, Upstream: f.orURL, Headless: true, KeyLabel: "orproxy on build-box"})
	u, err = url.Parse(run.stdout.waitFor(t, urlLine))
	require.NoError(t, err)
	assert.Equal(t, "orproxy on build-box", u.Query().Get("key_label"))
	require.NoError(t, run.stdin.Close())
	_, err = run.wait(t)
	assert.Error(t, err)
}

func TestKeyLabelIsBounded(t *testing.T) {
	assert.Equal(t, "orproxy on hostevil", keyLabel("orproxy on host\x1b\nevil\r"))
	long := keyLabel("orproxy on " + strings.Repeat("é", 200))
	assert.Equal(t, maxKeyLabel, utf8.RuneCountInString(long))
	assert.True(t, utf8.ValidString(long))
}
