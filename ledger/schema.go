package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// applicationID marks the file as an orproxy ledger ("orpx"), so Open never
// adds its table to somebody else's database. `file usage.db` shows it.
const applicationID = 0x6f727078

// migrations[i] brings the schema from version i to i+1 (PRAGMA
// user_version). A new version is one more entry at the end; entries once
// released never change, because ledgers in the field are at every version.
var migrations = []string{
	// 1: the requests table. Times are both indexed unix milliseconds for
	// range queries and ISO 8601 UTC text for people reading with sqlite3.
	// Booleans are 0/1. cost_usd is NULL when OpenRouter gave no cost, so
	// SUM() never mistakes an unknown cost for a free request; ttfb_ms is
	// NULL when no byte came back.
	`PRAGMA application_id = ` + fmt.Sprint(applicationID) + `;
CREATE TABLE requests (
	id                  INTEGER PRIMARY KEY,
	ts_ms               INTEGER NOT NULL,
	time                TEXT    NOT NULL,
	endpoint            TEXT    NOT NULL,
	model               TEXT    NOT NULL,
	model_served        TEXT    NOT NULL,
	provider            TEXT    NOT NULL,
	generation_id       TEXT    NOT NULL,
	status              INTEGER NOT NULL,
	streamed            INTEGER NOT NULL,
	retried             INTEGER NOT NULL,
	resent_without_tool INTEGER NOT NULL,
	tool_injected       INTEGER NOT NULL,
	prompt_tokens       INTEGER NOT NULL,
	completion_tokens   INTEGER NOT NULL,
	cached_tokens       INTEGER NOT NULL,
	reasoning_tokens    INTEGER NOT NULL,
	cost_usd            REAL,
	web_searches        INTEGER NOT NULL,
	duration_ms         INTEGER NOT NULL,
	ttfb_ms             INTEGER,
	client              TEXT    NOT NULL,
	error               INTEGER NOT NULL
);
CREATE INDEX requests_ts_ms ON requests (ts_ms);`,
}

// checkSchema reads the schema version and refuses a database this build
// must not write: one of another program, or a ledger newer than this
// build. It only reads, so a refused file is left as it was.
func checkSchema(ctx context.Context, db *sql.DB, path string, list []string) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("usage ledger %s: read schema version: %w", path, err)
	}
	if err := checkOwned(ctx, db, path, version); err != nil {
		return err
	}
	if version > len(list) {
		return fmt.Errorf("usage ledger %s has schema version %d, newer than this orproxy knows (%d): upgrade orproxy, or set usage.file to another file", path, version, len(list))
	}
	return nil
}

// migrate brings db to len(list), one transaction per step, so a step that
// fails leaves the previous version intact.
func migrate(ctx context.Context, db *sql.DB, path string, list []string) error {
	version := -1
	for version < len(list) {
		if err := migrateStep(ctx, db, path, list, &version); err != nil {
			return err
		}
	}
	return nil
}

// checkOwned refuses a SQLite database that is not a ledger, e.g. usage.file
// pointed at another program's database.
func checkOwned(ctx context.Context, db *sql.DB, path string, version int) error {
	var appID, objects int
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("usage ledger %s: read application id: %w", path, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return fmt.Errorf("usage ledger %s: read schema: %w", path, err)
	}
	if appID == applicationID || (appID == 0 && version == 0 && objects == 0) {
		return nil
	}
	return otherProgram(path)
}

func otherProgram(path string) error {
	return fmt.Errorf("%s is a SQLite database of another program (%w); it was left untouched: set usage.file to another path, or move that file away", path, ErrNotLedger)
}

// migrateStep applies one migration. The version is read again inside the
// write transaction: another orproxy may have migrated in the meantime.
func migrateStep(ctx context.Context, db *sql.DB, path string, list []string, version *int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage ledger %s: begin migration: %w", path, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(version); err != nil {
		return fmt.Errorf("usage ledger %s: read schema version: %w", path, err)
	}
	if *version >= len(list) {
		return nil // also when another orproxy migrated it further meanwhile
	}
	next := *version + 1
	if _, err := tx.ExecContext(ctx, list[*version]); err != nil {
		return fmt.Errorf("usage ledger %s: migrate schema to version %d: %w", path, next, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", next)); err != nil {
		return fmt.Errorf("usage ledger %s: set schema version %d: %w", path, next, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("usage ledger %s: commit schema version %d: %w", path, next, err)
	}
	*version = next
	return nil
}
