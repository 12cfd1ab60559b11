package login

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testenv"
)

const testKey = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

// fakes is a fake OpenRouter and a fake broker that mints keys there.
type fakes struct {
	or        *openrouter.Server
	orURL     string // API base, …/api/v1
	broker    *broker.Server
	brokerURL string
}

func newFakes(t *testing.T, opts broker.Options) *fakes {
	t.Helper()
	env := testenv.New(t, testenv.Options{Broker: opts})
	return &fakes{or: env.OpenRouter, orURL: env.UpstreamURL, broker: env.Broker, brokerURL: env.BrokerURL}
}

func (f *fakes) client(t *testing.T, headers ...string) *auth.BrokerClient {
	t.Helper()
	bc, err := auth.NewBrokerClient(f.brokerURL, headers, 2*time.Second, nil)
	require.NoError(t, err)
	return bc
}

// keyStatus is what the fake OpenRouter answers to GET /key with key.
func (f *fakes) keyStatus(t *testing.T, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.orURL+"/key", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

var testHTTP = &http.Client{Timeout: 5 * time.Second}

var noFollow = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestStore(t *testing.T) *auth.Store {
	return auth.NewStore(filepath.Join(t.TempDir(), "orproxy", "credentials.json"))
}
