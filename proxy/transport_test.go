package proxy

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
