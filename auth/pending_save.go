package auth

import (
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

// pendingSave is a key the broker issued that the disk refused. The broker
// has revoked the old key by then, so the new one is used from memory and
// saved again, paced by retry, until a save works or another process
// stores a newer credential. The Manager's mu guards it.
type pendingSave struct {
	retry backoff.Policy

	cred *Credential // nil when nothing is pending
	// replaced is the file's key that cred replaced: a file that holds it
	// is older than cred.
	replaced secret.Secret
	err      string // why the last save failed
	tries    int
	at       time.Time // when the next save is due
}

// keep records that saving c, which replaced the key replaced, failed.
func (p *pendingSave) keep(c *Credential, replaced secret.Secret, err error, now time.Time) {
	if p.cred == nil {
		p.replaced = replaced
	}
	p.cred, p.err, p.tries = c, err.Error(), 1
	p.at = now.Add(p.retry.Delay(0))
}

// failedAgain records another failed save of the pending credential.
func (p *pendingSave) failedAgain(err error, now time.Time) {
	p.err = err.Error()
	p.at = now.Add(p.retry.Delay(p.tries))
	p.tries++
}

// retryNow makes the next save due at once.
func (p *pendingSave) retryNow(now time.Time) { p.at = now }

// clear forgets the pending credential: it is saved, or superseded.
func (p *pendingSave) clear() { p.cred, p.err, p.tries = nil, "", 0 }

// due is the credential to save now, or nil.
func (p *pendingSave) due(now time.Time) *Credential {
	if p.cred == nil || p.at.After(now) {
		return nil
	}
	return p.cred
}

// next is when the next save is due; false when none is pending.
func (p *pendingSave) next() (time.Time, bool) { return p.at, p.cred != nil }

// olderOnDisk reports whether c, read from the file, is older than the
// pending credential: it still holds the key the rotation replaced.
func (p *pendingSave) olderOnDisk(c *Credential) bool { return p.cred != nil && c.APIKey == p.replaced }
