package testkit

import (
	"bufio"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ReadEachStep proves a stream is passed on piece by piece: it lets the
// upstream send one piece at a time (step, a stepped fake's Step) and reads
// that piece from the client's side before the next is sent, until step
// fails (the stream is done) or the [DONE] marker arrives. It returns how
// many pieces came through.
func ReadEachStep(t testing.TB, client *bufio.Reader, step func(context.Context) (string, error)) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pieces := 0
	for {
		piece, err := step(ctx)
		if err != nil {
			return pieces // the stream has sent everything
		}
		got := make([]byte, len(piece))
		_, err = io.ReadFull(client, got)
		require.NoError(t, err, "piece %d did not reach the client before the next was sent", pieces)
		require.Equal(t, piece, string(got))
		pieces++
		if piece == "data: [DONE]\n\n" {
			return pieces
		}
	}
}
