package auth

import (
	"context"
	"errors"
	"fmt"
)

// RotateStored rotates the stored broker key now, under the store's lock, as
// `orproxy rotate` does. A running daemon notices the new file on its next
// request. brokerFor returns the client for a broker URL; configURL is used
// when the credential does not name its broker.
func RotateStored(ctx context.Context, store *Store, brokerFor func(url string) (Rotator, error), configURL string) (old, next *Credential, err error) {
	unlock, err := store.Lock(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	defer unlock()
	old, err = store.Load()
	if errors.Is(err, ErrNoCredential) {
		return nil, nil, errors.New("nothing to rotate: no credential is stored; run `orproxy login`")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	if old.Source != SourceBroker || old.RefreshToken.IsZero() {
		return old, nil, fmt.Errorf("the stored key came from %s and has no broker refresh token, so it cannot be rotated; run `orproxy login` for a new one", describeSource(old.Source))
	}
	url := old.BrokerURL
	if url == "" {
		url = configURL
	}
	if url == "" {
		return old, nil, errors.New("no broker is configured (broker.url or ORPROXY_BROKER_URL)")
	}
	rotator, err := brokerFor(url)
	if err != nil {
		return old, nil, fmt.Errorf("rotate key: broker %s: %w", url, err)
	}
	answer, err := rotator.Rotate(ctx, old.RefreshToken)
	if err != nil {
		if IsRefreshRejected(err) {
			return old, nil, fmt.Errorf("the broker refused the refresh token (%w); run `orproxy login`", err)
		}
		return old, nil, fmt.Errorf("rotate key: %w", err)
	}
	next = answer.Credential(url)
	if err := store.SaveLocked(next); err != nil {
		// The broker has revoked the old key by now: the new one must not be
		// lost, so say where it can be found.
		return old, next, fmt.Errorf("the broker issued a new key (%s) but saving it to %s failed: %w; fix the file's directory and run `orproxy rotate` again", next.APIKey, store.Path(), err)
	}
	return old, next, nil
}
