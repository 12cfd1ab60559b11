package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Retention is how long rows are kept: older ones are deleted at open
	// and then daily. 0 keeps every row.
	Retention time.Duration
	// QueueSize bounds the rows waiting to be written; beyond it Add drops.
	// Default DefaultQueueSize.
	QueueSize int
	// FlushInterval is how often queued rows are written, and so about what
	// a SIGKILL loses. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxBatch is the most rows written in one transaction. Default
	// DefaultMaxBatch.
	MaxBatch int
	// BusyTimeout is how long a write waits while another program (a
	// sqlite3 shell, say) holds the database locked. Default
	// DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Logger receives one warning per episode of dropped rows. Nil logs
	// nothing.
	Logger *zap.Logger
	// Now is the clock for row times and retention; nil means time.Now.
	Now func() time.Time
}

func (o *Options) normalize() {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// pruneBatch is how many rows one pruning statement deletes: small enough
// that the write transaction it holds never delays new rows noticeably.
const pruneBatch = 1000

// pruneBudget bounds the pruning done between two writes of new rows.
const pruneBudget = 100 * time.Millisecond

// pruneEvery is how often old rows are looked for after the first time.
const pruneEvery = 24 * time.Hour

// Writer appends rows to the ledger off the request path. Its methods are
// safe for concurrent use; a nil *Writer drops every row silently, which is
// what a daemon with the ledger turned off wants.
type Writer struct {
	path string
	opts Options
	log  *zap.Logger

	queue    chan Row
	flushReq chan chan error
	quit     chan struct{}
	done     chan struct{}
	closed   atomic.Bool

	// ctx is what writes run under; cancelled when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	written atomic.Uint64
	dropped atomic.Uint64
	// full is set while Add meets a full queue, so that it logs once per
	// episode rather than once per row.
	full atomic.Bool

	mu        sync.Mutex
	db        *sql.DB // nil while the database cannot be opened
	ident     os.FileInfo
	lastErr   error
	lastErrAt time.Time
	failing   bool // writes fail now; logged once per episode
	reopen    bool

	// Owned by the writing goroutine.
	failDropped uint64
	nextPrune   time.Time
	pruning     bool
	migrations  []string
	insertArgs  []any
}

// Open opens (creating if needed) the ledger at path and starts writing.
// The directory is created 0700, the database 0600. A file that is not a
// ledger is refused with an error wrapping ErrNotLedger and left untouched.
// Close must be called to flush the queue and end the writing goroutine.
func Open(path string, opts Options) (*Writer, error) {
	return open(path, opts, migrations)
}

func open(path string, opts Options, list []string) (*Writer, error) {
	opts.normalize()
	ctx, cancel := context.WithCancel(context.Background())
	openCtx, openCancel := context.WithTimeout(ctx, opts.BusyTimeout+5*time.Second)
	defer openCancel()
	db, err := openWrite(openCtx, path, opts.BusyTimeout, list)
	if err != nil {
		cancel()
		return nil, err
	}
	w := &Writer{
		path:       path,
		opts:       opts,
		log:        opts.Logger,
		queue:      make(chan Row, opts.QueueSize),
		flushReq:   make(chan chan error),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		db:         db,
		migrations: list,
		insertArgs: make([]any, insertChunk*insertColumns),
		pruning:    opts.Retention > 0,
	}
	w.ident, _ = os.Stat(path)
	go w.run()
	return w, nil
}

// Path is the database file.
func (w *Writer) Path() string { return w.path }

// Add queues r for writing and returns at once. It never blocks and never
// fails: when the queue is full, or after Close, the row is dropped and
// counted in Status.
func (w *Writer) Add(r Row) {
	if w == nil {
		return
	}
	if w.closed.Load() {
		w.dropped.Add(1)
		return
	}
	select {
	case w.queue <- r:
	default:
		w.dropped.Add(1)
		if w.full.CompareAndSwap(false, true) {
			w.log.Warn("usage ledger: queue full, dropping rows until the writer catches up",
				zap.String("file", w.path), zap.Int("queue", cap(w.queue)))
		}
	}
}

// Status is the ledger's health for /status.
type Status struct {
	File    string `json:"file"`
	Written uint64 `json:"rows_written"`
	Dropped uint64 `json:"rows_dropped"`
	Queued  int    `json:"queued"`
	// LastError is the most recent failure to write (no secrets: the
	// database's message and the file's path); it stays after recovery, so
	// LastErrorAt tells whether it is news. Failing says whether writes fail
	// now.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failing     bool      `json:"failing"`
}

// Status reports counts and the last error.
func (w *Writer) Status() Status {
	if w == nil {
		return Status{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lastErr string
	if w.lastErr != nil {
		lastErr = w.lastErr.Error()
	}
	return Status{
		File:        w.path,
		Written:     w.written.Load(),
		Dropped:     w.dropped.Load(),
		Queued:      len(w.queue),
		LastError:   lastErr,
		LastErrorAt: w.lastErrAt,
		Failing:     w.failing,
	}
}

// Flush writes every row added before it was called. It fails when rows
// could not be written (they were dropped and counted), saying why. Budgets
// call it before reconciling with the ledger.
func (w *Writer) Flush(ctx context.Context) error {
	if w == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case w.flushReq <- reply:
	case <-w.done:
		return errors.New("usage ledger is closed")
	case <-ctx.Done():
		return fmt.Errorf("usage ledger: flush: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("usage ledger: flush: %w", ctx.Err())
	}
}

// Close writes what is queued and stops. If ctx ends first, the write in
// progress is interrupted and the rows not yet written are dropped and
// counted. Rows added after Close are dropped.
func (w *Writer) Close(ctx context.Context) error {
	if w == nil {
		return nil
	}
	if !w.closed.CompareAndSwap(false, true) {
		<-w.done
		return nil
	}
	close(w.quit)
	var gaveUp error
	select {
	case <-w.done:
	case <-ctx.Done():
		gaveUp = ctx.Err()
		w.cancel() // interrupts the running statement; the rest fail fast
		<-w.done
	}
	w.cancel()
	w.mu.Lock()
	db := w.db
	w.db = nil
	w.mu.Unlock()
	var err error
	if db != nil {
		err = db.Close()
	}
	if gaveUp != nil {
		return fmt.Errorf("usage ledger %s: closing gave up before every row was written (%d dropped in all): %w", w.path, w.dropped.Load(), gaveUp)
	}
	if err != nil {
		return fmt.Errorf("usage ledger %s: close: %w", w.path, err)
	}
	return nil
}

// run is the writing goroutine: it gathers rows into a batch and writes it
// when it is full or at each tick.
func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	batch := make([]Row, 0, w.opts.MaxBatch)
	w.prune() // at open: an old ledger may hold rows past retention
	for {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
			if len(batch) == cap(batch) {
				w.write(batch)
				batch = batch[:0]
			}
		case <-tick.C:
			w.write(batch)
			batch = batch[:0]
			w.prune()
		case reply := <-w.flushReq:
			reply <- w.flushed(w.drain(batch, len(w.queue)))
			batch = batch[:0]
		case <-w.quit:
			w.drain(batch, -1)
			return
		}
	}
}

// flushed is Flush's answer: err, or else why writes are failing, for a
// batch written and lost before Flush was asked.
func (w *Writer) flushed(err error) error {
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		return w.lastErr
	}
	return nil
}

// drain writes batch and then up to n queued rows (all of them when n < 0),
// and returns the first error.
func (w *Writer) drain(batch []Row, n int) error {
	var first error
	for {
		for len(batch) < cap(batch) && n != 0 {
			select {
			case r := <-w.queue:
				batch = append(batch, r)
				n--
			default:
				n = 0
			}
		}
		if err := w.write(batch); first == nil {
			first = err
		}
		if n == 0 {
			return first
		}
		batch = batch[:0]
	}
}

// write stores batch in one transaction. On failure the rows are dropped and
// counted, and the next write reopens the database: that is how the ledger
// comes back after a full disk, a read-only mount or a file moved away.
func (w *Writer) write(batch []Row) error {
	if len(batch) == 0 {
		return nil
	}
	err := w.ensureOpen()
	if err == nil {
		err = w.insert(batch)
	}
	if err != nil {
		w.fail(err, len(batch))
		return err
	}
	w.written.Add(uint64(len(batch)))
	w.recovered()
	return nil
}

// ensureOpen reopens the database after a failure, and when the file at
// path is no longer the one open (deleted or replaced), so rows never go
// on into a file nobody can see.
func (w *Writer) ensureOpen() error {
	w.mu.Lock()
	db, reopen := w.db, w.reopen
	w.mu.Unlock()
	if db != nil && !reopen {
		st, err := os.Stat(w.path)
		if err == nil && w.ident != nil && os.SameFile(st, w.ident) {
			return nil
		}
		w.log.Warn("usage ledger: the file was moved or replaced; opening it again", zap.String("file", w.path))
	}
	if db != nil {
		db.Close() //nolint:errcheck // being replaced
	}
	w.mu.Lock()
	w.db = nil
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.BusyTimeout+5*time.Second)
	defer cancel()
	ndb, err := openWrite(ctx, w.path, w.opts.BusyTimeout, w.migrations)
	if err != nil {
		return err
	}
	ident, _ := os.Stat(w.path)
	w.mu.Lock()
	w.db, w.ident, w.reopen = ndb, ident, false
	w.mu.Unlock()
	return nil
}

const insertColumns = 22

// insertChunk is how many rows one INSERT statement carries. Each statement
// costs the driver and SQLite's VM a fixed amount on top of its rows, which
// at one row per statement was most of the writer's time; 32 rows keep the
// statement's 704 parameters far below SQLite's limit of 32,766.
const insertChunk = 32

const insertHead = `INSERT INTO requests (ts_ms, time, endpoint, model, model_served,
	provider, generation_id, status, streamed, retried, resent_without_tool,
	tool_injected, prompt_tokens, completion_tokens, cached_tokens,
	reasoning_tokens, cost_usd, web_searches, duration_ms, ttfb_ms, client, error)
	VALUES `

const insertValues = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

// insertSQL is the statement that inserts rows rows.
func insertSQL(rows int) string {
	var b strings.Builder
	b.Grow(len(insertHead) + rows*(len(insertValues)+2))
	b.WriteString(insertHead)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(insertValues)
	}
	return b.String()
}

// fullChunkSQL is the statement of a whole chunk, built once.
var fullChunkSQL = insertSQL(insertChunk)

// timeText is the time column: ISO 8601 UTC to the millisecond, which sorts
// as text and which sqlite3's date functions understand.
const timeText = "2006-01-02T15:04:05.000Z"

func (w *Writer) insert(batch []Row) error {
	w.mu.Lock()
	db := w.db
	w.mu.Unlock()
	tx, err := db.BeginTx(w.ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	args := w.insertArgs
	// The inserts run without w.ctx: a cancellable context costs the
	// driver a goroutine per statement, and only BEGIN IMMEDIATE ever
	// waits on a lock.
	var full *sql.Stmt
	for len(batch) > 0 {
		n := min(len(batch), insertChunk)
		for i := range n {
			rowArgs(&batch[i], w.opts.Now, args[i*insertColumns:(i+1)*insertColumns])
		}
		var stmt *sql.Stmt
		if n == insertChunk {
			if full == nil {
				if full, err = tx.PrepareContext(w.ctx, fullChunkSQL); err != nil {
					return fmt.Errorf("prepare insert: %w", err)
				}
				defer full.Close() //nolint:errcheck // closed with the transaction
			}
			stmt = full
		} else {
			// The rest of the batch: one statement of its own size.
			if stmt, err = tx.PrepareContext(w.ctx, insertSQL(n)); err != nil {
				return fmt.Errorf("prepare insert: %w", err)
			}
			defer stmt.Close() //nolint:errcheck // closed with the transaction
		}
		if _, err := stmt.ExecContext(context.Background(), args[:n*insertColumns]...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		batch = batch[n:]
		if len(batch) > 0 {
			letRequestsIn()
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func rowArgs(r *Row, now func() time.Time, args []any) {
	t := r.Time
	if t.IsZero() {
		t = now()
	}
	t = t.UTC()
	var cost any
	if r.CostKnown {
		cost = r.CostUSD
	}
	var ttfb any
	if r.TTFB > 0 {
		ttfb = r.TTFB.Milliseconds()
	}
	args[0] = t.UnixMilli()
	args[1] = t.Format(timeText)
	args[2] = r.Endpoint
	args[3] = r.Model
	args[4] = r.ModelServed
	args[5] = r.Provider
	args[6] = r.GenerationID
	args[7] = r.Status
	args[8] = r.Streamed
	args[9] = r.Retried
	args[10] = r.ResentWithoutTool
	args[11] = r.ToolInjected
	args[12] = r.PromptTokens
	args[13] = r.CompletionTokens
	args[14] = r.CachedTokens
	args[15] = r.ReasoningTokens
	args[16] = cost
	args[17] = r.WebSearches
	args[18] = r.Duration.Milliseconds()
	args[19] = ttfb
	args[20] = r.Client
	args[21] = r.failed()
}

// chunkPause parks the writer between two chunks of a batch, and between
// two pruning statements; see letRequestsIn.
const chunkPause = 20 * time.Microsecond

// letRequestsIn pauses the writer for a moment between chunks. `orproxy
// serve` runs Go code on one thread, and a batch of 512 rows is milliseconds
// of SQLite: requests that arrive meanwhile wait until the writer blocks.
// runtime.Gosched does not help, as the scheduler takes the writer back from
// its run queue before it asks the network poller for ready connections; a
// short sleep parks the writer, the scheduler polls, and those requests go
// first. Under wrk on one connection, p99 went from 1.8–2.5 ms to 0.7–0.8 ms
// (a 1 µs sleep was too short: it often ended before the scheduler looked,
// 1.2–1.4 ms); CPU per request at 64 connections did not change.
//
// A variable so that BenchmarkWriteBatch can time the writing alone: an
// otherwise idle process sleeps about a millisecond here, not 20 µs, as the
// runtime's poller then waits in whole milliseconds.
var letRequestsIn = func() { time.Sleep(chunkPause) }

// fail drops a batch that could not be written and logs the first failure
// of an episode.
func (w *Writer) fail(err error, n int) {
	w.dropped.Add(uint64(n))
	if !strings.Contains(err.Error(), w.path) {
		err = fmt.Errorf("usage ledger %s: %w", w.path, err)
	}
	w.mu.Lock()
	first := !w.failing
	w.lastErr, w.lastErrAt, w.reopen, w.failing = err, w.opts.Now(), true, true
	w.mu.Unlock()
	w.failDropped += uint64(n)
	if first {
		w.log.Warn("usage ledger: cannot write, dropping rows until it works again (requests are not affected)",
			zap.String("file", w.path), zap.Error(err))
	}
}

// recovered ends the episodes of failed writes and of a full queue.
func (w *Writer) recovered() {
	w.mu.Lock()
	was := w.failing
	w.failing = false
	w.mu.Unlock()
	if was {
		w.log.Info("usage ledger: writing again", zap.String("file", w.path), zap.Uint64("dropped", w.failDropped))
		w.failDropped = 0
	}
	if w.full.Load() && len(w.queue) < cap(w.queue)/2 {
		w.full.Store(false)
		w.log.Info("usage ledger: queue has room again", zap.String("file", w.path), zap.Uint64("dropped_in_all", w.dropped.Load()))
	}
}
