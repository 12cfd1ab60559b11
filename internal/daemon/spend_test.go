package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testenv"
	"github.com/orproxy/orproxy/ledger"
)

// statusDoc reads the daemon's /status.
func (d *daemonUnderTest) statusDoc(t *testing.T) statusdoc.Document {
	t.Helper()
	resp, err := client.Get(d.url + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc statusdoc.Document
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc
}

// TestLedgerRecordsEveryRequest: each request through the daemon is a row
// in the ledger, its cost counts in /status, and the key poller's figures
// are there too.
func TestLedgerRecordsEveryRequest(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	file := filepath.Join(t.TempDir(), "usage.db")
	d := startDaemon(t, env, func(c *config.Config) { c.Usage.File = file })
	const n = 5
	for range n {
		status, body := d.post(t, chatBody)
		require.Equal(t, http.StatusOK, status, body)
	}
	var charged float64
	for _, r := range env.OpenRouter.Requests() {
		if r.Usage != nil {
			charged += r.Usage.Cost
		}
	}
	require.Positive(t, charged)
	require.Eventually(t, func() bool {
		doc := d.statusDoc(t)
		return doc.Ledger != nil && doc.Ledger.Written == n && doc.Credits != nil && !doc.Credits.CheckedAt.IsZero()
	}, 10*time.Second, 20*time.Millisecond, "every row written, the key read")
	doc := d.statusDoc(t)
	assert.Equal(t, file, doc.Ledger.File)
	assert.Zero(t, doc.Ledger.Dropped)
	assert.False(t, doc.Ledger.Failing)
	require.NotNil(t, doc.Spend)
	assert.InDelta(t, charged, doc.Spend.TodayUSD, 1e-9)
	assert.InDelta(t, charged, doc.Spend.MonthUSD, 1e-9)
	assert.Equal(t, &statusdoc.Budget{WarnAt: 0.8}, doc.Budget)

	r, err := ledger.OpenReader(file)
	require.NoError(t, err)
	defer r.Close()
	rep, err := r.Report(context.Background(), ledger.Query{By: ledger.ByEndpoint})
	require.NoError(t, err)
	assert.Equal(t, int64(n), rep.Total.Requests)
	assert.InDelta(t, charged, rep.Total.CostUSD, 1e-9)
	require.Len(t, rep.Groups, 1)
	assert.Equal(t, "chat", rep.Groups[0].Name)
}

// TestUnusableLedgerStillServes: a ledger path the daemon cannot use (a
// directory; a file that is not a database) costs no request; /status says
// why, and the budget counts from memory and still refuses.
func TestUnusableLedgerStillServes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"a directory", func(t *testing.T, path string) { require.NoError(t, os.Mkdir(path, 0o700)) }, "is a directory"},
		{"not a database", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("my notes, not a ledger\n"), 0o600))
		}, "is not a SQLite database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			env.LoginBroker(t)
			path := filepath.Join(t.TempDir(), "usage.db")
			tc.setup(t, path)
			d := startDaemon(t, env, func(c *config.Config) {
				c.Usage.File = path
				c.Budget.DailyUSD = 0.000001 // the first request uses it up
			})
			status, body := d.post(t, chatBody)
			require.Equal(t, http.StatusOK, status, body)

			doc := d.statusDoc(t)
			require.NotNil(t, doc.Ledger)
			assert.Equal(t, path, doc.Ledger.File)
			assert.True(t, doc.Ledger.Failing)
			assert.Contains(t, doc.Ledger.LastError, tc.want)
			assert.Contains(t, doc.Ledger.LastError, "budgets count this run's requests only")
			require.NotNil(t, doc.Spend)
			assert.Positive(t, doc.Spend.TodayUSD)
			assert.Equal(t, "daily", doc.Budget.Exhausted)
			assert.Len(t, d.logs.FilterMessageSnippet("usage ledger: cannot open it").All(), 1, "said once")

			status, body = d.post(t, chatBody)
			assert.Equal(t, http.StatusPaymentRequired, status)
			assert.Contains(t, body, "daily budget is used up")
			if tc.name == "not a database" {
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, "my notes, not a ledger\n", string(b), "left untouched")
			}
		})
	}
}

// TestBudgetRefusalNamesTheConfigFile: the 402 of a used-up budget tells
// which file to edit, and the budget counts what the ledger holds from
// before the start.
func TestBudgetRefusalNamesTheConfigFile(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	file := filepath.Join(t.TempDir(), "usage.db")
	w, err := ledger.Open(file, ledger.Options{})
	require.NoError(t, err)
	w.Add(ledger.Row{Time: time.Now(), Endpoint: "chat", Status: 200, CostUSD: 2.5, CostKnown: true})
	require.NoError(t, w.Close(context.Background()))

	d := startDaemonWith(t, env, Options{ConfigFile: "/etc/orproxy/team.yaml"}, func(c *config.Config) {
		c.Usage.File = file
		c.Budget.DailyUSD = 2
	})
	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusPaymentRequired, status)
	assert.Contains(t, body, "orproxy's daily budget is used up: $2.50 spent today of $2.00")
	assert.Contains(t, body, "raise budget.daily_usd in /etc/orproxy/team.yaml and restart orproxy")
	assert.Zero(t, env.OpenRouter.Count("/api/v1/chat/completions"))
	resp, err := client.Get(d.url + "/api/v1/models")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a GET passes")
}

// TestAttributionFromConfig: the default config names orproxy to
// OpenRouter; attribution.enabled: false does not.
func TestAttributionFromConfig(t *testing.T) {
	for _, on := range []bool{true, false} {
		env := testenv.New(t, testenv.Options{})
		env.LoginBroker(t)
		d := startDaemon(t, env, func(c *config.Config) { c.Attribution.Enabled = on })
		status, _ := d.post(t, chatBody)
		require.Equal(t, http.StatusOK, status)
		var got http.Header
		for _, r := range env.OpenRouter.Requests() {
			if r.Path == "/api/v1/chat/completions" {
				got = r.Header
			}
		}
		require.NotNil(t, got)
		if on {
			assert.Equal(t, "https://github.com/orproxy/orproxy", got.Get("HTTP-Referer"))
			assert.Equal(t, "orproxy", got.Get("X-Title"))
		} else {
			assert.Empty(t, got.Get("HTTP-Referer"))
			assert.Empty(t, got.Get("X-Title"))
		}
	}
}

// TestShutdownFlushesTheLedger: the rows of requests answered just before
// the stop are in the file once Run returns.
func TestShutdownFlushesTheLedger(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	file := filepath.Join(t.TempDir(), "usage.db")
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = env.UpstreamURL
	cfg.Broker.URL = env.BrokerURL
	cfg.Credentials.File = env.Store.Path()
	cfg.Credentials.ValidateOnStart = false
	cfg.Usage.File = file
	before := goleak.IgnoreCurrent()
	core, _ := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: zap.New(core), DrainTimeout: 2 * time.Second, Ready: func(a net.Addr) { ready <- a }})
	}()
	var url string
	select {
	case a := <-ready:
		url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(url+"/api/v1/chat/completions", "application/json", strings.NewReader(chatBody))
			if assert.NoError(t, err) {
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	client.CloseIdleConnections()
	goleak.VerifyNone(t, before, ignoreFakeServers)

	r, err := ledger.OpenReader(file)
	require.NoError(t, err)
	defer r.Close()
	rep, err := r.Report(context.Background(), ledger.Query{By: ledger.ByClient})
	require.NoError(t, err)
	assert.Equal(t, int64(n), rep.Total.Requests)
}
