package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	dataPrefix = []byte("data: ")
	doneLine   = []byte("data: [DONE]")
	sentKey    = []byte(`"sent_ns":`)
)

// sentNS returns the send time an event line carries in its sent_ns member.
func sentNS(line []byte) (int64, bool) {
	i := bytes.Index(line, sentKey)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(sentKey):]
	var n int64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<63-1-9)/10 {
			return 0, false // would overflow
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}

// streamResult is what one SSE stream delivered.
type streamResult struct {
	firstEvent time.Duration   // from the request's start to the first event
	latencies  []time.Duration // per event: received − sent
	events     int
	done       bool // "data: [DONE]" arrived
}

var errNoTimestamp = errors.New("an event without sent_ns")

// readStream reads SSE events from body until [DONE] or EOF. start is when the
// request began; onFirst, if set, runs when the first event arrives.
func readStream(body io.Reader, start time.Time, keepLatencies bool, onFirst func()) (streamResult, error) {
	var res streamResult
	br := bufio.NewReaderSize(body, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return res, fmt.Errorf("an SSE line longer than %d bytes", br.Size())
		}
		if len(line) > 0 {
			now := time.Now()
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case bytes.Equal(line, doneLine):
				res.done = true
				return res, nil
			case bytes.HasPrefix(line, dataPrefix):
				sent, ok := sentNS(line)
				if !ok {
					return res, errNoTimestamp
				}
				if res.events == 0 {
					res.firstEvent = now.Sub(start)
					if onFirst != nil {
						onFirst()
					}
				}
				res.events++
				if keepLatencies {
					res.latencies = append(res.latencies, time.Duration(now.UnixNano()-sent))
				}
			}
		}
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
	}
}
