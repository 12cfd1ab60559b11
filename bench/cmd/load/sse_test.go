package main

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSentNS(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{`data: {"id":"x","sent_ns":1700000000123456789,"choices":[]}`, 1700000000123456789, true},
		{`data: {"sent_ns":42}`, 42, true},
		{`data: {"sent_ns":}`, 0, false},
		{`data: {"id":"x"}`, 0, false},
		{`data: {"sent_ns":99999999999999999999}`, 0, false},
	} {
		got, ok := sentNS([]byte(tc.line))
		assert.Equal(t, tc.ok, ok, tc.line)
		assert.Equal(t, tc.want, got, tc.line)
	}
}

func TestReadStream(t *testing.T) {
	sent := time.Now().Add(-time.Millisecond).UnixNano()
	ev := func() string {
		return `data: {"id":"gen","sent_ns":` + strconv.FormatInt(sent, 10) + `,"choices":[]}` + "\n\n"
	}
	body := ": OPENROUTER PROCESSING\n\n" + ev() + ev() + "data: [DONE]\n\n"
	first := 0
	res, err := readStream(strings.NewReader(body), time.Now(), true, func() { first++ })
	require.NoError(t, err)
	assert.True(t, res.done)
	assert.Equal(t, 2, res.events)
	assert.Equal(t, 1, first)
	require.Len(t, res.latencies, 2)
	assert.GreaterOrEqual(t, res.latencies[0], time.Millisecond)

	res, err = readStream(strings.NewReader(ev()), time.Now(), false, nil)
	require.NoError(t, err)
	assert.False(t, res.done, "EOF before [DONE]")
	assert.Equal(t, 1, res.events)
	assert.Empty(t, res.latencies)

	_, err = readStream(strings.NewReader("data: {}\n\n"), time.Now(), false, nil)
	assert.ErrorIs(t, err, errNoTimestamp)

	_, err = readStream(io.MultiReader(strings.NewReader(ev()), errReader{}), time.Now(), false, nil)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
