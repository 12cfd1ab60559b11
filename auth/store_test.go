package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/backup"
	"github.com/orproxy/orproxy/internal/secret"
)

const (
	testKey     = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
	testRefresh = "rt-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

func fullCredential() *Credential {
	return &Credential{
		Source:       SourceBroker,
		APIKey:       secret.New(testKey),
		RefreshToken: secret.New(testRefresh),
		KeyHash:      "ab12cd34",
		KeyLabel:     "orproxy laptop",
		KeyExpiresAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		BrokerURL:    "https://broker.example.com",
		UpdatedAt:    time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestStore(t *testing.T) *Store {
	return NewStore(filepath.Join(t.TempDir(), "orproxy", "credentials.json"))
}

func TestStoreRoundTripsEveryField(t *testing.T) {
	s := newTestStore(t)
	want := fullCredential()
	require.NoError(t, s.Save(testCtx(t), want))
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, want, got)

	data, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.JSONEq(t, `{"source":"broker","openrouter_api_key":"`+testKey+`","broker_refresh_token":"`+testRefresh+`",
		"openrouter_key_hash":"ab12cd34","openrouter_key_label":"orproxy laptop",
		"openrouter_key_expires_at":"2026-12-01T00:00:00Z","broker_url":"https://broker.example.com",
		"updated_at":"2026-11-23T10:00:00Z"}`, string(data))
}

func TestStoreMinimalCredentialAndUpdatedAtDefault(t *testing.T) {
	s := newTestStore(t)
	c := &Credential{Source: SourceManual, APIKey: secret.New(testKey)}
	before := time.Now().Add(-time.Second)
	require.NoError(t, s.Save(testCtx(t), c))
	assert.True(t, c.UpdatedAt.IsZero(), "Save must not modify its argument")
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, SourceManual, got.Source)
	assert.True(t, got.KeyExpiresAt.IsZero())
	assert.True(t, got.RefreshToken.IsZero())
	assert.False(t, got.UpdatedAt.Before(before.Truncate(time.Second)), "UpdatedAt is the time of the save")
	data, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.NotContains(t, string(data), "broker_refresh_token")
	assert.NotContains(t, string(data), "openrouter_key_expires_at")
}

func TestStoreReadsWhatOthersWrite(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(s.Path()), 0o700))
	// null expiry, a fractional offset time, and keys this version does not know.
	body := `{"source":"openrouter-oauth","openrouter_api_key":"` + testKey + `","openrouter_key_expires_at":null,
		"updated_at":"2026-11-23T12:00:00.5+02:00","future_field":{"x":1},"broker_url":""}`
	require.NoError(t, os.WriteFile(s.Path(), []byte(body), 0o600))
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, SourceOpenRouterOAuth, got.Source)
	assert.Equal(t, testKey, got.APIKey.Reveal())
	assert.True(t, got.KeyExpiresAt.IsZero())
	assert.True(t, got.UpdatedAt.Equal(time.Date(2026, 11, 23, 10, 0, 0, 5e8, time.UTC)))
}

func TestStoreMissingFile(t *testing.T) {
	s := newTestStore(t)
	_, err := s.Load()
	assert.ErrorIs(t, err, ErrNoCredential)
	removed, err := s.Remove(testCtx(t))
	require.NoError(t, err)
	assert.False(t, removed)
}

func TestStoreRefusesToSaveInvalid(t *testing.T) {
	s := newTestStore(t)
	assert.ErrorContains(t, s.Save(testCtx(t), &Credential{Source: SourceManual}), "no API key")
	assert.ErrorContains(t, s.Save(testCtx(t), &Credential{Source: "nope", APIKey: secret.New(testKey)}), "source")
	assert.Error(t, s.Save(testCtx(t), &Credential{Source: SourceManual, APIKey: secret.New(testKey),
		KeyExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}))
	_, err := os.Stat(s.Path())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestStoreCorruptFile(t *testing.T) {
	cases := map[string]string{
		"empty":            "",
		"truncated":        `{"source":"manual","openrouter_api_key":"` + testKey[:20],
		"not an object":    `["` + testKey + `"]`,
		"null":             `null`,
		"no key":           `{"source":"manual"}`,
		"empty key":        `{"source":"manual","openrouter_api_key":""}`,
		"no source":        `{"openrouter_api_key":"` + testKey + `"}`,
		"unknown source":   `{"source":"magic","openrouter_api_key":"` + testKey + `"}`,
		"key wrong type":   `{"source":"manual","openrouter_api_key":12345}`,
		"bad expiry":       `{"source":"manual","openrouter_api_key":"` + testKey + `","openrouter_key_expires_at":"tomorrow ` + testKey + `"}`,
		"bad updated_at":   `{"source":"manual","openrouter_api_key":"` + testKey + `","updated_at":"` + testKey + `"}`,
		"trailing data":    `{"source":"manual","openrouter_api_key":"` + testKey + `"} {"x":1}`,
		"garbage with key": testKey + "\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			s := newTestStore(t)
			require.NoError(t, os.MkdirAll(filepath.Dir(s.Path()), 0o700))
			require.NoError(t, os.WriteFile(s.Path(), []byte(body), 0o600))

			_, err := s.Load()
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, s.Path(), ce.Path)
			assert.Contains(t, err.Error(), s.Path())
			assert.Contains(t, err.Error(), "orproxy login")
			assert.NotContains(t, err.Error(), testKey[9:20], "the error must not quote the file")

			// The next save keeps the old bytes beside the file.
			require.NoError(t, s.Save(testCtx(t), fullCredential()))
			baks := corruptBackups(t, s)
			require.Len(t, baks, 1)
			bak, err := os.ReadFile(baks[0])
			require.NoError(t, err)
			assert.Equal(t, body, string(bak))
			info, err := os.Stat(baks[0])
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			got, err := s.Load()
			require.NoError(t, err)
			assert.Equal(t, fullCredential(), got)
		})
	}
}

func TestStoreNoBackupOverAValidFile(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	assert.Empty(t, corruptBackups(t, s))
}

// corruptBackups lists the backups of s's corrupt files, newest first.
func corruptBackups(t *testing.T, s *Store) []string {
	t.Helper()
	names, err := backup.List(s.Path(), backupTag)
	require.NoError(t, err)
	return names
}

// A second corruption, even within the same second, keeps the first one's
// backup: each gets a name of its own, and the last five are kept.
func TestStoreCorruptionsNeverOverwriteABackup(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(s.Path()), 0o700))
	var bodies []string
	for i := range 7 {
		body := fmt.Sprintf(`{"source":"manual","openrouter_api_key":"%s-%d"`, testKey, i)
		bodies = append(bodies, body)
		require.NoError(t, os.WriteFile(s.Path(), []byte(body), 0o600))
		require.NoError(t, s.Save(testCtx(t), fullCredential()))
	}
	baks := corruptBackups(t, s)
	require.Len(t, baks, 5, "the last five are kept")
	for i, name := range baks {
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		assert.Equal(t, bodies[len(bodies)-1-i], string(got), "newest first")
		assert.Regexp(t, `credentials\.json\.corrupt-\d{8}T\d{6}Z(-\d+)?$`, name)
		info, err := os.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
}

func TestStoreAtomicWriteLeavesNoTempFiles(t *testing.T) {
	s := newTestStore(t)
	for i := range 20 {
		c := fullCredential()
		c.KeyLabel = strings.Repeat("x", i)
		require.NoError(t, s.Save(testCtx(t), c))
	}
	entries, err := os.ReadDir(filepath.Dir(s.Path()))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"credentials.json", "credentials.json.lock"}, names)
}

// TestStoreRemovesTempFilesOfDeadWriters: a writer killed between creating
// its temporary file and renaming it leaves a file holding a key. The next
// save or update under the lock removes it, and so does a logout.
func TestStoreRemovesTempFilesOfDeadWriters(t *testing.T) {
	s := newTestStore(t)
	dir := filepath.Dir(s.Path())
	leave := func() []string {
		var names []string
		for _, n := range []string{".credentials.json.tmp-123", ".credentials.json.bak.tmp-456"} {
			require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(`{"openrouter_api_key":"`+testKey+`"}`), 0o600))
			names = append(names, n)
		}
		// Not ours: a file of another name stays.
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".other.tmp-1"), nil, 0o600))
		return names
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"save", func() error { return s.Save(testCtx(t), fullCredential()) }},
		{"update", func() error {
			_, err := s.Update(testCtx(t), func(c *Credential) (*Credential, error) { return nil, nil })
			return err
		}},
		{"logout", func() error { _, err := s.Remove(testCtx(t)); return err }},
	} {
		require.NoError(t, os.MkdirAll(dir, 0o700))
		names := leave()
		require.NoError(t, op.do(), op.name)
		for _, n := range names {
			assert.NoFileExists(t, filepath.Join(dir, n), op.name)
		}
		assert.FileExists(t, filepath.Join(dir, ".other.tmp-1"), op.name)
	}
}

func TestStoreWriteFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory where the file should be: the temporary file is
	// written, then the rename fails.
	target := filepath.Join(dir, "credentials.json")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "occupied"), 0o700))
	_, err := writeFileAtomic(target, []byte(testKey))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey[9:])
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "temporary file left behind")
	assert.Equal(t, "credentials.json", entries[0].Name())

	// Save refuses to replace what it cannot read, rather than overwrite a
	// file it could not back up.
	s := NewStore(target)
	err = s.Save(testCtx(t), fullCredential())
	assert.ErrorContains(t, err, "before replacing it")
}

func TestStoreRemove(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	removed, err := s.Remove(testCtx(t))
	require.NoError(t, err)
	assert.True(t, removed)
	_, err = s.Load()
	assert.ErrorIs(t, err, ErrNoCredential)

	// A corrupt file can be removed too: logout is a way out.
	require.NoError(t, os.WriteFile(s.Path(), []byte("{"), 0o600))
	removed, err = s.Remove(testCtx(t))
	require.NoError(t, err)
	assert.True(t, removed)
}

func TestStoreLockExcludesGoroutinesAndHonoursContext(t *testing.T) {
	s := newTestStore(t)
	other := NewStore(s.Path()) // a second Store on the same file must exclude too
	unlock, err := s.lock(testCtx(t))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = other.lock(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan struct{})
	go func() {
		defer close(got)
		u, err := other.lock(testCtx(t))
		if assert.NoError(t, err) {
			u()
		}
	}()
	select {
	case <-got:
		t.Fatal("lock taken while held")
	default:
	}
	unlock()
	unlock() // twice is harmless
	<-got
}

func TestStoreConcurrentGoroutineUpdates(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), counterCredential(0)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				_, err := s.Update(testCtx(t), incrementCounter)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 200, readCounter(t, s))
}

func TestStampNoticesWrites(t *testing.T) {
	s := newTestStore(t)
	absent1, err := s.stamp()
	require.NoError(t, err)
	absent2, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, absent1.exists())
	assert.True(t, absent1.equal(absent2))

	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	first, err := s.stamp()
	require.NoError(t, err)
	assert.True(t, first.exists())
	assert.False(t, first.equal(absent1))

	// Reading, locking and stamping again change nothing.
	_, err = s.Load()
	require.NoError(t, err)
	unlock, err := s.lock(testCtx(t))
	require.NoError(t, err)
	unlock()
	same, err := s.stamp()
	require.NoError(t, err)
	assert.True(t, first.equal(same))

	_, loadStamp, err := s.loadStamped()
	require.NoError(t, err)
	assert.True(t, first.equal(loadStamp))

	// Another writer's save of identical bytes is still noticed: it is a new file.
	require.NoError(t, NewStore(s.Path()).Save(testCtx(t), fullCredential()))
	second, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, first.equal(second))

	_, err = s.Remove(testCtx(t))
	require.NoError(t, err)
	gone, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, second.equal(gone))
	assert.True(t, gone.equal(absent1))
}

// The stamp a save returns names the file that save wrote, so a write by
// someone else right after it (without the lock: an editor, a script) is
// still noticed as a change.
func TestSaveStampIsTheWrittenFile(t *testing.T) {
	s := newTestStore(t)
	unlock, err := s.lock(testCtx(t))
	require.NoError(t, err)
	saved, err := s.saveLocked(fullCredential())
	unlock()
	require.NoError(t, err)
	now, err := s.stamp()
	require.NoError(t, err)
	assert.True(t, saved.equal(now), "the saved stamp matches the file on disk")

	require.NoError(t, os.WriteFile(s.Path(), []byte("{not json"), 0o600))
	after, err := s.stamp()
	require.NoError(t, err)
	assert.False(t, saved.equal(after), "an overwrite in place is a change")
}

func TestCredentialErrorsAndFormattingHideSecrets(t *testing.T) {
	c := fullCredential()
	// A file whose key sits where a string is not allowed: the decoder's
	// error must not quote it.
	s := newTestStore(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(s.Path()), 0o700))
	bad := `{"source":"broker","openrouter_api_key":"` + testKey + `","broker_refresh_token":"` + testRefresh + `","openrouter_key_expires_at":"` + testKey + `"}`
	require.NoError(t, os.WriteFile(s.Path(), []byte(bad), 0o600))
	_, loadErr := s.Load()
	require.Error(t, loadErr)
	var corrupt *CorruptError
	require.ErrorAs(t, loadErr, &corrupt)
	for _, out := range []string{
		func() string { b, _ := json.Marshal(c); return string(b) }(),
		fmt.Sprintf("%v %+v %#v", c, c, c),
		loadErr.Error(),
	} {
		assert.NotContains(t, out, testKey)
		assert.NotContains(t, out, testRefresh)
	}
}

// counterCredential keeps a counter in KeyLabel for the concurrency tests.
func counterCredential(n int) *Credential {
	c := fullCredential()
	c.KeyLabel = strconv.Itoa(n)
	return c
}

func incrementCounter(cur *Credential) (*Credential, error) {
	if cur == nil {
		return nil, errors.New("credential vanished")
	}
	n, err := strconv.Atoi(cur.KeyLabel)
	if err != nil {
		return nil, err
	}
	next := cur.Clone()
	next.KeyLabel = strconv.Itoa(n + 1)
	next.UpdatedAt = time.Time{}
	return next, nil
}

func readCounter(t *testing.T, s *Store) int {
	t.Helper()
	c, err := s.Load()
	require.NoError(t, err)
	n, err := strconv.Atoi(c.KeyLabel)
	require.NoError(t, err)
	return n
}

// status and rotate agree on whether a key can be rotated: a broker
// credential needs its own broker URL or a configured one.
func TestDescribeCanRotate(t *testing.T) {
	s := newTestStore(t)
	c := fullCredential()
	c.BrokerURL = ""
	require.NoError(t, s.Save(testCtx(t), c))
	assert.False(t, Describe(s, "").CanRotate, "no broker anywhere")
	assert.True(t, Describe(s, "https://broker.example.com").CanRotate)
	c.BrokerURL = "https://broker.example.com"
	c.RefreshToken = secret.Secret{}
	require.NoError(t, s.Save(testCtx(t), c))
	assert.False(t, Describe(s, "https://broker.example.com").CanRotate, "no refresh token")
	st := Describe(s, "")
	assert.NotContains(t, fmt.Sprintf("%+v", st), testKey)
}
