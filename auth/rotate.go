package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orproxy/orproxy/internal/backoff"
	"github.com/orproxy/orproxy/internal/secret"
)

// The kinds of failed rotation. errors.Is matches a *RotationError to its
// kind; ErrRefreshRejected also matches ErrNeedsLogin.
var (
	// ErrNeedsLogin: only a new login helps (no credential, one the broker
	// did not issue, no broker to ask).
	ErrNeedsLogin = errors.New("a new login is needed")
	// ErrRefreshRejected: the broker refused the refresh token.
	ErrRefreshRejected = errors.New("the broker refused the refresh token")
	// ErrBrokerFailed: the broker could not be reached, failed, or issued a
	// key OpenRouter rejects. The current key stays; asking again may help.
	ErrBrokerFailed = errors.New("the broker failed")
	// ErrSameKey: the broker answered with the key it was asked to replace.
	ErrSameKey = errors.New("the broker returned the key it was asked to replace")
	// ErrRotatedMeanwhile: another process replaced the key while this one
	// waited for the lock. The old key is gone already: rotating again
	// would only cost a second broker call.
	ErrRotatedMeanwhile = errors.New("another orproxy process replaced the key meanwhile")
)

// RotationError says why a rotation brought no new key. Its message reaches
// the client inside the 401, or the user of `orproxy rotate`, so it says
// what to do.
type RotationError struct {
	// Kind is one of the Err… kinds above; nil for a key another process
	// stored that OpenRouter rejects too.
	Kind error
	// What is what went wrong, without the advice; /status shows it.
	What string
	// Err is the broker's error, if any.
	Err error
	msg string
}

func (e *RotationError) Error() string { return e.msg }

func (e *RotationError) Unwrap() error { return e.Err }

func (e *RotationError) Is(target error) bool {
	return target == e.Kind || (e.Kind == ErrRefreshRejected && target == ErrNeedsLogin)
}

func needsLogin(what string) *RotationError {
	return &RotationError{Kind: ErrNeedsLogin, What: what, msg: what + "; run `orproxy login`"}
}

func errNothingToRotate() *RotationError { return needsLogin("no credential is stored") }

func noBrokerConfigured() *RotationError {
	return needsLogin("no broker is configured (broker.url or ORPROXY_BROKER_URL)")
}

// brokerFailed is a failed broker call; retryIn is when the daemon asks again
// (zero: not said).
func brokerFailed(err error, retryIn time.Duration) *RotationError {
	if IsRefreshRejected(err) {
		what := "the broker refused the refresh token (" + err.Error() + ")"
		return &RotationError{Kind: ErrRefreshRejected, What: what, Err: err, msg: what + "; run `orproxy login`"}
	}
	return failedRotation(ErrBrokerFailed, err.Error(), err, retryIn)
}

// sameKey words ErrSameKey: afterRejection when OpenRouter had rejected the key.
func sameKey(afterRejection bool) *RotationError {
	what := "the broker returned the key it was asked to replace"
	if afterRejection {
		what = "the broker returned the key OpenRouter had just rejected"
	}
	return failedRotation(ErrSameKey, what, nil, 0)
}

func failedRotation(kind error, what string, err error, retryIn time.Duration) *RotationError {
	again := ""
	if retryIn > 0 {
		again = "; orproxy asks the broker again in " + roundWait(retryIn)
	}
	return &RotationError{Kind: kind, What: what, Err: err,
		msg: "rotating the key through the broker failed: " + what + again + "; if this persists, run `orproxy rotate` or `orproxy login`"}
}

// retryingIn is e saying when the daemon asks the broker again.
func (e *RotationError) retryingIn(wait time.Duration) *RotationError {
	if wait <= 0 || (e.Kind != ErrBrokerFailed && e.Kind != ErrSameKey) {
		return e
	}
	return failedRotation(e.Kind, e.What, e.Err, wait)
}

// errBackingOff is a rotation the daemon does not attempt: the broker failed
// too often in a row.
func errBackingOff(failures int, last string, lastKind error, wait time.Duration) *RotationError {
	what := fmt.Sprintf("the broker failed %d times in a row (last: %s)", failures, last)
	if lastKind == ErrRefreshRejected {
		// Waiting will not bring the broker round: the refresh token is
		// dead, and only a login helps (an automatic one starts on this).
		return &RotationError{Kind: ErrRefreshRejected, What: last, msg: last + "; run `orproxy login`"}
	}
	return &RotationError{Kind: ErrBrokerFailed, What: what,
		msg: what + "; orproxy asks it again in " + roundWait(wait) + "; if this persists, check broker.url and run `orproxy rotate` or `orproxy login`"}
}

// reasonDeadKey is why a rotation failed when OpenRouter rejects the key the
// broker had just issued.
const reasonDeadKey = "the broker issued a new key but OpenRouter rejected it too"

// errDeadKey explains a 401 for a key the broker issued and OpenRouter
// rejected; wait is how long rotations still back off.
func errDeadKey(wait time.Duration) *RotationError {
	when := "on the next request"
	if wait > 0 {
		when = "in " + roundWait(wait)
	}
	return &RotationError{Kind: ErrBrokerFailed, What: reasonDeadKey, msg: reasonDeadKey + "; orproxy asks the broker again " + when +
		"; if this persists, the broker is issuing keys OpenRouter does not accept: tell its administrators, then run `orproxy rotate`"}
}

// errNewerKeyRejected is a 401 for a key another process stored.
func errNewerKeyRejected() *RotationError {
	what := "OpenRouter rejected the newer key in the credential file too"
	return &RotationError{What: what, msg: what + "; if this persists, run `orproxy rotate` or `orproxy login`"}
}

func roundWait(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

func describeSource(s Source) string {
	switch s {
	case SourceOpenRouterOAuth:
		return "OpenRouter's own login"
	case SourceManual:
		return "a pasted key"
	default:
		return string(s)
	}
}

// rotation is one rotation of the stored key: the steps the daemon and
// `orproxy rotate` share, with hooks for what each does differently.
type rotation struct {
	store *Store
	// brokerFor returns the client for a broker URL; nil when no broker is
	// configured at all.
	brokerFor func(url string) (Rotator, error)
	// configURL is the configured broker; a credential's own wins, so a key
	// is rotated where it was issued.
	configURL string
	// callTimeout bounds the broker call; zero leaves it to ctx.
	callTimeout time.Duration
	// afterRejection says OpenRouter rejected the key, for ErrSameKey's words.
	afterRejection bool
	// current picks the credential to rotate from the file as read under
	// the lock; nil takes the file's, which must be readable.
	current func(disk *Credential, st fileStamp, err error) (*Credential, error)
	// issued learns of the new credential before it is saved.
	issued func(next *Credential)
}

// brokerURL is the broker that can rotate c: its own, else the configured one.
func (r rotation) brokerURL(c *Credential) (string, error) {
	if c.Source != SourceBroker || c.RefreshToken.IsZero() {
		return "", needsLogin(fmt.Sprintf("the key came from %s and has no broker refresh token, so it cannot be rotated", describeSource(c.Source)))
	}
	url := cmp.Or(c.BrokerURL, r.configURL)
	if url == "" || r.brokerFor == nil {
		return "", noBrokerConfigured()
	}
	return url, nil
}

// rotated is what a rotation did.
type rotated struct {
	// old is the credential rotated.
	old *Credential
	// next is the new credential; with ErrRotatedMeanwhile the one another
	// process stored; with ErrSameKey, old with the broker's new refresh
	// token, or nil when it sent none.
	next *Credential
	// stamp is the file next was saved as, unless saveErr says it was not.
	stamp   fileStamp
	saveErr error
}

// underLock rotates rejected, the key the caller last saw, with the store's
// lock held by the caller: it re-reads the file, returns ErrRotatedMeanwhile
// if the key there is another, asks the broker, and saves the answer. An
// answer that could not be saved is in the result with its saveErr: the
// broker has revoked the old key by then, so the caller must keep it.
func (r rotation) underLock(ctx context.Context, rejected secret.Secret) (rotated, error) {
	disk, st, err := r.store.loadStamped()
	current := r.current
	if current == nil {
		current = fileCredential
	}
	cur, err := current(disk, st, err)
	if err != nil {
		return rotated{}, err
	}
	if !rejected.IsZero() && cur.APIKey != rejected {
		return rotated{next: cur}, &RotationError{Kind: ErrRotatedMeanwhile, What: ErrRotatedMeanwhile.Error(), msg: ErrRotatedMeanwhile.Error()}
	}
	url, err := r.brokerURL(cur)
	if err != nil {
		return rotated{old: cur}, err
	}
	rotator, err := r.brokerFor(url)
	if err != nil {
		return rotated{old: cur}, needsLogin(fmt.Sprintf("broker %s: %v", url, err))
	}
	bctx := ctx
	if r.callTimeout > 0 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, r.callTimeout)
		defer cancel()
	}
	answer, err := rotator.Rotate(bctx, cur.RefreshToken)
	if err != nil {
		return rotated{old: cur}, brokerFailed(err, 0)
	}
	res := rotated{old: cur}
	if answer.APIKey == cur.APIKey {
		// A broker that rotates refresh tokens has invalidated the old one
		// even when its key is of no use: losing the new one forces a login.
		if token := answer.RefreshToken; !token.IsZero() && token != cur.RefreshToken {
			res.next = cur.Clone()
			res.next.RefreshToken = token
			res.stamp, res.saveErr = r.store.saveLocked(res.next)
		}
		return res, sameKey(r.afterRejection)
	}
	res.next = answer.Credential(url)
	if r.issued != nil {
		r.issued(res.next)
	}
	res.stamp, res.saveErr = r.store.saveLocked(res.next)
	return res, nil
}

// fileCredential is the credential to rotate when the file decides alone.
func fileCredential(disk *Credential, _ fileStamp, err error) (*Credential, error) {
	switch {
	case errors.Is(err, ErrNoCredential):
		return nil, errNothingToRotate()
	case err != nil:
		return nil, fmt.Errorf("rotate key: %w", err)
	}
	return disk, nil
}

// RotateStored rotates the stored broker key now, as `orproxy rotate` does;
// a running daemon notices the new file on its next request. brokerFor
// returns the client for a broker URL; configURL is the configured broker.
// With ErrRotatedMeanwhile, old is the credential it meant to rotate and
// next the one stored now.
func RotateStored(ctx context.Context, store *Store, brokerFor func(url string) (Rotator, error), configURL string) (old, next *Credential, err error) {
	// The key to rotate is the one stored before the wait for the lock, so a
	// key another process rotated meanwhile is not rotated twice.
	seen, _ := store.Load()
	unlock, err := store.lock(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	defer unlock()
	var rejected secret.Secret
	if seen != nil {
		rejected = seen.APIKey
	}
	res, err := rotation{store: store, brokerFor: brokerFor, configURL: configURL}.underLock(ctx, rejected)
	switch {
	case errors.Is(err, ErrRotatedMeanwhile):
		return seen, res.next, err
	case errors.Is(err, ErrSameKey) && res.saveErr != nil:
		return res.old, nil, fmt.Errorf("%w; its new refresh token could not be saved either (%v)", err, res.saveErr)
	case err != nil:
		return res.old, nil, err
	}
	saveErr := res.saveErr
	for try := 1; saveErr != nil && try < saveTries; try++ {
		// A full disk or a file another program holds open may clear within
		// moments; a key the broker issued is not given up lightly.
		time.Sleep(saveRetry.Delay(try - 1))
		_, saveErr = store.saveLocked(res.next)
	}
	if saveErr != nil {
		// The broker has revoked the old key: keep the new one where the
		// user can fetch it, and say where.
		where, rerr := rescue(res.next)
		if rerr != nil {
			return res.old, res.next, fmt.Errorf("the broker issued a new key (%s) but saving it to %s failed (%w), and so did keeping it elsewhere (%v); run `orproxy login` once the directory is writable", res.next.APIKey, store.Path(), saveErr, rerr)
		}
		return res.old, res.next, fmt.Errorf("the broker issued a new key (%s) but saving it to %s failed: %w; it is kept, private, in %s: once the directory is writable, move that file to %s", res.next.APIKey, store.Path(), saveErr, where, store.Path())
	}
	return res.old, res.next, nil
}

// saveTries saves are tried, paced by saveRetry, before the key is rescued.
const saveTries = 3

var saveRetry = backoff.Policy{Base: 200 * time.Millisecond, Max: time.Second}
