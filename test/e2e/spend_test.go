package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/ledger" // also registers the sqlite driver
)

// addConfig appends YAML to the stack's config file, before the proxy starts.
func (s *stack) addConfig(yaml string) {
	s.t.Helper()
	f, err := os.OpenFile(s.configFile, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(s.t, err)
	_, err = f.WriteString(yaml)
	require.NoError(s.t, err)
	require.NoError(s.t, f.Close())
}

// statusDoc is the daemon's /status.
func (s *stack) statusDoc() statusdoc.Document {
	s.t.Helper()
	resp, err := httpClient.Get(s.proxyURL + "/status")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var doc statusdoc.Document
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc
}

// chat sends one small chat completion through the proxy, as a client
// without a key does, and returns the status and body.
func (s *stack) chat() (int, string, error) {
	resp, err := httpClient.Post(s.proxyURL+"/api/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// keyUsage is what the fake charged the stored key in all.
func (s *stack) keyUsage() float64 {
	s.t.Helper()
	keys, err := s.openrouter.Keys(s.ctx())
	require.NoError(s.t, err)
	for _, k := range keys {
		if k.Key == s.storedKey() {
			return k.Usage
		}
	}
	s.t.Fatal("the stored key is unknown to the fake")
	return 0
}

// TestThousandRequestsThousandRows: 1,000 requests through the binary with
// the default config are 1,000 rows in the default ledger, whose costs add
// up to what the fake OpenRouter charged.
func TestThousandRequestsThousandRows(t *testing.T) {
	const n, workers = 1000, 16
	s := newStack(t)
	s.login()
	s.startProxy()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				status, body, err := s.chat()
				if err != nil || status != http.StatusOK {
					failed.Add(1)
					t.Errorf("status %d, %v: %s", status, err, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failed.Load())

	require.Eventually(t, func() bool {
		doc := s.statusDoc()
		return doc.Ledger != nil && doc.Ledger.Written >= n
	}, 30*time.Second, 50*time.Millisecond, "the ledger writes every row within its flush interval")
	doc := s.statusDoc()
	file := filepath.Join(s.home, ".local", "share", "orproxy", "usage.db")
	assert.Equal(t, file, doc.Ledger.File, "the default place, under XDG_DATA_HOME")
	assert.EqualValues(t, n, doc.Ledger.Written)
	assert.Zero(t, doc.Ledger.Dropped)
	charged := s.keyUsage()
	require.Positive(t, charged)
	assert.InDelta(t, charged, doc.Spend.TodayUSD, 1e-6)

	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	r, err := ledger.OpenReader(file)
	require.NoError(t, err)
	defer r.Close()
	rep, err := r.Report(context.Background(), ledger.Query{By: ledger.ByClient})
	require.NoError(t, err)
	assert.EqualValues(t, n, rep.Total.Requests)
	assert.Zero(t, rep.Total.Errors)
	assert.Zero(t, rep.Total.UnknownCost)
	assert.InDelta(t, charged, rep.Total.CostUSD, 1e-6)
	assert.Positive(t, rep.Total.WebSearches, "the injected tool searched, and was billed")
	require.Len(t, rep.Groups, 1)
	assert.Equal(t, "other", rep.Groups[0].Name, "Go's client is no known family")
}

// TestUnusableLedgerKeepsServing: tests run as root, so a read-only
// directory would not stop them; a ledger path that is a directory, or a
// file that is not a database, is what the daemon cannot use. Requests go
// on at 200 and /status.ledger says why.
func TestUnusableLedgerKeepsServing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(path string) error
		wants []string
	}{
		{"a directory", func(path string) error { return os.MkdirAll(path, 0o700) }, []string{"is a directory"}},
		{"not a database", func(path string) error { return os.WriteFile(path, []byte("not a database\n"), 0o600) },
			[]string{"is not a SQLite database", "it was left untouched"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			path := filepath.Join(s.home, "usage.db")
			require.NoError(t, tc.make(path))
			s.addConfig("usage:\n  file: " + path + "\n")
			s.login()
			s.startProxy()
			for range 3 {
				status, body, err := s.chat()
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, status, body)
			}
			doc := s.statusDoc()
			require.NotNil(t, doc.Ledger)
			assert.Equal(t, path, doc.Ledger.File)
			assert.True(t, doc.Ledger.Failing)
			for _, w := range append(tc.wants, "requests are served but not recorded, and budgets count this run's requests only") {
				assert.Contains(t, doc.Ledger.LastError, w)
			}
			require.NotNil(t, doc.Spend)
			assert.InDelta(t, s.keyUsage(), doc.Spend.TodayUSD, 1e-9, "counted in memory")
			assert.Contains(t, s.proxy.Output(), "usage ledger: cannot open it")
		})
	}
}

// TestKilledDuringWritesLeavesAGoodLedger: SIGKILL while rows are being
// written leaves a database that opens, passes SQLite's integrity check,
// and holds every request answered more than a second before the kill.
func TestKilledDuringWritesLeavesAGoodLedger(t *testing.T) {
	s := newStack(t)
	file := filepath.Join(s.home, "usage.db")
	s.addConfig("usage:\n  file: " + file + "\n")
	s.login()
	s.startProxy()

	var mu sync.Mutex
	var answered []time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, _, err := s.chat()
				if err != nil {
					return // the proxy is gone
				}
				if status == http.StatusOK {
					mu.Lock()
					answered = append(answered, time.Now())
					mu.Unlock()
				}
			}
		}()
	}
	// Let rows pile up and be written for a few flush intervals, then kill
	// mid-stride.
	started := time.Now()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= 300 && time.Since(started) >= 3*time.Second
	}, 60*time.Second, 10*time.Millisecond)
	killedAt := time.Now()
	require.NoError(t, s.proxy.cmd.Process.Kill())
	close(stop)
	wg.Wait()
	<-s.proxy.done

	mu.Lock()
	var before int64
	for _, at := range answered {
		if at.Before(killedAt.Add(-time.Second)) {
			before++
		}
	}
	total := int64(len(answered))
	mu.Unlock()

	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var check string
	require.NoError(t, db.QueryRow("PRAGMA integrity_check").Scan(&check))
	assert.Equal(t, "ok", check)

	r, err := ledger.OpenReader(file)
	require.NoError(t, err, "the ledger opens after a SIGKILL")
	defer r.Close()
	rep, err := r.Report(context.Background(), ledger.Query{By: ledger.ByClient})
	require.NoError(t, err)
	t.Logf("answered %d, %d of them more than 1 s before the kill; %d rows in the ledger", total, before, rep.Total.Requests)
	require.Positive(t, before)
	assert.GreaterOrEqual(t, rep.Total.Requests, before, "rows at most about a second behind")
	assert.LessOrEqual(t, rep.Total.Requests, total+8, "no row without a request (8 may have been in flight)")
}

// TestBudgetRefusalEndToEnd: a used-up daily budget refuses the next
// completion with 402 naming the setting and the config file, lets GETs
// through, and stays used up across a restart (the ledger holds the spend).
func TestBudgetRefusalEndToEnd(t *testing.T) {
	s := newStack(t)
	s.addConfig("budget:\n  daily_usd: 0.0001\n")
	s.login()
	s.startProxy()
	status, body, err := s.chat()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, body)

	check := func() {
		status, body, err := s.chat()
		require.NoError(t, err)
		assert.Equal(t, http.StatusPaymentRequired, status)
		var e struct {
			Error struct {
				Code    int
				Message string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		assert.Equal(t, 402, e.Error.Code)
		assert.Contains(t, e.Error.Message, "orproxy's daily budget is used up")
		assert.Contains(t, e.Error.Message, "spent today of $0.0001. It resets at midnight")
		assert.Contains(t, e.Error.Message, "to spend more now, raise budget.daily_usd in ")

		resp, err := httpClient.Get(s.proxyURL + "/v1/models")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "GET /models passes")
		doc := s.statusDoc()
		require.NotNil(t, doc.Budget)
		assert.Equal(t, "daily", doc.Budget.Exhausted)
		assert.Equal(t, 0.0001, doc.Budget.DailyUSD)
	}
	check()
	assert.Len(t, s.chatRequests(), 1, "the refused request never reached OpenRouter")
	assert.Contains(t, s.proxy.Output(), "the daily budget is used up")

	// Restarted, the daemon reads today's spend back from the ledger.
	require.NoError(t, s.proxy.cmd.Process.Signal(os.Interrupt))
	<-s.proxy.done
	s.startProxy()
	check()
	assert.Len(t, s.chatRequests(), 1)
}

// TestKeyLimitIsExplained: OpenRouter's 402 for a key at its limit reaches
// the client with orproxy's sentence, and the daemon reads the key's limit
// again for /status.
func TestKeyLimitIsExplained(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	zero := 0.0
	_, err := s.openrouter.SetKeyLimit(s.ctx(), s.storedKey(), openrouter.KeyLimit{Limit: &zero, Reset: "monthly"})
	require.NoError(t, err)
	status, body, err := s.chat()
	require.NoError(t, err)
	assert.Equal(t, http.StatusPaymentRequired, status)
	assert.Contains(t, body, `Key limit exceeded (monthly limit). Manage it using https://openrouter.ai/settings/keys (orproxy: this is the credit limit set on the OpenRouter key orproxy uses, not an orproxy budget; run `+"`orproxy status`"+` to see the key's limit and usage)`)
	assert.Contains(t, body, `"limit_source":"openrouter_key_limit"`)
	require.Eventually(t, func() bool {
		c := s.statusDoc().Credits
		return c != nil && c.Limit != nil && *c.Limit == 0 && c.LimitReset == "monthly"
	}, 30*time.Second, 100*time.Millisecond, "the 402 made the daemon read the key's limit")
}
