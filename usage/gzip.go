package usage

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// maxPending bounds the compressed bytes handed to the side decoder and not
// yet decoded. The decoder outruns any network; this only trips if it is
// starved of CPU for long, and then the usage is given up rather than the
// client slowed down.
const maxPending = 4 << 20

// maxDecoded bounds what one gzip stream may expand to, against a
// compression bomb: far beyond any real answer. A variable for tests.
var maxDecoded int64 = 256 << 20

// gzSide decodes a gzip answer off the client's path. Read hands each
// piece to it without waiting (feed copies the piece into a queue); a
// goroutine inflates the queue and gives the plain bytes to the Tap's
// consume. The copy is what a streaming inflater needs: compress/gzip can
// only pull its input, and a pull that would wait for the next Read cannot
// happen on the reading goroutine.
type gzSide struct {
	mu     sync.Mutex
	data   []byte // queued compressed bytes; data[off:] are not decoded yet
	off    int
	closed bool
	queue  *[]byte // data's pooled buffer

	wake    chan struct{} // one pending wake-up for the decoder
	done    chan struct{} // closed when the decoder has returned
	started bool
	quit    atomic.Bool // the decoder returned; queueing more is pointless
	behind  bool        // feed dropped bytes: the decoded stream is broken from there
	err     error       // the decoder's failure, read after done
}

func newGzSide() *gzSide {
	return &gzSide{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// feed queues p for the decoder, starting it on the first piece. It never
// blocks on the decoder.
func (g *gzSide) feed(t *Tap, p []byte) {
	if g.behind || g.quit.Load() {
		return
	}
	if !g.started {
		g.started = true
		g.queue = queues.Get().(*[]byte)
		g.data = (*g.queue)[:0]
		go g.run(t)
	}
	g.mu.Lock()
	if g.off > 0 { // slide what is left to the front; usually nothing is
		g.data = g.data[:copy(g.data, g.data[g.off:])]
		g.off = 0
	}
	if len(g.data)+len(p) > maxPending {
		g.behind, g.closed = true, true
	} else {
		g.data = append(g.data, p...)
	}
	g.mu.Unlock()
	g.signal()
}

func (g *gzSide) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Read gives the decoder the queued bytes, waiting for more until the Tap
// closes the queue.
func (g *gzSide) Read(p []byte) (int, error) {
	for {
		g.mu.Lock()
		if g.off < len(g.data) {
			n := copy(p, g.data[g.off:])
			g.off += n
			g.mu.Unlock()
			return n, nil
		}
		closed := g.closed
		g.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		<-g.wake
	}
}

// close ends the queue, waits for the decoder to decode what is queued (at
// most maxPending) and returns why it failed, if it did.
func (g *gzSide) close() error {
	if !g.started {
		return nil
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.signal()
	<-g.done
	if g.queue != nil && cap(g.data) <= 1<<20 { // a queue that grew past that is let go
		*g.queue = g.data[:0]
		queues.Put(g.queue)
	}
	g.data, g.queue = nil, nil
	if g.behind {
		return fmt.Errorf("the side decoder fell more than %d MiB behind and stopped", maxPending>>20)
	}
	return g.err
}

// queues hold compressed bytes between Read and the decoder; the decoder
// keeps up, so a small buffer serves a whole answer.
var queues = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

// inflater is the reusable part of a decoder: the gzip state with its
// window, its input buffer and an output buffer, about 80 KiB together.
type inflater struct {
	br  *bufio.Reader
	zr  gzip.Reader
	out [32 << 10]byte
}

var inflaters = sync.Pool{New: func() any { return &inflater{br: bufio.NewReaderSize(nil, 4<<10)} }}

func (g *gzSide) run(t *Tap) {
	defer close(g.done)
	defer g.quit.Store(true)
	z := inflaters.Get().(*inflater)
	defer func() {
		z.br.Reset(nil)
		inflaters.Put(z)
	}()
	z.br.Reset(g)
	if err := z.zr.Reset(z.br); err != nil {
		g.err = err
		return
	}
	var total int64
	for {
		n, err := z.zr.Read(z.out[:])
		if n > 0 {
			if total += int64(n); total > maxDecoded {
				g.err = fmt.Errorf("the answer expands past %d MiB; not read further", maxDecoded>>20)
				return
			}
			t.consume(z.out[:n])
			if t.big { // a JSON answer past MaxBody: nothing more to learn
				return
			}
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			g.err = err
			return
		}
	}
}
