package usage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// step is one Read of a scripted body: the bytes it gives and the error
// that comes with them.
type step struct {
	data []byte
	err  error
}

// script is a body that answers each Read with its next step, then io.EOF
// forever; it counts Reads and Closes.
type script struct {
	steps  []step
	i      int
	reads  int
	closed int
}

func (s *script) Read(p []byte) (int, error) {
	s.reads++
	if s.i >= len(s.steps) {
		return 0, io.EOF
	}
	st := &s.steps[s.i]
	if len(st.data) > len(p) {
		panic("script step larger than the read buffer")
	}
	s.i++
	return copy(p, st.data), st.err
}

func (s *script) Close() error {
	s.closed++
	return nil
}

// pieces splits body at the given offsets (ascending) into Read steps; the
// last step carries end (io.EOF or a failure). With end in its own step
// when alone is true.
func pieces(body []byte, cuts []int, end error, alone bool) []step {
	var steps []step
	prev := 0
	for _, c := range cuts {
		if c > prev && c < len(body) {
			steps = append(steps, step{data: body[prev:c]})
			prev = c
		}
	}
	if prev < len(body) {
		steps = append(steps, step{data: body[prev:]})
	}
	if alone || len(steps) == 0 {
		return append(steps, step{err: end})
	}
	steps[len(steps)-1].err = end
	return steps
}

// every returns cuts at every n bytes.
func every(body []byte, n int) []int {
	var cuts []int
	for c := n; c < len(body); c += n {
		cuts = append(cuts, c)
	}
	return cuts
}

// run reads body through a Tap in the given steps, as ReverseProxy does
// (read until an error, then close), checks that the client got the body
// whole and the callback ran once, and returns the Record.
func run(t testing.TB, m Meta, steps []step) Record {
	t.Helper()
	src := &script{steps: steps}
	var got []Record
	tap := NewTap(src, m, func(r Record) { got = append(got, r) })
	var out []byte
	size := 1
	for _, s := range steps {
		size = max(size, len(s.data))
	}
	buf := make([]byte, size)
	for range len(steps) + 2 {
		n, err := tap.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	require.NoError(t, tap.Close())
	require.Len(t, got, 1, "the callback runs exactly once")
	r, ended := tap.Result()
	require.True(t, ended)
	require.Equal(t, got[0], r)
	var want []byte
	for _, s := range steps {
		want = append(want, s.data...)
	}
	require.True(t, bytes.Equal(want, out), "the client got other bytes than upstream sent")
	require.Equal(t, 1, src.closed)
	return r
}

// whole reads body in one piece to EOF.
func whole(t testing.TB, m Meta, body string) Record {
	t.Helper()
	return run(t, m, pieces([]byte(body), nil, io.EOF, false))
}

// gzipWriters saves the fuzzer the compressor's large state on each run.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func gzipped(t testing.TB, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&b)
	_, err := zw.Write(body)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

var errCut = errors.New("unexpected EOF reading the body")

func sseMeta(k Kind) Meta  { return Meta{Kind: k, ContentType: "text/event-stream; charset=utf-8"} }
func jsonMeta(k Kind) Meta { return Meta{Kind: k, ContentType: "application/json"} }

// sse joins event blocks into a stream with \n\n between events.
func sse(events ...string) string { return strings.Join(events, "\n\n") + "\n\n" }
