package ledger

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	// The SIGKILL test runs this binary again as the process it kills.
	if path := os.Getenv(killHelperEnv); path != "" {
		runKillHelper(path)
		return
	}
	goleak.VerifyTestMain(m)
}

// testPath is a ledger path in a fresh directory that does not exist yet.
func testPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "data", "orproxy", "usage.db")
}

// openTest opens a ledger that is closed when the test ends.
func openTest(t *testing.T, path string, opts Options) *Writer {
	t.Helper()
	w, err := Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// observed is a logger whose lines the test can read.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// rawDB opens the file with plain SQLite, as a user's sqlite3 would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	uri, err := fileURI(path)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	var n int
	require.NoError(t, rawDB(t, path).QueryRow("SELECT count(*) FROM requests").Scan(&n))
	return n
}

func flush(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, w.Flush(ctx))
}

// eventually polls cond until it holds or 30 s pass.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sampleRow is a full row, every field set.
func sampleRow(t time.Time) Row {
	return Row{
		Time: t, Endpoint: "chat", Model: "openrouter/auto", ModelServed: "anthropic/claude-sonnet-4",
		Provider: "Anthropic", GenerationID: "gen-123", Status: 200, Streamed: true, Retried: true,
		ResentWithoutTool: true, ToolInjected: true, PromptTokens: 100, CompletionTokens: 20,
		CachedTokens: 50, ReasoningTokens: 7, CostUSD: 0.0125, CostKnown: true, WebSearches: 2,
		Duration: 1500 * time.Millisecond, TTFB: 300 * time.Millisecond, Client: "opencode",
	}
}
