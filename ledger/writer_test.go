package ledger

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestThousandRowsAreAllWrittenByClose(t *testing.T) {
	path := testPath(t)
	w, err := Open(path, Options{})
	require.NoError(t, err)
	base := time.Now()
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range 100 {
				w.Add(sampleRow(base.Add(time.Duration(g*100+i) * time.Millisecond)))
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close(context.Background()))
	st := w.Status()
	assert.Equal(t, uint64(1000), st.Written)
	assert.Zero(t, st.Dropped)
	assert.Equal(t, 1000, countRows(t, path))
}

func TestRowIsStoredColumnByColumn(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{})
	at := time.Date(2026, 11, 23, 10, 15, 30, 123456789, time.FixedZone("X", 3600))
	w.Add(sampleRow(at))
	unknown := Row{Time: at, Endpoint: "messages", Model: "m", Status: 502, Client: "curl"}
	w.Add(unknown)
	cut := Row{Time: at, Endpoint: "responses", Model: "m", Status: 200, Error: true, CostUSD: 9, Client: "other"}
	w.Add(cut)
	flush(t, w)

	rows, err := rawDB(t, path).Query(`SELECT ts_ms, time, endpoint, model, model_served, provider, generation_id,
		status, streamed, retried, resent_without_tool, tool_injected, prompt_tokens, completion_tokens,
		cached_tokens, reasoning_tokens, cost_usd, web_searches, duration_ms, ttfb_ms, client, error
		FROM requests ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var got [][]any
	for rows.Next() {
		vals := make([]any, 22)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		got = append(got, vals)
	}
	require.NoError(t, rows.Err())
	ms := at.UnixMilli()
	assert.Equal(t, [][]any{
		{ms, "2026-11-23T09:15:30.123Z", "chat", "openrouter/auto", "anthropic/claude-sonnet-4", "Anthropic", "gen-123",
			int64(200), int64(1), int64(1), int64(1), int64(1), int64(100), int64(20), int64(50), int64(7), 0.0125, int64(2), int64(1500), int64(300), "opencode", int64(0)},
		// No cost: NULL, not 0. No first byte: NULL. A 502 is an error.
		{ms, "2026-11-23T09:15:30.123Z", "messages", "m", "", "", "", int64(502), int64(0), int64(0), int64(0), int64(0),
			int64(0), int64(0), int64(0), int64(0), nil, int64(0), int64(0), nil, "curl", int64(1)},
		// A cut stream is an error though its status was 200; an unknown cost stays unknown whatever CostUSD says.
		{ms, "2026-11-23T09:15:30.123Z", "responses", "m", "", "", "", int64(200), int64(0), int64(0), int64(0), int64(0),
			int64(0), int64(0), int64(0), int64(0), nil, int64(0), int64(0), nil, "other", int64(1)},
	}, got)
}

func TestZeroTimeIsTheTimeOfWriting(t *testing.T) {
	path := testPath(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := openTest(t, path, Options{Now: func() time.Time { return at }})
	w.Add(Row{Endpoint: "chat", Status: 200})
	flush(t, w)
	var ts int64
	require.NoError(t, rawDB(t, path).QueryRow("SELECT ts_ms FROM requests").Scan(&ts))
	assert.Equal(t, at.UnixMilli(), ts)
}

// lockDB holds the database's write lock from another connection, as a
// sqlite3 shell in a transaction would, until the returned func is called.
func lockDB(t *testing.T, path string) (release func()) {
	t.Helper()
	conn, err := rawDB(t, path).Conn(context.Background())
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, err := conn.ExecContext(context.Background(), "COMMIT")
			assert.NoError(t, err)
			assert.NoError(t, conn.Close())
		})
	}
	t.Cleanup(release)
	return release
}

func TestFullQueueDropsAndCountsWithoutBlocking(t *testing.T) {
	path := testPath(t)
	log, logs := observed()
	const queue, batch = 16, 8
	w := openTest(t, path, Options{QueueSize: queue, MaxBatch: batch, BusyTimeout: time.Minute, Logger: log})
	release := lockDB(t, path) // the writer blocks on its first batch

	const total = 10000
	added := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := range total {
			w.Add(sampleRow(time.UnixMilli(int64(i))))
		}
		added <- time.Since(start)
	}()
	select {
	case d := <-added:
		t.Logf("%d rows added in %v while the writer was blocked", total, d)
	case <-time.After(10 * time.Second):
		t.Fatal("Add blocked on a full queue")
	}
	st := w.Status()
	assert.GreaterOrEqual(t, st.Dropped, uint64(total-queue-batch), "rows beyond the queue and the batch in hand are dropped")
	assert.Equal(t, 1, logs.FilterMessageSnippet("queue full").Len(), "one warning per episode, not per row")

	release()
	flush(t, w)
	st = w.Status()
	assert.Equal(t, uint64(total), st.Written+st.Dropped, "every row is written or counted as dropped")
	assert.Positive(t, st.Written)
	assert.Equal(t, int(st.Written), countRows(t, path))
	assert.Equal(t, 1, logs.FilterMessageSnippet("room again").Len())

	// A second episode warns again.
	release = lockDB(t, path)
	for i := range total {
		w.Add(sampleRow(time.UnixMilli(int64(i))))
	}
	release()
	flush(t, w)
	assert.Equal(t, 2, logs.FilterMessageSnippet("queue full").Len())
}

func TestBrokenDatabaseDropsCountsAndRecovers(t *testing.T) {
	path := testPath(t)
	log, logs := observed()
	w := openTest(t, path, Options{Logger: log})
	w.Add(sampleRow(time.Now()))
	flush(t, w)

	// The ledger is moved away and a directory takes its name: the open
	// file is no longer the ledger, and the path cannot become one.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		require.NoError(t, os.Rename(path+suffix, path+".old"+suffix))
	}
	require.NoError(t, os.Mkdir(path, 0o700))
	for range 3 { // three batches, three failures, one warning
		w.Add(sampleRow(time.Now()))
		w.Add(sampleRow(time.Now()))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.Flush(ctx)
		cancel()
		require.ErrorIs(t, err, ErrNotLedger)
	}
	st := w.Status()
	assert.Equal(t, uint64(6), st.Dropped)
	assert.Equal(t, uint64(1), st.Written)
	assert.True(t, st.Failing)
	assert.Contains(t, st.LastError, path)
	assert.Contains(t, st.LastError, "is a directory")
	assert.False(t, st.LastErrorAt.IsZero())
	assert.Equal(t, 1, logs.FilterMessageSnippet("cannot write").Len())
	_, err := w.SpendSince(context.Background(), time.Now(), time.Now())
	assert.ErrorContains(t, err, "is a directory", "queries say why the ledger is unavailable")

	// The disk "recovers": the next batch opens a new ledger there.
	require.NoError(t, os.Remove(path))
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	st = w.Status()
	assert.False(t, st.Failing)
	assert.Equal(t, uint64(2), st.Written)
	assert.Equal(t, uint64(6), st.Dropped)
	assert.NotEmpty(t, st.LastError, "the last error stays for /status, dated")
	assert.Equal(t, 1, countRows(t, path))
	assert.Equal(t, 1, countRows(t, path+".old"))
	assert.Equal(t, 1, logs.FilterMessageSnippet("writing again").Len())
}

func TestDeletedLedgerIsCreatedAgain(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{})
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	// A user deletes the ledger to start afresh while the daemon runs.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		require.NoError(t, os.Remove(p))
	}
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	assert.Equal(t, 1, countRows(t, path), "the row went to a file on disk, not the deleted one")
	assert.Zero(t, w.Status().Dropped)
}

func TestFullDiskDropsCountsAndRecovers(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{MaxBatch: 100, FlushInterval: time.Hour}) // one batch each
	// The writer's only connection may not grow the file: SQLite answers
	// SQLITE_FULL exactly as on a full disk.
	w.mu.Lock()
	db := w.db
	w.mu.Unlock()
	var pages int
	require.NoError(t, db.QueryRow("PRAGMA page_count").Scan(&pages))
	_, err := db.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages))
	require.NoError(t, err)

	for range 100 {
		w.Add(sampleRow(time.Now()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.ErrorContains(t, w.Flush(ctx), "full")
	st := w.Status()
	assert.Equal(t, uint64(100), st.Dropped)
	assert.Contains(t, st.LastError, "full")
	assert.True(t, st.Failing)

	// The next batch, as large, opens the database again (the space is
	// back) and goes through.
	for range 100 {
		w.Add(sampleRow(time.Now()))
	}
	flush(t, w)
	st = w.Status()
	assert.Equal(t, uint64(100), st.Written)
	assert.Equal(t, uint64(100), st.Dropped)
	assert.False(t, st.Failing)
	assert.Equal(t, 100, countRows(t, path), "the failed batch left nothing half-written")
}

func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	path := testPath(t)
	w, err := Open(path, Options{BusyTimeout: time.Minute})
	require.NoError(t, err)
	release := lockDB(t, path)
	defer release()
	for range 10 {
		w.Add(sampleRow(time.Now()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "10 dropped")
	assert.Less(t, time.Since(start), 10*time.Second, "a locked database does not hold Close for the busy timeout")
	assert.Equal(t, uint64(10), w.Status().Dropped)
	assert.NoError(t, w.Close(context.Background()), "a second Close is harmless")
}

func TestAddAfterCloseIsDroppedAndCounted(t *testing.T) {
	path := testPath(t)
	w, err := Open(path, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))
	w.Add(sampleRow(time.Now()))
	assert.Equal(t, uint64(1), w.Status().Dropped)
	assert.Error(t, w.Flush(context.Background()))
	_, err = w.SpendSince(context.Background(), time.Now(), time.Now())
	assert.ErrorContains(t, err, "closed")
}

func TestNilWriterIsALedgerTurnedOff(t *testing.T) {
	var w *Writer
	w.Add(sampleRow(time.Now()))
	assert.NoError(t, w.Flush(context.Background()))
	assert.Equal(t, Status{}, w.Status())
	assert.NoError(t, w.Close(context.Background()))
}

func TestFlushIntervalWritesWithoutFlush(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{FlushInterval: 50 * time.Millisecond})
	w.Add(sampleRow(time.Now()))
	eventually(t, func() bool { return w.Status().Written == 1 }, "the row to be written by the ticker")
	assert.Equal(t, 1, countRows(t, path))
}

// A batch goes in as whole chunks of insertChunk rows plus one statement
// for the rest; every size around a chunk's edge must store each row once,
// in order, with its own values.
func TestBatchesAcrossChunkEdgesStoreEveryRowInOrder(t *testing.T) {
	for _, n := range []int{1, insertChunk - 1, insertChunk, insertChunk + 1, 2*insertChunk + 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			path := testPath(t)
			w := openTest(t, path, Options{FlushInterval: time.Hour})
			batch := make([]Row, n)
			for i := range batch {
				batch[i] = sampleRow(time.UnixMilli(int64(1_000_000 + i)))
				batch[i].PromptTokens = int64(i)
			}
			require.NoError(t, w.insert(batch))
			rows, err := rawDB(t, path).Query(`SELECT ts_ms, prompt_tokens FROM requests ORDER BY id`)
			require.NoError(t, err)
			defer rows.Close()
			i := 0
			for ; rows.Next(); i++ {
				var ts, tokens int64
				require.NoError(t, rows.Scan(&ts, &tokens))
				assert.Equal(t, int64(1_000_000+i), ts, "row %d", i)
				assert.Equal(t, int64(i), tokens, "row %d", i)
			}
			require.NoError(t, rows.Err())
			assert.Equal(t, n, i)
		})
	}
}
