package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/testenv"
)

// trustedBrokerCert is the certificate of a broker the daemon trusts: TestMain
// names it in SSL_CERT_FILE before anything loads the system roots, as a
// company does for its own CA.
var trustedBrokerCert tls.Certificate

// trustTestCA makes a certificate for 127.0.0.1, writes it to a file in dir
// and points SSL_CERT_FILE at it.
func trustTestCA(dir string) error {
	cert, pemBytes, err := selfSigned("orproxy test broker")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "broker-ca.pem")
	if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
		return err
	}
	trustedBrokerCert = cert
	return os.Setenv("SSL_CERT_FILE", file)
}

func selfSigned(name string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// brokerFront serves the fake broker of env on one loopback address that
// the test can take down (connection refused) and bring back, over plain
// HTTP or TLS with a chosen certificate.
type brokerFront struct {
	t    *testing.T
	addr string
	h    http.Handler
	srv  *httptest.Server
}

func newBrokerFront(t *testing.T, env *testenv.Env) *brokerFront {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	f := &brokerFront{t: t, addr: addr, h: env.Broker.Handler()}
	t.Cleanup(f.down)
	return f
}

// up serves on the address; cert nil means plain HTTP.
func (f *brokerFront) up(cert *tls.Certificate) {
	f.t.Helper()
	f.down()
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ln, err := net.Listen("tcp", f.addr)
	require.NoError(f.t, err)
	srv.Listener.Close()
	srv.Listener = ln
	if cert == nil {
		srv.Start()
	} else {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		srv.StartTLS()
	}
	f.srv = srv
}

func (f *brokerFront) down() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

// useBrokerAt makes the stored credential name url as its broker: the
// credential's broker wins over the configured one, as for a key issued
// by another broker.
func useBrokerAt(t *testing.T, env *testenv.Env, url string) {
	t.Helper()
	c := env.Stored(t)
	c.BrokerURL = url
	require.NoError(t, env.Store.Save(context.Background(), c))
}

func (d *daemonUnderTest) healthy(t *testing.T) {
	t.Helper()
	resp, err := client.Get(d.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the daemon stays healthy")
}

// TestBrokerUnreachable: a broker that refuses connections or presents a
// certificate the daemon does not trust fails the rotation at once; the
// client gets the original 401 with the reason, the daemon stays healthy,
// and the next 401 after the broker is back rotates as if nothing happened.
func TestBrokerUnreachable(t *testing.T) {
	untrusted, _, err := selfSigned("somebody else")
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		scheme  string
		fault   func(*brokerFront)
		recover func(*brokerFront)
		want    string
	}{
		{"connection refused", "http", func(f *brokerFront) { f.down() }, func(f *brokerFront) { f.up(nil) }, "connection refused"},
		{"untrusted certificate", "https", func(f *brokerFront) { f.up(&untrusted) }, func(f *brokerFront) { f.up(&trustedBrokerCert) }, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			old := env.LoginBroker(t)
			front := newBrokerFront(t, env)
			useBrokerAt(t, env, tc.scheme+"://"+front.addr)
			d := startDaemon(t, env)
			tc.fault(front)
			env.OpenRouter.Revoke(old.APIKey.Reveal())

			start := time.Now()
			status, body := d.post(t, chatBody)
			assert.Equal(t, http.StatusUnauthorized, status)
			assert.Less(t, time.Since(start), time.Second+2*time.Second, "bounded by broker.timeout plus a margin")
			assert.Contains(t, body, "User not found.", "the original 401 message stays")
			assert.Contains(t, body, "rotating the key through the broker failed")
			assert.Contains(t, body, tc.want)
			assert.Zero(t, env.Broker.Stats().RotateCalls, "nothing reached the broker")
			d.healthy(t)

			tc.recover(front)
			status, body = d.post(t, chatBody)
			assert.Equal(t, http.StatusOK, status, "recovers once the broker is back: %s", body)
			assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
		})
	}
}

// TestSlowBrokerWithinTimeout: a broker slower than usual but within
// broker.timeout is waited for; the request succeeds.
func TestSlowBrokerWithinTimeout(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	old := env.LoginBroker(t)
	d := startDaemon(t, env) // broker.timeout 1 s
	env.Broker.SetFault(broker.Fault{Endpoint: "rotate", Delay: 600 * time.Millisecond})
	env.OpenRouter.Revoke(old.APIKey.Reveal())
	start := time.Now()
	status, body := d.post(t, chatBody)
	assert.Equal(t, http.StatusOK, status, body)
	assert.GreaterOrEqual(t, time.Since(start), 600*time.Millisecond, "the request waited for the broker")
	assert.Equal(t, 1, env.Broker.Stats().RotateCalls)
	assert.NotEqual(t, old.APIKey, env.Stored(t).APIKey)
}
