package usage

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// MaxLine bounds the one event line a Tap keeps while it arrives in pieces.
// Usage lines are a few hundred bytes; a longer line (a big tool call, an
// image) is skipped and marked in Record.LineSkipped.
const MaxLine = 1 << 20

// event is the type of a server-sent event, as far as accounting cares.
type event uint8

const (
	evNone  event = iota // not known (yet)
	evOther              // known, and carries nothing to account
	evMessageStart
	evMessageDelta
	evMessageStop
	evError
	evResponseDone   // response.completed, response.incomplete
	evResponseFailed // response.failed
)

func classify(name string) event {
	switch name {
	case "message_start":
		return evMessageStart
	case "message_delta":
		return evMessageDelta
	case "message_stop":
		return evMessageStop
	case "error":
		return evError
	case "response.completed", "response.incomplete":
		return evResponseDone
	case "response.failed":
		return evResponseFailed
	default:
		return evOther
	}
}

// scanner follows the lines of an event stream across Reads.
type scanner struct {
	line     []byte // the line in progress, when it began in an earlier piece
	skipping bool   // the line in progress passed MaxLine; drop it to its end
	afterCR  bool   // the last piece ended in \r, whose \n may come next
	event    event  // the current event's "event:" field
	seenData bool   // a JSON data line was seen (the first names the model)
	skipped  bool   // some data line passed MaxLine
}

// sse consumes the next piece of an event stream. Lines end in \n, \r\n or
// \r, as the SSE format allows; a line that lies whole within p is looked
// at where it is, only one that spans pieces is copied.
func (t *Tap) sse(p []byte) {
	s := &t.sc
	// Event streams end lines in \n; one look for \r per piece spares a
	// second scan of every line.
	cr := bytes.IndexByte(p, '\r') >= 0
	for len(p) > 0 {
		if s.afterCR {
			s.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := lineEnd(p, cr)
		if i < 0 {
			switch {
			case s.skipping:
			case len(s.line)+len(p) > MaxLine:
				s.skipping = true
				s.skipped = s.skipped || isData(s.line, p)
				s.line = s.line[:0]
			default:
				s.line = append(s.line, p...)
			}
			return
		}
		s.afterCR = p[i] == '\r'
		seg := p[:i]
		p = p[i+1:]
		switch {
		case s.skipping:
			s.skipping = false
		case len(s.line) == 0:
			if len(seg) > MaxLine {
				s.skipped = s.skipped || isData(seg, nil)
			} else {
				t.sseLine(seg)
			}
		default:
			if len(s.line)+len(seg) > MaxLine {
				s.skipped = s.skipped || isData(s.line, seg)
			} else {
				s.line = append(s.line, seg...)
				t.sseLine(s.line)
			}
			s.line = s.line[:0]
		}
	}
}

// isData reports whether the line that begins with a and goes on with b is
// a data line: a comment or any other field too long to keep is no loss.
func isData(a, b []byte) bool {
	const prefix = "data:"
	var head [len(prefix)]byte
	n := copy(head[:], a)
	n += copy(head[n:], b)
	return string(head[:n]) == prefix
}

// sseEOF reads a last line the stream did not end with a line break.
func (t *Tap) sseEOF() {
	s := &t.sc
	if !s.skipping && len(s.line) > 0 {
		t.sseLine(s.line)
	}
	s.line = nil
}

// lineEnd finds the first \n, or \r if p may hold one, in p; or -1.
func lineEnd(p []byte, cr bool) int {
	i := bytes.IndexByte(p, '\n')
	if !cr {
		return i
	}
	q := p
	if i >= 0 {
		q = p[:i]
	}
	if j := bytes.IndexByte(q, '\r'); j >= 0 {
		return j
	}
	return i
}

func (t *Tap) sseLine(line []byte) {
	if len(line) == 0 {
		t.sc.event = evNone // a blank line ends the event
		return
	}
	switch line[0] {
	case 'd':
		if bytes.HasPrefix(line, []byte("data:")) {
			t.sseData(trimSpace(line[5:]))
		}
	case 'e':
		if bytes.HasPrefix(line, []byte("event:")) {
			t.sc.event = classify(str(trimSpace(line[6:])))
		}
	}
	// Comments (": OPENROUTER PROCESSING"), id: and retry: carry nothing.
}

func (t *Tap) sseData(d []byte) {
	if len(d) == 0 {
		return
	}
	if d[0] != '{' {
		if string(d) == "[DONE]" {
			t.acc.complete = true
		}
		return
	}
	first := !t.sc.seenData
	t.sc.seenData = true
	switch t.meta.Kind {
	case Responses, Messages:
		t.typed(d, first)
	default:
		// A chat chunk: the first names the model, the provider and the
		// generation; after that only a usage object or an error matters.
		if first || member(d, `"usage"`, 4, '{') || hasError(d) {
			t.acc.top(str(d), t.meta.Kind)
		}
	}
}

// typed handles the data of a Responses or Messages event, whose type is
// the event: field or the payload's "type".
func (t *Tap) typed(d []byte, first bool) {
	ev := t.sc.event
	if ev == evNone {
		ev = fastType(d)
	}
	if ev == evNone && (first || bytes.Contains(d, []byte(`"usage"`)) || bytes.Contains(d, []byte(`"error"`)) ||
		bytes.Contains(d, []byte(`message_stop`)) || bytes.Contains(d, []byte(`response.completed`))) {
		ev = classify(gjson.Get(str(d), "type").Str)
	}
	a := &t.acc
	switch t.meta.Kind {
	case Responses:
		switch ev {
		case evResponseDone:
			a.complete = true
			a.top(gjson.Get(str(d), "response").Raw, Responses)
		case evResponseFailed:
			a.complete, a.errorEvent = true, true
			a.top(gjson.Get(str(d), "response").Raw, Responses)
		case evError:
			a.errorEvent = true
		default:
			if first { // response.created names the model
				a.top(gjson.Get(str(d), "response").Raw, Responses)
			}
		}
	case Messages:
		switch ev {
		case evMessageStart:
			a.top(gjson.Get(str(d), "message").Raw, Messages)
		case evMessageDelta:
			a.top(str(d), Messages)
		case evMessageStop:
			a.complete = true
		case evError:
			a.errorEvent = true
		}
	}
}

// fastType reads the type of a payload that starts with it, as OpenAI's and
// Anthropic's do, without parsing; evNone when it does not.
func fastType(d []byte) event {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(d, []byte(prefix)) {
		return evNone
	}
	rest := d[len(prefix):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return evNone
	}
	return classify(str(rest[:j]))
}

// member reports whether d holds key (a quoted name) followed by a colon
// and the opening byte open, such as `"usage": {`. A quote inside a JSON
// string is escaped, so the quoted key cannot match text inside a string.
func member(d []byte, key string, anchor int, open byte) bool {
	for off := 0; ; {
		i := token(d[off:], key, anchor)
		if i < 0 {
			return false
		}
		off += i + len(key)
		if rest := trimLeft(d[off:]); len(rest) > 0 && rest[0] == ':' {
			if rest = trimLeft(rest[1:]); len(rest) > 0 && rest[0] == open {
				return true
			}
		}
	}
}

// hasError reports whether d may carry an error: an "error" member holding
// an object, or "error" as a value (finish_reason, type).
func hasError(d []byte) bool {
	const key = `"error"`
	for off := 0; ; {
		i := token(d[off:], key, 2)
		if i < 0 {
			return false
		}
		i += off
		if before := trimRight(d[:i]); len(before) > 0 && before[len(before)-1] == ':' {
			return true
		}
		off = i + len(key)
		if rest := trimLeft(d[off:]); len(rest) > 0 && rest[0] == ':' {
			if rest = trimLeft(rest[1:]); len(rest) > 0 && rest[0] == '{' {
				return true
			}
		}
	}
}

// token finds tok in d by looking for its byte tok[anchor]. The obvious
// bytes.Index anchors on tok's first byte, a quote, the commonest byte in
// JSON, and spends its time on false starts; a rare letter ('g' of usage,
// 'r' of error) makes the search a few vector scans per line.
func token(d []byte, tok string, anchor int) int {
	c := tok[anchor]
	for off := anchor; off < len(d); {
		i := bytes.IndexByte(d[off:], c)
		if i < 0 {
			return -1
		}
		// The first byte (a quote) rules out most hits before a compare.
		start := off + i - anchor
		if start+len(tok) <= len(d) && d[start] == tok[0] && string(d[start:start+len(tok)]) == tok {
			return start
		}
		off += i + 1
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimLeft(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func trimRight(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func trimSpace(b []byte) []byte { return trimRight(trimLeft(b)) }
