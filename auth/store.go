// Package auth keeps orproxy's OpenRouter credential: the credential file
// (Store), the company broker that issues and rotates keys (BrokerClient),
// OpenRouter's key check and PKCE exchange, the rotation that the daemon's
// Manager and `orproxy rotate` share, and the Manager that serves the key.
// The interactive login flows that fill the file are package login.
//
// The credential file is shared by every orproxy process of a user: the daemon,
// `orproxy login`, `orproxy rotate` and possibly a second daemon. Writes are
// atomic renames, so a reader never sees half a file and needs no lock;
// read-modify-write cycles (a rotation, a login) run under an advisory lock on a
// separate file, so no update is lost between processes.
package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/orproxy/orproxy/internal/backup"
	"github.com/orproxy/orproxy/internal/secret"
)

// Source says where a credential came from, which decides what orproxy can do
// when OpenRouter rejects its key.
type Source string

const (
	// SourceBroker credentials carry a refresh token; a rejected key is rotated.
	SourceBroker Source = "broker"
	// SourceOpenRouterOAuth keys came from OpenRouter's PKCE flow; a rejected
	// key means logging in again.
	SourceOpenRouterOAuth Source = "openrouter-oauth"
	// SourceManual keys were pasted by the user.
	SourceManual Source = "manual"
)

func (s Source) valid() bool {
	return s == SourceBroker || s == SourceOpenRouterOAuth || s == SourceManual
}

// Credential is the content of the credential file.
type Credential struct {
	Source Source
	APIKey secret.Secret
	// RefreshToken is the broker's refresh token; zero for other sources.
	RefreshToken secret.Secret
	// KeyHash is OpenRouter's key hash (hex SHA-256 of the key), for display
	// and deep links.
	KeyHash  string
	KeyLabel string
	// KeyExpiresAt is zero when the key does not expire or nobody said.
	KeyExpiresAt time.Time
	// BrokerURL is the broker that issued the credential, so a rotation goes
	// to the same broker even if the configuration changed since.
	BrokerURL string
	UpdatedAt time.Time
}

// Clone returns a copy that shares nothing mutable with c.
func (c *Credential) Clone() *Credential {
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

// ErrNoCredential means the credential file does not exist: nobody has logged in.
var ErrNoCredential = errors.New("no credential stored; run `orproxy login`")

// LoginCommand is the login that fits a configuration whose broker is
// brokerURL: without a broker, a plain `orproxy login` would only fail
// asking for one.
func LoginCommand(brokerURL string) string {
	if brokerURL != "" {
		return "`orproxy login`"
	}
	return "`orproxy login --method openrouter` (your OpenRouter account) or `orproxy login --method key` (a pasted key)"
}

// NoCredential is ErrNoCredential worded with the login that fits a
// configuration whose broker is brokerURL; errors.Is matches it to
// ErrNoCredential.
func NoCredential(brokerURL string) error {
	if brokerURL != "" {
		return ErrNoCredential
	}
	return noCredentialError{"no credential stored; run " + LoginCommand(brokerURL)}
}

type noCredentialError struct{ msg string }

func (e noCredentialError) Error() string        { return e.msg }
func (e noCredentialError) Is(target error) bool { return target == ErrNoCredential }

// CorruptError is returned for a credential file that exists but cannot be
// used. It never carries the file's contents, which may hold a key.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("credential file %s is not valid: %v; fix or remove it, or run `orproxy login`", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// maxFileSize bounds what Load reads: a credential is a few hundred bytes, and
// a huge file is not one.
const maxFileSize = 1 << 20

// Store is the credential file at one path. It is safe for concurrent use by
// goroutines and, through the lock file, by processes.
type Store struct {
	path string
}

// NewStore returns the store for the credential file at path. Nothing is
// touched until the store is used.
func NewStore(path string) *Store {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &Store{path: path}
}

// Path is the credential file's absolute path.
func (s *Store) Path() string { return s.path }

func (s *Store) lockPath() string { return s.path + ".lock" }

// backupTag names the backups of a credential file that did not parse:
// <path>.corrupt-<UTC time>.
const backupTag = "corrupt"

// Load reads the credential. It needs no lock: writers replace the file with
// a rename, so Load sees either the old or the new file, never a mix. It
// returns ErrNoCredential when the file is absent and a *CorruptError when it
// cannot be used.
func (s *Store) Load() (*Credential, error) {
	c, _, err := s.loadStamped()
	return c, err
}

// loadStamped is Load plus the stamp of exactly the file that was read,
// taken from the open file: a separate stat could see a later write. With
// ErrNoCredential the stamp says "absent".
func (s *Store) loadStamped() (*Credential, fileStamp, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileStamp{}, ErrNoCredential
	}
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("read credential file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("read credential file: %w", err)
	}
	stamp := stampOf(info)
	if !info.Mode().IsRegular() {
		return nil, stamp, &CorruptError{Path: s.path, Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, stamp, fmt.Errorf("read credential file %s: %w", s.path, err)
	}
	if len(data) > maxFileSize {
		return nil, stamp, &CorruptError{Path: s.path, Err: errors.New("larger than 1 MiB")}
	}
	c, err := decodeCredential(data)
	if err != nil {
		return nil, stamp, &CorruptError{Path: s.path, Err: err}
	}
	return c, stamp, nil
}

// Save replaces the credential file with c, under the lock. A zero
// UpdatedAt is stored as the time of the save; c itself is not modified. A
// file that exists but does not parse is first copied to a new
// <path>.corrupt-<UTC time> (the last 5 are kept), so a credential the user
// may still need is never lost. When the credential file is a symbolic link
// (kept with the user's dotfiles, say), the file it points to is replaced
// and the link stays.
func (s *Store) Save(ctx context.Context, c *Credential) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.removeTempFiles()
	_, err = s.saveLocked(c)
	return err
}

// saveLocked is Save for a caller that holds the lock. It returns the stamp
// of the file it wrote: a stat after the save could see a file someone wrote
// in between, without the lock, and take it for ours.
func (s *Store) saveLocked(c *Credential) (fileStamp, error) {
	if c == nil {
		return fileStamp{}, errors.New("save credential: nil credential")
	}
	stored := c.Clone()
	if stored.UpdatedAt.IsZero() {
		stored.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	}
	data, err := encodeCredential(stored)
	if err != nil {
		return fileStamp{}, fmt.Errorf("save credential: %w", err)
	}
	if err := privateDir(filepath.Dir(s.path)); err != nil {
		return fileStamp{}, fmt.Errorf("save credential: %w", err)
	}
	target, err := s.target()
	if err != nil {
		return fileStamp{}, fmt.Errorf("save credential: %w", err)
	}
	if target != s.path {
		if err := privateDir(filepath.Dir(target)); err != nil {
			return fileStamp{}, fmt.Errorf("save credential to %s (the target of the link %s): %w", target, s.path, err)
		}
	}
	if err := s.backupIfCorrupt(); err != nil {
		return fileStamp{}, err
	}
	// Renamed in the target's directory, so the link survives; the written
	// file is what stamp and loadStamped see through the link.
	written, err := writeFileAtomic(target, data)
	if err != nil {
		if target != s.path {
			return fileStamp{}, fmt.Errorf("save credential to %s (the target of the link %s): %w", target, s.path, err)
		}
		return fileStamp{}, fmt.Errorf("save credential to %s: %w", s.path, err)
	}
	return stampOf(written), nil
}

// maxLinks bounds a chain of symbolic links, as the kernel does (ELOOP).
const maxLinks = 40

// target is the file a save replaces: the credential file, or the file at
// the end of its chain of symbolic links, which need not exist yet (a
// dotfiles link made before the first login). Renaming over the link itself
// would turn it into a regular file and cut the user's setup off silently.
func (s *Store) target() (string, error) {
	p := s.path
	for range maxLinks {
		info, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Mode()&fs.ModeSymlink == 0) {
			return p, nil
		}
		if err != nil {
			return "", fmt.Errorf("check %s: %w", p, err)
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("follow the link %s: %w", p, err)
		}
		if !filepath.IsAbs(dest) {
			// Relative to the link's real directory, as the kernel reads
			// it, not to the path it was reached by.
			dir := filepath.Dir(p)
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
			}
			dest = filepath.Join(dir, dest)
		}
		p = dest
	}
	return "", fmt.Errorf("follow the link %s: more than %d symbolic links in a row", s.path, maxLinks)
}

// privateDir creates dir 0700. An orproxy directory that exists already
// (made for config.yaml, say) is made 0700 too; a directory of another name
// is the user's choice and left as it is, since the file is 0600 anyway.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if runtime.GOOS == "windows" || filepath.Base(dir) != "orproxy" {
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check directory: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make directory %s private: %w", dir, err)
		}
	}
	return nil
}

// backupIfCorrupt copies a credential file that does not parse to a new
// timestamped backup beside it, never over an earlier one: a second
// corruption must not destroy the copy of the first. A file that cannot be
// read at all stops the save: overwriting what we cannot back up could
// destroy the only copy of a key.
func (s *Store) backupIfCorrupt() error {
	old, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("save credential: read the existing file %s before replacing it: %w", s.path, err)
	}
	if _, err := decodeCredential(old); err == nil {
		return nil
	}
	// Beside the configured path, in orproxy's private directory, even when
	// that is a link: the target's directory may be a dotfiles repository.
	if _, err := backup.Write(s.path, backupTag, old, backup.Options{}); err != nil {
		return fmt.Errorf("save credential: back up the unreadable file %s before replacing it: %w", s.path, err)
	}
	return nil
}

// Remove deletes the credential file (logout) and reports whether there was
// one. An absent file is not an error. A corrupt file is removed too: logging
// out is one way out of it. A symbolic link stays and the file it points to
// goes: removing the link would leave the key behind, and the next login
// writes through the link again.
func (s *Store) Remove(ctx context.Context) (removed bool, err error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	s.removeTempFiles()
	target, err := s.target()
	if err != nil {
		return false, fmt.Errorf("remove credential file: %w", err)
	}
	err = os.Remove(target)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove credential file: %w", err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return true, fmt.Errorf("remove credential file: %w", err)
	}
	return true, nil
}

// removeTempFiles deletes the temporary files of saves that never finished
// (the writer was killed between creating and renaming one). Each may hold
// a key, and nothing else would ever remove them, not even a logout. The
// caller holds the lock, so no live writer is using one.
func (s *Store) removeTempFiles() {
	removeTempFilesOf(s.path)
	if target, err := s.target(); err == nil && target != s.path {
		removeTempFilesOf(target)
	}
}

func removeTempFilesOf(path string) {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		// .bak.tmp- files are left by versions that kept one <path>.bak.
		if strings.HasPrefix(name, "."+base+".tmp-") || strings.HasPrefix(name, "."+base+".bak.tmp-") {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
}

// fileStamp identifies one version of the credential file cheaply (one
// stat), so the daemon notices another process's write without reading the
// file on every request. Every save renames a new file into place, so the
// file's identity changes even when its size and mtime happen to match.
type fileStamp struct {
	present bool
	size    int64
	mod     time.Time
	info    os.FileInfo
}

// stamp returns the current file's stamp; an absent file has a valid stamp
// that says so.
func (s *Store) stamp() (fileStamp, error) {
	info, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, fmt.Errorf("stat credential file: %w", err)
	}
	return stampOf(info), nil
}

func stampOf(info os.FileInfo) fileStamp {
	return fileStamp{present: true, size: info.Size(), mod: info.ModTime(), info: info}
}

// exists reports whether the file existed when the stamp was taken.
func (a fileStamp) exists() bool { return a.present }

// equal reports whether both stamps name the same version of the file.
func (a fileStamp) equal(b fileStamp) bool {
	if a.present != b.present {
		return false
	}
	if !a.present {
		return true
	}
	return a.size == b.size && a.mod.Equal(b.mod) && os.SameFile(a.info, b.info)
}

// wireCredential is the file format. Credential holds secret.Secret values,
// which marshal redacted on purpose, so the file has its own type.
type wireCredential struct {
	Source       string  `json:"source"`
	APIKey       string  `json:"openrouter_api_key"`
	RefreshToken string  `json:"broker_refresh_token,omitempty"`
	KeyHash      string  `json:"openrouter_key_hash,omitempty"`
	KeyLabel     string  `json:"openrouter_key_label,omitempty"`
	KeyExpiresAt *string `json:"openrouter_key_expires_at,omitempty"`
	BrokerURL    string  `json:"broker_url,omitempty"`
	UpdatedAt    *string `json:"updated_at,omitempty"`
}

// decodeCredential parses the file. Its errors describe the problem without
// quoting the file, which may hold a key.
func decodeCredential(data []byte) (*Credential, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM left by an editor
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty")
	}
	var w wireCredential
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, describeJSONError(err)
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil, errors.New("it holds null, not a JSON object")
	}
	c := &Credential{
		Source:       Source(w.Source),
		APIKey:       secret.New(w.APIKey),
		RefreshToken: secret.New(w.RefreshToken),
		KeyHash:      w.KeyHash,
		KeyLabel:     w.KeyLabel,
		BrokerURL:    w.BrokerURL,
	}
	if w.Source == "" {
		return nil, errors.New(`"source" is missing`)
	}
	if !c.Source.valid() {
		// Not quoted: a key pasted into the wrong field must not reach the message.
		return nil, errors.New(`"source" is not broker, openrouter-oauth or manual`)
	}
	if w.APIKey == "" {
		return nil, errors.New(`"openrouter_api_key" is missing or empty`)
	}
	var err error
	if c.KeyExpiresAt, err = parseFileTime(w.KeyExpiresAt); err != nil {
		return nil, fmt.Errorf(`"openrouter_key_expires_at" %w`, err)
	}
	if c.UpdatedAt, err = parseFileTime(w.UpdatedAt); err != nil {
		return nil, fmt.Errorf(`"updated_at" %w`, err)
	}
	return c, nil
}

func parseFileTime(v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, errors.New("is not an RFC 3339 time (like 2026-12-01T00:00:00Z)")
	}
	return t.UTC(), nil
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON (syntax error at byte %d)", syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("%q has the wrong type (%s, want %s)", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Errorf("not a JSON object (found %s)", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not valid JSON (it ends too early)")
	default:
		return errors.New("not valid JSON")
	}
}

func encodeCredential(c *Credential) ([]byte, error) {
	if !c.Source.valid() {
		return nil, errors.New("source is not broker, openrouter-oauth or manual")
	}
	if c.APIKey.IsZero() {
		return nil, errors.New("the credential has no API key")
	}
	w := wireCredential{
		Source:       string(c.Source),
		APIKey:       c.APIKey.Reveal(),
		RefreshToken: c.RefreshToken.Reveal(),
		KeyHash:      c.KeyHash,
		KeyLabel:     c.KeyLabel,
		BrokerURL:    c.BrokerURL,
	}
	var err error
	if w.KeyExpiresAt, err = formatFileTime(c.KeyExpiresAt); err != nil {
		return nil, fmt.Errorf("key expiry: %w", err)
	}
	if w.UpdatedAt, err = formatFileTime(c.UpdatedAt); err != nil {
		return nil, fmt.Errorf("update time: %w", err)
	}
	data, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// formatFileTime refuses times that RFC 3339 cannot hold, so Save never
// writes a file that Load would call corrupt.
func formatFileTime(t time.Time) (*string, error) {
	if t.IsZero() {
		return nil, nil
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("year %d is outside what RFC 3339 can write", y)
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s, nil
}

// quoteBounded quotes user text for an error message, cut to max runes.
func quoteBounded(s string, max int) string {
	r := []rune(s)
	if len(r) > max {
		return fmt.Sprintf("%q…", string(r[:max]))
	}
	return fmt.Sprintf("%q", s)
}
