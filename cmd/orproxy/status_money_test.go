package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testenv"
	"github.com/orproxy/orproxy/ledger"
)

// moneyDaemon answers /status with doc, as a running daemon would.
func moneyDaemon(t *testing.T, doc statusdoc.Document) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// With a daemon, the money line is its word on the key's limit and the
// ledger's spend; the exit code stays the credential's.
func TestStatusMoneyFromTheDaemon(t *testing.T) {
	limit, left := 20.0, 3.42
	tests := []struct {
		name string
		doc  statusdoc.Document
		want string
	}{
		{
			name: "limit and spend",
			doc: statusdoc.Document{
				Credits: &statusdoc.Credits{Limit: &limit, LimitRemaining: &left, LimitReset: "monthly", CheckedAt: time.Now()},
				Spend:   &statusdoc.Spend{TodayUSD: 1.1, MonthUSD: 8.2},
			},
			want: "key limit $20.00, $3.42 left, resets monthly; spent today $1.10 (this month $8.20)",
		},
		{
			name: "no limit",
			doc: statusdoc.Document{
				Credits: &statusdoc.Credits{CheckedAt: time.Now()},
				Spend:   &statusdoc.Spend{TodayUSD: 0.25, MonthUSD: 0.25},
			},
			want: "no key limit; spent today $0.25 (this month $0.25)",
		},
		{
			name: "not asked yet and no ledger",
			want: "key limit unknown (OpenRouter not asked yet)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			env.StoreKey(t, auth.SourceManual)
			tt.doc.Version = "test"
			tt.doc.Credential = statusdoc.Credential{LoggedIn: true, Usable: true, Key: "sk-or-v1-…a1b2"}
			cfg := configFor(t, env, "listen: "+moneyDaemon(t, tt.doc)+"\n")

			code, out, errOut := run(t, "--config", cfg, "status")
			assert.Equal(t, exitOK, code, errOut)
			assert.Regexp(t, `(?m)^Money +`+regexp.QuoteMeta(tt.want)+`$`, out)

			code, rep, errOut := statusOf(t, cfg)
			assert.Equal(t, exitOK, code, errOut)
			assert.True(t, rep.Daemon.Answering)
			assert.Equal(t, tt.want, rep.Money)
		})
	}
}

// Without a daemon the ledger says what was spent today and this month, in
// the local day; the exit code stays the credential's.
func TestStatusMoneyWithoutADaemon(t *testing.T) {
	fixUsageClock(t)
	env := testenv.New(t, testenv.Options{})
	env.StoreKey(t, auth.SourceManual)
	dir := t.TempDir()

	path := filepath.Join(dir, "usage.db")
	fillLedger(t, path, []ledger.Row{
		{Time: at(1, 0, 0), Endpoint: "chat", Status: 200, CostUSD: 1, CostKnown: true},
		{Time: at(23, 0, 0), Endpoint: "chat", Status: 200, CostUSD: 0.25, CostKnown: true, WebSearches: 2},
		{Time: at(23, 11, 0), Endpoint: "chat", Status: 200, CostUSD: 0.05, CostKnown: true},
		{Time: at(23, 11, 30), Endpoint: "chat", Status: 502},
		// The 31st of October, 23:30 CET: October locally, though in UTC
		// it is still the 31st too; an hour later it is November here.
		{Time: time.Date(2026, 10, 31, 23, 30, 0, 0, usageZone), Endpoint: "chat", Status: 200, CostUSD: 5, CostKnown: true},
	})
	tests := []struct {
		name, usage, want string
	}{
		{
			name: "ledger", usage: "usage: {file: " + path + "}\n",
			want: "spent today $0.30 (this month $1.30), 2 web searches today; 1 answer today reported no cost (from the ledger); the key's limit shows while the daemon runs",
		},
		{
			name: "no ledger yet", usage: "usage: {file: " + filepath.Join(dir, "none.db") + "}\n",
			want: "nothing recorded yet; the key's limit shows while the daemon runs",
		},
		{
			name: "no ledger kept", usage: "usage: {enabled: false, file: " + filepath.Join(dir, "none.db") + "}\n",
			want: "not recorded (usage.enabled is off); the key's limit shows while the daemon runs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configFor(t, env, tt.usage)
			code, out, errOut := run(t, "--config", cfg, "status")
			assert.Equal(t, exitOK, code, errOut)
			assert.Regexp(t, `(?m)^Money +`+regexp.QuoteMeta(tt.want)+`$`, out)
			code, rep, errOut := statusOf(t, cfg)
			assert.Equal(t, exitOK, code, errOut)
			assert.Equal(t, tt.want, rep.Money)
		})
	}

	// Not logged in: still exit 1, the money line still shown.
	_, err := env.Store.Remove(t.Context())
	require.NoError(t, err)
	code, out, errOut := run(t, "--config", configFor(t, env, "usage: {file: "+path+"}\n"), "status")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "not logged in")
	assert.Contains(t, out, "Money")
}
