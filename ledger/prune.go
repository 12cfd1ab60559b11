package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// prune deletes rows older than the retention, a small batch per statement
// and at most pruneBudget at a time, so that new rows keep flowing while a
// ledger that sat unused for months sheds its old ones. It runs at open,
// then daily.
func (w *Writer) prune() {
	if w.opts.Retention <= 0 {
		return
	}
	now := w.opts.Now()
	if !w.pruning && now.Before(w.nextPrune) {
		return
	}
	w.pruning = true
	w.mu.Lock()
	db := w.db
	w.mu.Unlock()
	if db == nil {
		return // broken: the next write reopens it, the next tick prunes
	}
	cutoff := now.Add(-w.opts.Retention)
	deadline := time.Now().Add(pruneBudget)
	for {
		n, err := pruneStep(w.ctx, db, cutoff)
		if err != nil {
			w.log.Debug("usage ledger: pruning old rows failed; trying again later", zap.String("file", w.path), zap.Error(err))
			return
		}
		if n < pruneBatch {
			w.pruning = false
			w.nextPrune = now.Add(pruneEvery)
			return
		}
		if time.Now().After(deadline) {
			return
		}
		letRequestsIn()
	}
}

// pruneStep deletes up to pruneBatch rows older than cutoff, oldest first.
func pruneStep(ctx context.Context, db *sql.DB, cutoff time.Time) (int64, error) {
	res, err := db.ExecContext(ctx, `DELETE FROM requests WHERE id IN
		(SELECT id FROM requests WHERE ts_ms < ? ORDER BY ts_ms LIMIT ?)`,
		cutoff.UnixMilli(), pruneBatch)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	return res.RowsAffected()
}
