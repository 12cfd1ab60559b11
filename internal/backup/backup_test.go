package backup

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setClock makes now return t, then whatever setClock is given next.
func setClock(t *testing.T, at time.Time) *time.Time {
	t.Helper()
	cur := at
	now = func() time.Time { return cur }
	t.Cleanup(func() { now = time.Now })
	return &cur
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestWriteNeverOverwritesABackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.json")
	setClock(t, time.Date(2026, 12, 2, 10, 15, 0, 0, time.FixedZone("CET", 3600)))

	first, err := Write(path, "corrupt", []byte("first"), Options{})
	require.NoError(t, err)
	assert.Equal(t, path+".corrupt-20261202T091500Z", first, "UTC, to the second")
	second, err := Write(path, "corrupt", []byte("second"), Options{})
	require.NoError(t, err)
	assert.Equal(t, path+".corrupt-20261202T091500Z-2", second, "the same second gets a counter")

	assert.Equal(t, "first", read(t, first))
	assert.Equal(t, "second", read(t, second))
	names, err := List(path, "corrupt")
	require.NoError(t, err)
	assert.Equal(t, []string{second, first}, names, "newest first")
}

func TestWriteKeepsTheLastFive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opencode.json")
	clock := setClock(t, time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	// Not backups of this file and tag: never removed.
	others := []string{path + ".bak", path + ".corrupt-20200101T000000Z", filepath.Join(dir, "other.json.bak-20200101T000000Z"), path + ".bak-notatime"}
	for _, o := range others {
		require.NoError(t, os.WriteFile(o, []byte("keep"), 0o600))
	}

	var written []string
	for i := range 8 {
		*clock = clock.Add(time.Minute)
		name, err := Write(path, "bak", []byte(strconv.Itoa(i)), Options{})
		require.NoError(t, err)
		written = append(written, name)
	}
	names, err := List(path, "bak")
	require.NoError(t, err)
	require.Len(t, names, Keep)
	for i, name := range names {
		assert.Equal(t, written[len(written)-1-i], name)
		assert.Equal(t, strconv.Itoa(len(written)-1-i), read(t, name))
	}
	for _, gone := range written[:3] {
		assert.NoFileExists(t, gone)
	}
	for _, o := range others {
		assert.FileExists(t, o)
	}
}

// Within one second, -10 is newer than -2: the oldest by counter go first.
func TestWriteOrdersCountersAsNumbers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	setClock(t, time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	var written []string
	for i := range 11 {
		name, err := Write(path, "corrupt", []byte(strconv.Itoa(i)), Options{})
		require.NoError(t, err)
		written = append(written, name)
	}
	names, err := List(path, "corrupt")
	require.NoError(t, err)
	assert.Equal(t, []string{written[10], written[9], written[8], written[7], written[6]}, names)
	assert.Equal(t, path+".corrupt-20261202T100000Z-11", names[0])
}

// A clock set back makes the new backup look oldest; it is kept anyway.
func TestWriteKeepsTheNewBackupWhenTheClockWentBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	clock := setClock(t, time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	for range Keep {
		*clock = clock.Add(time.Second)
		_, err := Write(path, "corrupt", []byte("old"), Options{})
		require.NoError(t, err)
	}
	*clock = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	name, err := Write(path, "corrupt", []byte("new"), Options{})
	require.NoError(t, err)
	assert.Equal(t, "new", read(t, name))
	names, err := List(path, "corrupt")
	require.NoError(t, err)
	assert.Len(t, names, Keep)
	assert.Contains(t, names, name)
}

func TestWriteFailsWhereItCannotWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "credentials.json")
	_, err := Write(path, "corrupt", []byte("x"), Options{})
	assert.ErrorContains(t, err, "create backup")
	_, err = Write(filepath.Join(t.TempDir(), "f"), "a/b", []byte("x"), Options{})
	assert.ErrorContains(t, err, "invalid backup tag")
}
