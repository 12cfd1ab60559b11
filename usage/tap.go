package usage

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody bounds the JSON answer a Tap keeps to parse at its end. Chat
// answers are kilobytes; a larger one (embeddings of many inputs) leaves the
// usage unknown and is marked in Record.BodyTooLarge.
const MaxBody = 4 << 20

// Meta is what a Tap needs to know about the answer besides its bytes.
type Meta struct {
	// Kind is the endpoint the request went to (see EndpointKind).
	Kind Kind
	// ContentType chooses how to read: text/event-stream is read line by
	// line, anything else as one JSON document.
	ContentType string
	// ContentEncoding: "" or identity is read as is, gzip through a side
	// decoder; any other encoding is not read (Record.DecodeFailed).
	ContentEncoding string
	// ContentLength, when known (>0), sizes the JSON buffer in one go.
	ContentLength int64
	// GenerationID is the X-Generation-Id header; it wins over the id in
	// the body.
	GenerationID string
}

// MetaFrom fills a Meta from an upstream response.
func MetaFrom(kind Kind, res *http.Response) Meta {
	return Meta{
		Kind:            kind,
		ContentType:     res.Header.Get("Content-Type"),
		ContentEncoding: res.Header.Get("Content-Encoding"),
		ContentLength:   res.ContentLength,
		GenerationID:    res.Header.Get("X-Generation-Id"),
	}
}

// Tap is an io.ReadCloser over an upstream answer body that accounts for
// the answer as it is read. Each Read returns exactly the bytes the body
// gave, in the same call; the Tap looks at them before returning and keeps
// only what it must (see the package doc). When the body ends, at EOF, on a
// read error or on Close, whichever comes first, the Tap calls its callback
// once with the Record.
//
// Like any body, a Tap is read and closed from one goroutine at a time, and
// must be closed: for a gzip answer it runs a side decoder that ends when
// the body does.
type Tap struct {
	body io.ReadCloser
	meta Meta
	done func(Record)

	streamed bool
	gzip     bool
	decErr   string // an encoding the Tap does not read, or a decoder that fell behind

	sc  scanner // server-sent events
	js  []byte  // the JSON answer so far
	big bool    // the JSON answer passed MaxBody
	gz  *gzSide

	acc   accum
	bytes int64

	// deferred holds the error that came with the last bytes: it is
	// returned by the next Read, so that the caller writes those bytes out
	// before the Tap's closing work (parsing a JSON answer, the callback).
	deferred error
	finished bool
	rec      Record
}

// NewTap wraps body. done, if not nil, receives the Record once, on the
// goroutine that reads or closes the Tap; it must not block.
func NewTap(body io.ReadCloser, m Meta, done func(Record)) *Tap {
	t := &Tap{body: body, meta: m, done: done}
	t.streamed = isEventStream(m.ContentType)
	switch enc := strings.ToLower(strings.TrimSpace(m.ContentEncoding)); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		t.gzip = true
		t.gz = newGzSide()
	default:
		t.decErr = fmt.Sprintf("content encoding %q is not read", m.ContentEncoding)
	}
	if !t.streamed && !t.gzip && m.ContentLength > 0 && m.ContentLength <= MaxBody {
		t.js = make([]byte, 0, m.ContentLength)
	}
	return t
}

// Read reads from the body and accounts for what it read.
func (t *Tap) Read(p []byte) (int, error) {
	if t.deferred != nil {
		t.finish(endOf(t.deferred))
		return 0, t.deferred
	}
	n, err := t.body.Read(p)
	if n > 0 && !t.finished {
		t.bytes += int64(n)
		switch {
		case t.gz != nil:
			t.gz.feed(t, p[:n])
		case t.decErr == "":
			t.consume(p[:n])
		}
	}
	if err != nil {
		t.deferred = err
		if n > 0 {
			return n, nil
		}
		t.finish(endOf(err))
	}
	return n, err
}

// Close closes the body. Before the end of the body, it ends the
// accounting: the client went away.
func (t *Tap) Close() error {
	err := t.body.Close()
	end := EndClosed
	if t.deferred != nil {
		end = endOf(t.deferred)
	}
	t.finish(end)
	return err
}

// Result returns the Record, and whether the body has ended.
func (t *Tap) Result() (Record, bool) {
	return t.rec, t.finished
}

// isEventStream reports whether a Content-Type is text/event-stream, with
// or without parameters, without mime.ParseMediaType's map of them.
func isEventStream(ct string) bool {
	const mt = "text/event-stream"
	ct = strings.TrimLeft(ct, " ")
	if len(ct) < len(mt) || !strings.EqualFold(ct[:len(mt)], mt) {
		return false
	}
	rest := strings.TrimLeft(ct[len(mt):], " \t")
	return rest == "" || rest[0] == ';'
}

func endOf(err error) End {
	if errors.Is(err, io.EOF) {
		return EndEOF
	}
	return EndError
}

// consume looks at the next piece of the (decoded) answer. With a gzip
// answer it runs on the side decoder's goroutine.
func (t *Tap) consume(p []byte) {
	if t.streamed {
		t.sse(p)
		return
	}
	if t.big {
		return
	}
	if len(t.js)+len(p) > MaxBody {
		t.big, t.js = true, nil
		return
	}
	t.js = append(t.js, p...)
}

func (t *Tap) finish(end End) {
	if t.finished {
		return
	}
	t.finished = true
	decErr := t.decErr
	if t.gz != nil {
		if err := t.gz.close(); err != nil && decErr == "" {
			// A cut answer cuts its gzip stream too; that is the cut,
			// not a decoding failure.
			if end == EndEOF || !errors.Is(err, io.ErrUnexpectedEOF) {
				decErr = err.Error()
				if !strings.HasPrefix(decErr, "gzip: ") {
					decErr = "gzip: " + decErr
				}
			}
		}
		t.gz = nil
	}
	if t.streamed {
		if end == EndEOF && decErr == "" {
			t.sseEOF()
		}
	} else if !t.big && decErr == "" {
		whole := t.acc.top(str(t.js), t.meta.Kind)
		t.acc.complete = end == EndEOF && whole
	}
	r := Record{
		GenerationID: t.meta.GenerationID,
		Streamed:     t.streamed,
		Gzip:         t.gzip,
		LineSkipped:  t.sc.skipped,
		BodyTooLarge: t.big,
		DecodeFailed: decErr != "",
		DecodeError:  decErr,
		End:          end,
		Bytes:        t.bytes,
	}
	t.acc.record(t.meta.Kind, &r)
	if r.GenerationID == "" {
		r.GenerationID = t.acc.id
	}
	t.rec = r
	t.sc.line, t.js = nil, nil
	if t.done != nil {
		t.done(r)
	}
}
