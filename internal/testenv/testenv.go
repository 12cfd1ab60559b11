// Package testenv starts the fake OpenRouter and the fake broker on loopback
// for tests, with a credential file in a temporary directory.
package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// Env is a fake OpenRouter, a fake broker that mints its keys there, and a
// credential store.
type Env struct {
	OpenRouter *openrouter.Server
	// UpstreamURL is the fake's API base, like https://openrouter.ai/api/v1.
	UpstreamURL string
	Broker      *broker.Server
	BrokerURL   string
	Store       *auth.Store
}

// Options tune the fakes.
type Options struct {
	OpenRouter openrouter.Options
	Broker     broker.Options
	// WrapIssuer, if set, wraps how the broker mints keys at the fake
	// OpenRouter, e.g. to make it issue keys OpenRouter rejects.
	WrapIssuer func(broker.KeyIssuer) broker.KeyIssuer
}

// New starts the fakes; they stop when the test ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	or := openrouter.New(opts.OpenRouter)
	orSrv := httptest.NewServer(or.Handler())
	t.Cleanup(orSrv.Close)
	opts.Broker.Issuer = broker.ServerIssuer(or)
	if opts.WrapIssuer != nil {
		opts.Broker.Issuer = opts.WrapIssuer(opts.Broker.Issuer)
	}
	b, err := broker.New(opts.Broker)
	require.NoError(t, err)
	bSrv := httptest.NewServer(b.Handler())
	t.Cleanup(bSrv.Close)
	return &Env{
		OpenRouter:  or,
		UpstreamURL: orSrv.URL + "/api/v1",
		Broker:      b,
		BrokerURL:   bSrv.URL,
		Store:       auth.NewStore(filepath.Join(t.TempDir(), "orproxy", "credentials.json")),
	}
}

// BrokerClient returns a client for the fake broker.
func (e *Env) BrokerClient(t testing.TB, timeout time.Duration) *auth.BrokerClient {
	t.Helper()
	c, err := auth.NewBrokerClient(e.BrokerURL, nil, timeout, nil)
	require.NoError(t, err)
	return c
}

// LoginBroker does what `orproxy login` does through the broker, with the
// test as the browser, and stores the credential.
func (e *Env) LoginBroker(t testing.TB) *auth.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bc := e.BrokerClient(t, 5*time.Second)
	start, err := bc.StartURL(ctx, "http://127.0.0.1:1/callback?state=test")
	require.NoError(t, err)
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(start)
	require.NoError(t, err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	code := loc.Query().Get("code")
	require.NotEmpty(t, code, "the fake broker redirected without a code: %s", resp.Header.Get("Location"))
	answer, err := bc.Exchange(ctx, secret.New(code))
	require.NoError(t, err)
	cred := answer.Credential(e.BrokerURL)
	require.NoError(t, e.Store.Save(ctx, cred))
	return cred
}

// StoreKey stores a credential of the given source holding key, valid at the fake.
func (e *Env) StoreKey(t testing.TB, source auth.Source) *auth.Credential {
	t.Helper()
	info := e.OpenRouter.IssueKey("", nil)
	cred := &auth.Credential{Source: source, APIKey: secret.New(info.Key), KeyHash: info.Hash, KeyLabel: info.Label}
	require.NoError(t, e.Store.Save(context.Background(), cred))
	return cred
}

// Stored reads the credential file.
func (e *Env) Stored(t testing.TB) *auth.Credential {
	t.Helper()
	c, err := e.Store.Load()
	require.NoError(t, err)
	return c
}
