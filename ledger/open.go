package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotLedger is wrapped by the error for a file that is not a usage
// ledger. Such a file is never written to.
var ErrNotLedger = errors.New("not an orproxy usage ledger")

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// Defaults of Options.
const (
	DefaultQueueSize     = 4096
	DefaultFlushInterval = 500 * time.Millisecond
	DefaultMaxBatch      = 512
	DefaultBusyTimeout   = 5 * time.Second
)

// PathFor is the ledger usage.file names, or DefaultPath when it names none.
func PathFor(file string) (string, error) {
	if file != "" {
		return file, nil
	}
	return DefaultPath()
}

// DefaultPath is where the ledger lives unless usage.file says otherwise:
// $XDG_DATA_HOME/orproxy/usage.db (~/.local/share/orproxy/usage.db) on Linux,
// ~/Library/Application Support/orproxy/usage.db on macOS, and
// %LocalAppData%\orproxy\usage.db on Windows.
func DefaultPath() (string, error) {
	var dir string
	switch runtime.GOOS {
	case "windows":
		d, err := os.UserCacheDir() // %LocalAppData%
		if err != nil {
			return "", fmt.Errorf("find the usage ledger's directory: %w; set usage.file", err)
		}
		dir = d
	case "darwin", "ios":
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the usage ledger's directory: %w; set usage.file", err)
		}
		dir = filepath.Join(home, "Library", "Application Support")
	default:
		// The XDG spec says a relative value is invalid and to be ignored.
		if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
			dir = d
			break
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the usage ledger's directory: %w; set usage.file or XDG_DATA_HOME", err)
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "orproxy", "usage.db"), nil
}

// fileURI turns a path into a SQLite URI, escaping what SQLite would read as
// a query or fragment (a '?' or '#' in a directory name, the space in
// "Application Support").
func fileURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("usage ledger %s: %w", path, err)
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") { // C:/… on Windows
		p = "/" + p
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}

// writeDSN is the read-write connection string. It sets nothing that is
// stored in the file (WAL is, so it comes after the file was found to be a
// ledger). Every write transaction
// begins IMMEDIATE so that waiting for another writer goes through
// busy_timeout instead of failing at once on a lock upgrade.
func writeDSN(uri string, busy time.Duration) string {
	return uri + "?_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// readDSN is the read-only connection string. WAL lets it read while the
// daemon writes.
func readDSN(uri string, busy time.Duration) string {
	return uri + "?mode=ro&_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=query_only(1)"
}

// prepareFile makes sure path is a file that is empty or a SQLite database,
// creating the directory (0700) and the file (0600) when missing. Creating
// the file ourselves, rather than letting SQLite do it with its default
// 0644, makes it private from its first moment; SQLite then gives the -wal
// and -shm files the database's mode.
func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("usage ledger: create its directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("usage ledger: create %s: %w", path, err)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("usage ledger: create %s: %w", path, err)
	}
	return checkHeader(path)
}

// checkHeader refuses an existing file that is not a SQLite database before
// SQLite opens it, so nothing of it is touched.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("usage ledger: open %s: %w", path, err)
	}
	defer f.Close() //nolint:errcheck // read only
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("usage ledger: open %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("usage ledger %s is a directory (%w): move it away, or set usage.file to a file's path", path, ErrNotLedger)
	}
	if st.Size() == 0 {
		return nil // new, or created just before a crash
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return notLedger(path)
	}
	return nil
}

func notLedger(path string) error {
	return fmt.Errorf("%s is not a SQLite database (%w); it was left untouched: move it away and orproxy starts a new ledger there, or set usage.file to another path", path, ErrNotLedger)
}

// explain turns SQLite's terse verdicts on a file into what to do; other
// errors it wraps with path and what was being done.
func explain(path, doing string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if doing == "" {
			return err
		}
		return fmt.Errorf("usage ledger %s: %s: %w", path, doing, err)
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return notLedger(path)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("usage ledger %s is damaged (%w): move it away and orproxy starts a new one; `sqlite3 %s .recover` may save its rows", path, err, path)
	}
	if doing == "" {
		return err
	}
	return fmt.Errorf("usage ledger %s: %s: %w", path, doing, err)
}

// openWrite opens path read-write and brings its schema up to date.
func openWrite(ctx context.Context, path string, busy time.Duration, list []string) (*sql.DB, error) {
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	uri, err := fileURI(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", writeDSN(uri, busy))
	if err != nil {
		return nil, fmt.Errorf("usage ledger %s: %w", path, err)
	}
	// One connection: a single goroutine writes, and SQLite serialises
	// writers anyway; more connections would only hold more file handles.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close() //nolint:errcheck // already failing
		return nil, explain(path, "open", err)
	}
	if err := setup(ctx, db, path, list); err != nil {
		db.Close() //nolint:errcheck // already failing
		return nil, explain(path, "", err)
	}
	tightenModes(path)
	return db, nil
}

// setup checks that db is a ledger, turns on WAL, so that readers never
// block the writer nor it them, and migrates the schema.
func setup(ctx context.Context, db *sql.DB, path string, list []string) error {
	if err := checkSchema(ctx, db, path, list); err != nil {
		return err
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("usage ledger %s: turn on WAL: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		// A file system without shared memory (some network mounts).
		return fmt.Errorf("usage ledger %s: SQLite cannot use WAL there (journal mode %q): set usage.file to a path on a local disk", path, mode)
	}
	return migrate(ctx, db, path, list)
}

// tightenModes makes the database and its -wal and -shm private. New files
// are born 0600; this catches a ledger created by an older build or copied
// in with a looser mode.
func tightenModes(path string) {
	if runtime.GOOS == "windows" {
		return
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(p, 0o600) // best effort: the rows are not secrets
		}
	}
}
