package relay

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echo answers each line with the same line, and closes when the client does.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader) time.Duration {
	t.Helper()
	began := time.Now()
	_, err := c.Write([]byte("ping\n"))
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ping\n", line)
	return time.Since(began)
}

func TestDelaysEachDirection(t *testing.T) {
	const oneWay = 20 * time.Millisecond
	for _, handshake := range []bool{false, true} {
		r, err := Start(Options{Listen: "127.0.0.1:0", Target: echo(t), OneWay: oneWay, Handshake: handshake})
		require.NoError(t, err)
		c, err := net.Dial("tcp", r.Addr())
		require.NoError(t, err)
		br := bufio.NewReader(c)
		first := roundTrip(t, c, br)
		want := 2 * oneWay
		if handshake {
			want += 2 * oneWay
		}
		assert.GreaterOrEqual(t, first, want, "first round trip, handshake %v", handshake)
		// Bounds wide enough for a loaded machine, narrow enough that one
		// delay too many (a handshake on every round trip) shows.
		assert.Less(t, first, want+2*oneWay, "first round trip, handshake %v", handshake)
		again := roundTrip(t, c, br)
		assert.GreaterOrEqual(t, again, 2*oneWay)
		assert.Less(t, again, 4*oneWay, "the handshake delay is the first round trip's only")

		// A close travels to the other end, and its close comes back.
		began := time.Now()
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		_, err = br.ReadByte()
		assert.ErrorIs(t, err, io.EOF)
		assert.GreaterOrEqual(t, time.Since(began), 2*oneWay)
		c.Close()
		require.NoError(t, r.Close())
	}
}

func TestCloseCutsOpenConnections(t *testing.T) {
	r, err := Start(Options{Listen: "127.0.0.1:0", Target: echo(t), OneWay: time.Millisecond})
	require.NoError(t, err)
	c, err := net.Dial("tcp", r.Addr())
	require.NoError(t, err)
	defer c.Close()
	roundTrip(t, c, bufio.NewReader(c))
	require.NoError(t, r.Close())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err)
}

func TestLoopbackOnly(t *testing.T) {
	_, err := Start(Options{Listen: "0.0.0.0:0", Target: "127.0.0.1:1"})
	assert.ErrorContains(t, err, "not a loopback address")
}
