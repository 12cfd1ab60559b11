package ledger

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable Options.Now.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) set(t time.Time)     { c.ms.Store(t.UnixMilli()) }
func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// rowTimes lists the times of the rows left, oldest first.
func rowTimes(t *testing.T, path string) []time.Time {
	rows, err := rawDB(t, path).Query("SELECT ts_ms FROM requests ORDER BY ts_ms")
	require.NoError(t, err)
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var ms int64
		require.NoError(t, rows.Scan(&ms))
		out = append(out, time.UnixMilli(ms))
	}
	require.NoError(t, rows.Err())
	return out
}

func TestRetentionPrunesAtOpenInSmallBatches(t *testing.T) {
	path := testPath(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const retention = 400 * 24 * time.Hour
	w, err := Open(path, Options{QueueSize: 5000})
	require.NoError(t, err)
	// More old rows than one pruning statement deletes.
	const old = 2*pruneBatch + 17
	for i := range old {
		w.Add(sampleRow(now.Add(-retention - time.Duration(i+1)*time.Minute)))
	}
	keep := now.Add(-retention + time.Minute)
	w.Add(sampleRow(keep))
	w.Add(sampleRow(now))
	require.NoError(t, w.Close(context.Background()))
	require.Equal(t, old+2, countRows(t, path))

	openTest(t, path, Options{Retention: retention, Now: func() time.Time { return now }})
	eventually(t, func() bool { return countRows(t, path) == 2 }, "old rows to be pruned")
	got := rowTimes(t, path)
	assert.True(t, got[0].Equal(keep), "a row just inside the retention is kept")
	assert.True(t, got[1].Equal(now))
}

func TestRetentionPrunesDaily(t *testing.T) {
	path := testPath(t)
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clk := newClock(start)
	const retention = 30 * 24 * time.Hour
	w := openTest(t, path, Options{Retention: retention, Now: clk.now, FlushInterval: 20 * time.Millisecond})
	w.Add(sampleRow(start.Add(-retention + 12*time.Hour))) // old in half a day
	w.Add(sampleRow(start))
	flush(t, w)

	clk.add(13 * time.Hour) // the row is past retention, but a day has not passed
	w.Add(sampleRow(clk.now()))
	flush(t, w)
	assert.Equal(t, 3, countRows(t, path), "pruning waits for its day")

	clk.add(12 * time.Hour)
	eventually(t, func() bool { return countRows(t, path) == 2 }, "the daily pruning")
}

func TestNoRetentionKeepsEverything(t *testing.T) {
	path := testPath(t)
	w := openTest(t, path, Options{})
	w.Add(sampleRow(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)))
	flush(t, w)
	assert.Equal(t, 1, countRows(t, path))
}
