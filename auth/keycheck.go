package auth

import (
	"context"
	"net/http"

	"github.com/orproxy/orproxy/internal/secret"
)

// CheckKey asks OpenRouter whether key is good (GET {upstream}/key). A
// *KeyRejectedError means it is not; any other error means the question could
// not be answered (network, 5xx), which callers must not treat as a rejection.
func CheckKey(ctx context.Context, hc *http.Client, upstream string, key secret.Secret) error {
	_, err := checkKey(ctx, hc, upstream, key)
	return err
}
