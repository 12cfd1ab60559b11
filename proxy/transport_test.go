package proxy

import (
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

// Rejected completes staticKeys as a KeyProvider; tests that look at the
// calls wrap it in rejectionRecorder.
func (k *staticKeys) Rejected(secret.Secret) error {
	return errors.New("OpenRouter rejected the replacement key too")
}

// Accepted records the keys OpenRouter answered with anything but a 401.
func (k *staticKeys) Accepted(key secret.Secret) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.accepted = append(k.accepted, key)
}

func (k *staticKeys) acceptedKeys() []secret.Secret {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]secret.Secret(nil), k.accepted...)
}

// rejectionRecorder is staticKeys that records the keys reported rejected
// on the retry and answers with why.
type rejectionRecorder struct {
	*staticKeys
	why error

	mu       sync.Mutex
	rejected []secret.Secret
}

func (r *rejectionRecorder) Rejected(key secret.Secret) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, key)
	return r.why
}

func (r *rejectionRecorder) calls() []secret.Secret {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]secret.Secret(nil), r.rejected...)
}

// TestReplacementRejectedTooIsReported: when the key Replace gave is
// rejected on the retry as well, the key provider hears of it (a rotation
// that brought a dead key failed, and must count toward the broker backoff)
// and the client's 401 keeps OpenRouter's message and adds the provider's
// reason. There is never a second retry.
func TestReplacementRejectedTooIsReported(t *testing.T) {
	const why = "the broker issued a new key but OpenRouter rejected it too; orproxy asks the broker again in 2s"
	for _, tc := range []struct {
		name string
		why  error
		want []string
	}{
		{"with a reason", errors.New(why), []string{"User not found.", "(orproxy: " + why + ")"}},
		{"without one, OpenRouter's answer as it came", nil, []string{"User not found."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec *rejectionRecorder
			h := newHarness(t, openrouter.Options{}, func(o *Options) {
				rec = &rejectionRecorder{staticKeys: o.Keys.(*staticKeys), why: tc.why}
				o.Keys = rec
			})
			// rotatedKey is unknown upstream: rejected like a dead key.
			h.keys.replace = func(secret.Secret) (secret.Secret, error) { return secret.New(rotatedKey), nil }
			h.fake.Revoke(storedKey)

			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			for _, w := range tc.want {
				assert.Contains(t, body, w)
			}
			if tc.why == nil {
				assert.NotContains(t, body, "orproxy:")
			}
			assert.Equal(t, []secret.Secret{secret.New(rotatedKey)}, rec.calls(), "told once, of the replacement")
			assert.EqualValues(t, 1, h.keys.replaced.Load())
			assert.Equal(t, 2, h.fake.Count("/api/v1/chat/completions"), "one retry, never a second")
			assert.NotContains(t, body, rotatedKey)
		})
	}
}

// TestAcceptedKeysAreReported: every answer but a 401 tells the key
// provider the key it was sent with works, the replacement after a 401 too,
// so a rotated key leaves its probation on its first good answer; a 401
// never does.
func TestAcceptedKeysAreReported(t *testing.T) {
	h := newHarness(t, openrouter.Options{})
	resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []secret.Secret{secret.New(storedKey)}, h.keys.acceptedKeys())

	h.fake.AddKey(rotatedKey, "rotated", nil)
	h.keys.replace = func(secret.Secret) (secret.Secret, error) { return secret.New(rotatedKey), nil }
	h.fake.Revoke(storedKey)
	resp, _ = h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []secret.Secret{secret.New(storedKey), secret.New(rotatedKey)}, h.keys.acceptedKeys(),
		"the revoked key is not reported, its replacement is")
}

// TestTransportTrustsSSLCertFile: a company TLS-inspecting proxy's CA comes
// in SSL_CERT_FILE, which Go itself reads only on Linux; the transport adds
// it to the system pool so it works everywhere.
func TestTransportTrustsSSLCertFile(t *testing.T) {
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()

	t.Setenv("SSL_CERT_FILE", filepath.Join(t.TempDir(), "none.pem"))
	_, err := NewUpstreamTransport()
	require.ErrorContains(t, err, "read SSL_CERT_FILE")

	notPEM := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	t.Setenv("SSL_CERT_FILE", notPEM)
	_, err = NewUpstreamTransport()
	require.ErrorContains(t, err, "holds no PEM certificate")

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, cert, 0o600))
	t.Setenv("SSL_CERT_FILE", caFile)
	tr, err := NewUpstreamTransport()
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(upstream.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	t.Setenv("SSL_CERT_FILE", "")
	plain, err := NewUpstreamTransport()
	require.NoError(t, err)
	defer plain.CloseIdleConnections()
	_, err = (&http.Client{Transport: plain}).Get(upstream.URL)
	assert.ErrorContains(t, err, "certificate", "without the file the test CA is not trusted")
}

func TestTransportSettings(t *testing.T) {
	tr, err := NewUpstreamTransport()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, tr.MaxIdleConnsPerHost, 64, "Go's default of 2 would reconnect under concurrency")
	assert.NotNil(t, tr.Proxy, "HTTPS_PROXY and NO_PROXY are honoured")
	assert.Zero(t, tr.ResponseHeaderTimeout, "the header timeout is the handler's, with a JSON 504")
	assert.True(t, tr.DisableCompression, "the client's Accept-Encoding goes upstream as it is")
	assert.NotZero(t, tr.TLSHandshakeTimeout)
}
