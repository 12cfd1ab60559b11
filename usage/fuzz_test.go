package usage

import (
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, mode uint8) {
		m := fuzzMeta(mode)
		plain := m
		plain.ContentEncoding = ""
		want := run(t, plain, pieces(data, nil, io.EOF, false))
		checkRecord(t, want)

		rng := rand.New(rand.NewPCG(seed, uint64(mode)))
		random := func(b []byte) []int {
			var cuts []int
			for c := rng.IntN(16); c < len(b); c += 1 + rng.IntN(1+rng.IntN(256)) {
				cuts = append(cuts, c)
			}
			return cuts
		}
		body := data
		if m.ContentEncoding == "gzip" {
			body = gzipped(t, data)
			want.Gzip, want.Bytes = true, int64(len(body))
			require.Equal(t, want, run(t, m, pieces(body, nil, io.EOF, false)), "gzip, one read")
		} else {
			// Through gzip, 1-byte reads cost a hand-off to the decoder
			// per byte: too slow for the fuzzer's minimizing, and
			// TestTapGzip has them.
			require.Equal(t, want, run(t, m, pieces(body, every(body, 1), io.EOF, rng.IntN(2) == 0)), "1-byte reads")
		}
		require.Equal(t, want, run(t, m, pieces(body, random(body), io.EOF, rng.IntN(2) == 0)), "random reads")

		// A cut anywhere: never complete unless the end marker came first,
		// and no panic.
		if len(body) > 0 {
			at := rng.IntN(len(body))
			r := run(t, m, pieces(body[:at], random(body[:at]), errCut, false))
			require.Equal(t, EndError, r.End)
			checkRecord(t, r)
		}
	})
}

// checkRecord checks what holds for every Record.
func checkRecord(t *testing.T, r Record) {
	t.Helper()
	if r.CostKnown {
		require.True(t, r.Found, "a known cost comes from a usage object")
		require.False(t, math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0))
		require.GreaterOrEqual(t, r.Cost, 0.0)
		require.LessOrEqual(t, r.Cost, MaxCost)
		require.False(t, math.Signbit(r.Cost), "no negative zero")
	} else {
		require.Zero(t, r.Cost)
	}
	for _, n := range []int64{r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens, r.WebSearches} {
		require.GreaterOrEqual(t, n, int64(0))
		require.LessOrEqual(t, n, int64(3*maxTokens))
		if !r.Found {
			require.Zero(t, n, "counts come from a usage object")
		}
	}
	for _, s := range []string{r.ModelServed, r.Provider, r.GenerationID} {
		require.LessOrEqual(t, len(s), maxName)
	}
	require.Equal(t, r.DecodeFailed, r.DecodeError != "")
}
