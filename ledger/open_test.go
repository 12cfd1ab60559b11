package ledger

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	for name, content := range map[string][]byte{
		"text":              []byte("my notes, not a database\n"),
		"short":             []byte("SQL"),
		"damaged sqlite":    append([]byte("SQLite format 3\x00"), []byte(strings.Repeat("\xff", 4080))...),
		"one page of zeros": make([]byte, 4096),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "usage.db")
			require.NoError(t, os.WriteFile(path, content, 0o644))
			_, err := Open(path, Options{})
			require.Error(t, err)
			assert.Equal(t, 1, strings.Count(err.Error(), path), "the error names the file, once: %v", err)
			assert.Contains(t, err.Error(), "move it away", "and says what to do")
			_, rerr := OpenReader(path)
			require.Error(t, rerr)
			assert.Equal(t, 1, strings.Count(rerr.Error(), path), "the error names the file, once: %v", rerr)

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, content, got, "the file is left untouched")
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
			for _, side := range []string{"-wal", "-shm", "-journal"} {
				assert.NoFileExists(t, path+side)
			}
		})
	}
}

func TestOpenNamesWhatIsWrongWithTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	require.NoError(t, os.WriteFile(path, []byte("my notes\n"), 0o600))
	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrNotLedger)
	assert.EqualError(t, err, path+" is not a SQLite database (not an orproxy usage ledger); it was left untouched: "+
		"move it away and orproxy starts a new ledger there, or set usage.file to another path")
}

func TestOpenRefusesADirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.db")
	require.NoError(t, os.Mkdir(path, 0o700))
	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrNotLedger)
	assert.ErrorContains(t, err, "is a directory")
}

func TestOpenRefusesAnotherProgramsDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db := rawDB(t, path)
	_, err := db.Exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x')")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	before := fileSum(t, path)

	_, err = Open(path, Options{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "another program")
	_, err = OpenReader(path)
	require.ErrorIs(t, err, ErrNotLedger)
	assert.Equal(t, before, fileSum(t, path))
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	path := testPath(t)
	w, err := Open(path, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))
	db := rawDB(t, path)
	_, err = db.Exec("PRAGMA user_version = 99")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, err = Open(path, Options{})
	assert.ErrorContains(t, err, "schema version 99, newer than this orproxy knows (1)")
	_, err = OpenReader(path)
	assert.ErrorContains(t, err, "newer orproxy")
}

// v2 is a second schema version, only for testing that migrations chain.
var testMigrations = append(migrations[:1:1], `ALTER TABLE requests ADD COLUMN note TEXT NOT NULL DEFAULT '';
CREATE INDEX requests_client ON requests (client);`)

func TestMigrateFromVersion1(t *testing.T) {
	require.Len(t, migrations, 1, "with a real second version, migrate from 1 to it here")
	path := testPath(t)
	w, err := open(path, Options{}, testMigrations[:1])
	require.NoError(t, err)
	w.Add(sampleRow(time.Now()))
	require.NoError(t, w.Close(context.Background()))

	w, err = open(path, Options{}, testMigrations)
	require.NoError(t, err)
	w.Add(sampleRow(time.Now()))
	require.NoError(t, w.Close(context.Background()))

	db := rawDB(t, path)
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	assert.Equal(t, 2, version)
	var rows, notes int
	require.NoError(t, db.QueryRow("SELECT count(*), count(note) FROM requests").Scan(&rows, &notes))
	assert.Equal(t, 2, rows, "the row written under version 1 is kept")
	assert.Equal(t, 2, notes)
}

func TestFailedMigrationLeavesThePreviousVersion(t *testing.T) {
	path := testPath(t)
	w, err := open(path, Options{}, testMigrations[:1])
	require.NoError(t, err)
	require.NoError(t, w.Close(context.Background()))

	broken := append(testMigrations[:1:1], "CREATE TABLE half (a); SELECT no_such_function()")
	_, err = open(path, Options{}, broken)
	assert.ErrorContains(t, err, "migrate schema to version 2")

	db := rawDB(t, path)
	var version, half int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.NoError(t, db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").Scan(&half))
	assert.Equal(t, 1, version)
	assert.Zero(t, half, "the failed step is rolled back whole")
}

func TestOpeningAMigratedLedgerChangesNothing(t *testing.T) {
	path := testPath(t)
	w, err := Open(path, Options{})
	require.NoError(t, err)
	w.Add(sampleRow(time.Now()))
	require.NoError(t, w.Close(context.Background()))
	before := fileSum(t, path)

	w, err = Open(path, Options{Retention: 24 * time.Hour})
	require.NoError(t, err)
	flush(t, w)
	require.NoError(t, w.Close(context.Background()))
	assert.Equal(t, before, fileSum(t, path), "the database file is byte for byte the same")
}

func TestOpenWorksOnPathsSQLiteWouldMisread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Application Support", "a?b#c%20d", "usage.db")
	w := openTest(t, path, Options{})
	w.Add(sampleRow(time.Now()))
	flush(t, w)
	assert.FileExists(t, path)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	for _, e := range entries {
		assert.True(t, strings.HasPrefix(e.Name(), "usage.db"), "stray file %s", e.Name())
	}
	r, err := OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	rep, err := r.Report(context.Background(), Query{By: ByModel})
	require.NoError(t, err)
	assert.Equal(t, int64(1), rep.Total.Requests)
}

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "/srv/data")
	p, err := DefaultPath()
	require.NoError(t, err)
	switch runtime.GOOS {
	case "linux":
		assert.Equal(t, "/srv/data/orproxy/usage.db", p)
		t.Setenv("XDG_DATA_HOME", "relative/is/ignored")
		p, err = DefaultPath()
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(home, ".local", "share", "orproxy", "usage.db"), p)
	case "darwin":
		assert.Equal(t, filepath.Join(home, "Library", "Application Support", "orproxy", "usage.db"), p)
	default:
		assert.Equal(t, filepath.Join("orproxy", "usage.db"), filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p)))
	}
}
