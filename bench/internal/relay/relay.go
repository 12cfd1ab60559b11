// Package relay is a TCP relay that delays each direction by a fixed
// one-way time, so that a benchmark on loopback sees the round trips of a
// distant server: 25 ms each way is a 50 ms round trip.
//
// Bytes keep their order and are not rate-limited: the relay models
// latency, not bandwidth or loss. A close (FIN) travels with the same
// delay as the data before it. With Handshake, the first bytes of a
// connection also wait one round trip, as they would behind a TCP
// handshake over the link; without it, connecting costs nothing, as
// on loopback.
package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/orproxy/orproxy/internal/loopserve"
)

// Options configure a Relay.
type Options struct {
	// Listen is the relay's address; it must be on loopback.
	Listen string
	// Target is the address the relay connects each client to.
	Target string
	// OneWay is the delay of each direction; a round trip takes twice it.
	OneWay time.Duration
	// Handshake delays a connection's first bytes by a round trip more.
	Handshake bool
}

// Relay forwards connections from its address to the target.
type Relay struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start listens and relays until Close.
func Start(opts Options) (*Relay, error) {
	ln, err := loopserve.Listen(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{opts: opts, ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's address.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Close stops accepting, cuts every relayed connection and waits for the
// relay's goroutines.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) forget(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.serve(client)
	}
}

func (r *Relay) serve(client net.Conn) {
	defer r.wg.Done()
	if !r.track(client) {
		return
	}
	defer r.forget(client)
	server, err := net.DialTimeout("tcp", r.opts.Target, 10*time.Second)
	if err != nil {
		return
	}
	if !r.track(server) {
		return
	}
	defer r.forget(server)
	var first time.Duration
	if r.opts.Handshake {
		first = 2 * r.opts.OneWay
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(client, server, first) }()
	go func() { defer wg.Done(); r.pipe(server, client, 0) }()
	wg.Wait()
}

// chunk is bytes read at one time, or the end of the stream (data nil).
type chunk struct {
	data []byte
	due  time.Time
	err  error
}

// pipe copies from → to, each chunk OneWay after it was read. A clean end
// of from half-closes to, after the same delay; an error closes both.
func (r *Relay) pipe(from, to net.Conn, first time.Duration) {
	queue := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range queue {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if c.data == nil {
				if errors.Is(c.err, io.EOF) {
					if tc, ok := to.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
						continue
					}
				}
				to.Close()
				from.Close()
				continue
			}
			if _, err := to.Write(c.data); err != nil {
				to.Close()
				from.Close()
			}
		}
	}()
	if first > 0 {
		time.Sleep(first)
	}
	for {
		buf := make([]byte, 32<<10)
		n, err := from.Read(buf)
		at := time.Now().Add(r.opts.OneWay)
		if n > 0 {
			queue <- chunk{data: buf[:n], due: at}
		}
		if err != nil {
			queue <- chunk{due: at, err: err}
			break
		}
	}
	close(queue)
	<-done
}
