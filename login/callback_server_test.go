package login

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
)

// rawCallback sends bytes as they are to the callback server and returns the
// status (0 when the server answered nothing).
func rawCallback(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCallbackServerAcceptsOnlyItsAnswer fills the gaps the login tests leave
// around the callback server: every other method, request forms that name
// another host, a replayed answer, and where it listens. None of them ends
// the login or reaches the broker; the one right answer does, once.
func TestCallbackServerAcceptsOnlyItsAnswer(t *testing.T) {
	f := newFakes(t, broker.Options{})
	// The exchange is slow, so a replay arrives while the first answer is in use.
	f.broker.SetFault(broker.Fault{Endpoint: "exchange", Delay: 300 * time.Millisecond})
	store := newTestStore(t)
	run := startLogin(t, store, brokerOpts(t, f))
	start := run.stdout.waitFor(t, urlLine)
	rt := returnTo(t, start)
	addr := rt.Host
	port := rt.Port()

	// It listens on 127.0.0.1 only.
	assert.Equal(t, "127.0.0.1", rt.Hostname())
	for _, host := range otherAddresses(t) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "the callback port answers on %s", host)
	}

	good := rt.String() + "&code=the-right-code"
	target := strings.TrimPrefix(good, "http://"+addr)
	for _, tc := range []struct {
		name, raw string
		status    int // 0: refused some way (no answer, a redirect or an error)
	}{
		{"HEAD", "HEAD " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"PUT", "PUT " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0\r\n\r\n", http.StatusMethodNotAllowed},
		{"DELETE", "DELETE " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"OPTIONS", "OPTIONS " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusNotFound},
		{"CONNECT", "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 0},
		{"absolute-form naming another host", "GET http://evil.example" + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusBadRequest},
		{"foreign Host", "GET " + target + " HTTP/1.1\r\nHost: evil.example:" + port + "\r\n\r\n", http.StatusBadRequest},
		{"Host without a port", "GET " + target + " HTTP/1.1\r\nHost: evil.example\r\n\r\n", http.StatusBadRequest},
		{"other path", "GET /callback/x?" + rt.RawQuery + "&code=c HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusNotFound},
		{"path escape", "GET /x/../callback?" + rt.RawQuery + "&code=c HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 0},
		{"wrong state with a code", "GET /callback?state=" + url.QueryEscape("x"+rt.Query().Get("state")) + "&code=c HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusBadRequest},
	} {
		status := rawCallback(t, addr, tc.raw)
		if tc.status != 0 {
			assert.Equal(t, tc.status, status, tc.name)
		} else {
			assert.True(t, status == 0 || status >= 300, "%s: %d", tc.name, status)
		}
		assert.True(t, run.running(), "%s ended the login", tc.name)
	}
	assert.Zero(t, f.broker.Stats().ExchangeCalls, "nothing refused reached the broker")

	// The browser delivers the answer; the same answer replayed meanwhile is refused.
	done := make(chan int, 1)
	go func() {
		resp, err := newBrowser().client.Get(start)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return f.broker.Stats().ExchangeCalls == 1 }, 10*time.Second, 2*time.Millisecond)
	assert.Equal(t, http.StatusConflict, rawCallback(t, addr, "GET "+target+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"), "a second answer while the first is in use")
	assert.Equal(t, http.StatusOK, <-done)
	_, err := run.wait(t)
	require.NoError(t, err)
	assert.Equal(t, 1, f.broker.Stats().ExchangeCalls)

	// After the login the port is closed: a replay reaches nothing.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	assert.Error(t, err, "the callback server closed after its answer")
}

// otherAddresses are this machine's addresses other than 127.0.0.1, where a
// callback server bound to 127.0.0.1 must not answer.
func otherAddresses(t *testing.T) []string {
	t.Helper()
	var out []string
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.Equal(net.IPv4(127, 0, 0, 1)) && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}
