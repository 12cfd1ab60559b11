package usage

import (
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// fuzzMeta picks the way an answer is read from mode's bits: the kind
// (bits 0-1), server-sent events or JSON (bit 2), gzip (bit 3).
func fuzzMeta(mode uint8) Meta {
	m := Meta{Kind: Kind(mode & 3), ContentType: "application/json"}
	if mode&4 != 0 {
		m.ContentType = "text/event-stream"
	}
	if mode&8 != 0 {
		m.ContentEncoding = "gzip"
	}
	return m
}

// fuzzMode is the mode that reads as m does.
func fuzzMode(m Meta) uint8 {
	mode := uint8(m.Kind)
	if m.ContentType == "text/event-stream" || strings.HasPrefix(m.ContentType, "text/event-stream;") {
		mode |= 4
	}
	if m.ContentEncoding == "gzip" {
		mode |= 8
	}
	return mode
}

// FuzzTap reads any bytes, as any answer kind, split into reads at random
// (from seed): the Tap must not panic, must pass the bytes through, and
// must give the same Record however the bytes arrive (one read, 1-byte
// reads, random reads, the EOF with the last bytes or alone), and the
// same through gzip as plain. Its seeds are in testdata/fuzz/FuzzTap: the
// answers of the table tests in every mode.
func FuzzTap(f *testing.F) {
	for i, tc := range answerCases() {
		f.Add([]byte(tc.body), uint64(i), fuzzMode(tc.meta))
	}
	var buf [4096]byte
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, mode uint8) {
		m := fuzzMeta(mode)
		plain := m
		plain.ContentEncoding = ""
		whole := func() int { return len(buf) }
		want := fuzzRun(t, plain, data, whole, io.EOF, false, buf[:])
		checkRecord(t, want)

		rng := rand.New(rand.NewPCG(seed, uint64(mode)))
		random := func() int { return 1 + rng.IntN(1+rng.IntN(256)) }
		body := data
		if m.ContentEncoding == "gzip" {
			body = gzipped(t, data)
			want.Gzip, want.Bytes = true, int64(len(body))
			if got := fuzzRun(t, m, body, whole, io.EOF, false, buf[:]); got != want {
				t.Fatalf("gzip, one read:\n got %+v\nwant %+v", got, want)
			}
		} else {
			// Through gzip, 1-byte reads cost a hand-off to the decoder
			// per byte: too slow for the fuzzer's minimizing, and
			// TestTapGzip has them.
			if got := fuzzRun(t, m, body, func() int { return 1 }, io.EOF, rng.IntN(2) == 0, buf[:]); got != want {
				t.Fatalf("1-byte reads:\n got %+v\nwant %+v", got, want)
			}
		}
		if got := fuzzRun(t, m, body, random, io.EOF, rng.IntN(2) == 0, buf[:]); got != want {
			t.Fatalf("random reads:\n got %+v\nwant %+v", got, want)
		}
		// A cut anywhere: an error end, and no panic.
		if len(body) > 0 {
			r := fuzzRun(t, m, body[:rng.IntN(len(body))], random, errCut, false, buf[:])
			if r.End != EndError {
				t.Fatalf("a cut body ended %v", r.End)
			}
			checkRecord(t, r)
		}
	})
}

// fuzzRun is run without testify and without building the steps, for the
// fuzzer's speed: it reads body through a Tap in reads of size() bytes,
// the end coming with the last bytes or alone, checks that each Read gave
// the client exactly the next bytes and that the callback ran once, and
// returns the Record.
func fuzzRun(t *testing.T, m Meta, body []byte, size func() int, end error, alone bool, buf []byte) Record {
	t.Helper()
	src := &splitter{body: body, size: size, end: end, alone: alone}
	var got Record
	calls := 0
	tap := NewTap(src, m, func(r Record) { got = r; calls++ })
	pos := 0
	for {
		n, err := tap.Read(buf)
		if n > len(body)-pos || string(buf[:n]) != string(body[pos:pos+n]) {
			t.Fatalf("read at %d gave other bytes than upstream sent", pos)
		}
		pos += n
		if err != nil {
			if err != end || pos != len(body) {
				t.Fatalf("read ended at %d of %d with %v, want %v", pos, len(body), err, end)
			}
			break
		}
	}
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the callback ran %d times", calls)
	}
	return got
}

// splitter is a body that gives body in reads of size() bytes (at most
// the buffer), then end.
type splitter struct {
	body  []byte
	size  func() int
	end   error
	alone bool
}

func (s *splitter) Read(p []byte) (int, error) {
	if len(s.body) == 0 {
		return 0, s.end
	}
	n := copy(p[:min(len(p), s.size())], s.body)
	s.body = s.body[n:]
	if len(s.body) == 0 && !s.alone {
		return n, s.end
	}
	return n, nil
}

func (s *splitter) Close() error { return nil }

// checkRecord checks what holds for every Record.
func checkRecord(t *testing.T, r Record) {
	t.Helper()
	if r.CostKnown {
		if !r.Found || math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) || r.Cost < 0 || r.Cost > MaxCost || math.Signbit(r.Cost) {
			t.Fatalf("cost %v known without a usage object or out of range (found %v)", r.Cost, r.Found)
		}
	} else if r.Cost != 0 {
		t.Fatalf("unknown cost %v", r.Cost)
	}
	for _, n := range []int64{r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens, r.WebSearches} {
		if n < 0 || n > 3*maxTokens || (!r.Found && n != 0) {
			t.Fatalf("count %d out of range or without a usage object (found %v)", n, r.Found)
		}
	}
	for _, s := range []string{r.ModelServed, r.Provider, r.GenerationID} {
		if len(s) > maxName {
			t.Fatalf("a name of %d bytes was kept", len(s))
		}
	}
	if r.DecodeFailed != (r.DecodeError != "") {
		t.Fatalf("DecodeFailed %v with DecodeError %q", r.DecodeFailed, r.DecodeError)
	}
}
