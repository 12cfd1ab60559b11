package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/secret"
)

type rotatorFunc func(ctx context.Context, refresh secret.Secret) (*BrokerCredential, error)

func (f rotatorFunc) Rotate(ctx context.Context, refresh secret.Secret) (*BrokerCredential, error) {
	return f(ctx, refresh)
}

// The new credential is handed to issued before the file has it, and the
// result carries the stamp of the file the save wrote.
func TestRotationIssuesBeforeItSaves(t *testing.T) {
	s := newTestStore(t)
	old := fullCredential()
	require.NoError(t, s.Save(testCtx(t), old))
	newKey := secret.New(testKey[:len(testKey)-4] + "beef")
	var onDiskWhenIssued *Credential
	r := rotation{
		store: s,
		brokerFor: func(string) (Rotator, error) {
			return rotatorFunc(func(context.Context, secret.Secret) (*BrokerCredential, error) {
				return &BrokerCredential{APIKey: newKey, RefreshToken: old.RefreshToken}, nil
			}), nil
		},
		issued: func(next *Credential) {
			assert.Equal(t, newKey, next.APIKey)
			var err error
			onDiskWhenIssued, err = s.Load()
			require.NoError(t, err)
		},
	}
	unlock, err := s.lock(testCtx(t))
	require.NoError(t, err)
	res, err := r.underLock(testCtx(t), old.APIKey)
	unlock()
	require.NoError(t, err)
	require.NoError(t, res.saveErr)
	assert.Equal(t, old.APIKey, onDiskWhenIssued.APIKey, "issued before saved")
	assert.Equal(t, old.APIKey, res.old.APIKey)
	assert.Equal(t, old.BrokerURL, res.next.BrokerURL, "rotated where it was issued")
	now, err := s.stamp()
	require.NoError(t, err)
	assert.True(t, res.stamp.equal(now))
}

// A key other than the one the caller meant to rotate is in the file: the
// rotation stops there, without asking the broker.
func TestRotationFindsTheKeyRotatedMeanwhile(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.Save(testCtx(t), fullCredential()))
	r := rotation{store: s, brokerFor: func(string) (Rotator, error) {
		t.Error("the broker was asked")
		return nil, errors.New("no")
	}}
	res, err := r.underLock(testCtx(t), secret.New("sk-or-v1-the-one-before"))
	require.ErrorIs(t, err, ErrRotatedMeanwhile)
	assert.Equal(t, fullCredential().APIKey, res.next.APIKey)
}

func TestRotationErrorKindsAndWords(t *testing.T) {
	refused := &BrokerError{Op: opRotate, Status: 401, Message: "revoked"}
	down := &BrokerError{Op: opRotate, Status: 503, Message: "down"}
	for _, tc := range []struct {
		err      *RotationError
		is       []error
		isNot    []error
		message  string
		retryMsg string
	}{
		{err: needsLogin("no credential is stored"), is: []error{ErrNeedsLogin}, isNot: []error{ErrRefreshRejected, ErrBrokerFailed},
			message: "no credential is stored; run `orproxy login`"},
		{err: brokerFailed(refused, 0), is: []error{ErrRefreshRejected, ErrNeedsLogin}, isNot: []error{ErrBrokerFailed},
			message: "the broker refused the refresh token (broker rotate: 401 Unauthorized: revoked); run `orproxy login`"},
		{err: brokerFailed(down, 0), is: []error{ErrBrokerFailed}, isNot: []error{ErrNeedsLogin},
			message:  "rotating the key through the broker failed: broker rotate: 503 Service Unavailable: down; if this persists, run `orproxy rotate` or `orproxy login`",
			retryMsg: "rotating the key through the broker failed: broker rotate: 503 Service Unavailable: down; orproxy asks the broker again in 2s; if this persists, run `orproxy rotate` or `orproxy login`"},
		{err: sameKey(true), is: []error{ErrSameKey}, isNot: []error{ErrBrokerFailed},
			message:  "rotating the key through the broker failed: the broker returned the key OpenRouter had just rejected; if this persists, run `orproxy rotate` or `orproxy login`",
			retryMsg: "rotating the key through the broker failed: the broker returned the key OpenRouter had just rejected; orproxy asks the broker again in 2s; if this persists, run `orproxy rotate` or `orproxy login`"},
	} {
		for _, kind := range tc.is {
			assert.ErrorIs(t, tc.err, kind, tc.message)
		}
		for _, kind := range tc.isNot {
			assert.NotErrorIs(t, tc.err, kind, tc.message)
		}
		assert.EqualError(t, tc.err, tc.message)
		again := tc.err.retryingIn(2 * time.Second)
		if tc.retryMsg == "" {
			assert.Same(t, tc.err, again, "only a broker failure says when the broker is asked again")
			continue
		}
		assert.EqualError(t, again, tc.retryMsg)
		assert.Equal(t, tc.err.What, again.What)
	}
	var be *BrokerError
	assert.ErrorAs(t, brokerFailed(down, 0), &be, "the broker's error stays reachable")
}

// Refused refresh tokens reach the backoff like any broker failure (the
// rotation ahead of expiry retries on its own), but the backoff must still
// say that only a login helps, or an automatic login would wait it out.
func TestBackoffAfterRefusedRefreshStillNeedsALogin(t *testing.T) {
	s := newTestStore(t)
	cred := fullCredential()
	require.NoError(t, s.Save(testCtx(t), cred))
	calls := 0
	refusing := rotatorFunc(func(context.Context, secret.Secret) (*BrokerCredential, error) {
		calls++
		return nil, &BrokerError{Op: opRotate, Status: 401, Message: "refresh token revoked"}
	})
	m := NewManager(ManagerOptions{Store: s, BrokerURL: cred.BrokerURL,
		Broker: func(string) (Rotator, error) { return refusing, nil }})
	m.syncWithFile()
	for range FailuresBeforeBackoff {
		_, err := m.rotate(cred.APIKey, "the key expires soon")
		require.ErrorIs(t, err, ErrRefreshRejected)
	}
	require.Equal(t, FailuresBeforeBackoff, calls)

	_, err := m.replace(testCtx(t), cred.APIKey)
	assert.Equal(t, FailuresBeforeBackoff, calls, "backing off: the broker is not asked")
	assert.ErrorIs(t, err, ErrNeedsLogin, "a refused refresh token needs a login, backoff or not")
	assert.Contains(t, err.Error(), "refresh token revoked")
	assert.Contains(t, err.Error(), "orproxy login")
}
