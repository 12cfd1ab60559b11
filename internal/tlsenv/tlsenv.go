// Package tlsenv builds the HTTP transport every outbound call of orproxy
// starts from (OpenRouter, the broker, the login's key checks), so they all
// honour the environment the same way: HTTPS_PROXY/HTTP_PROXY/NO_PROXY and an
// extra CA file in SSL_CERT_FILE, on every platform.
package tlsenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Transport returns a transport with bounded dialing and TLS handshakes,
// the environment's proxy settings, and the certificates of SSL_CERT_FILE
// trusted next to the system's.
func Transport() (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ForceAttemptHTTP2 = true
	cfg, err := Config()
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = cfg
	return t, nil
}

// Config returns the TLS configuration for SSL_CERT_FILE, or nil when it is
// not set. Go reads SSL_CERT_FILE itself only on Linux and the BSDs; adding
// its certificates to the system pool makes a company's TLS-inspecting proxy
// work on macOS and Windows as well.
func Config() (*tls.Config, error) {
	file := os.Getenv("SSL_CERT_FILE")
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read SSL_CERT_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("SSL_CERT_FILE %s holds no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
