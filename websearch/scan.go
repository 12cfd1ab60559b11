package websearch

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// maxDepth is encoding/json's nesting limit. Using the same one keeps "valid"
// meaning exactly what encoding/json.Valid means, which the fuzz targets check.
const maxDepth = 10000

// depthStack records, per nesting level, whether the open container is an
// object. A fixed array keeps the scanner free of allocations.
type depthStack [maxDepth/64 + 1]uint64

func (s *depthStack) set(depth int, object bool) {
	if object {
		s[depth>>6] |= 1 << (depth & 63)
	} else {
		s[depth>>6] &^= 1 << (depth & 63)
	}
}

func (s *depthStack) object(depth int) bool { return s[depth>>6]&(1<<(depth&63)) != 0 }

// span is the position of a value in the body, b[start:end]. end == 0 means
// absent: a value cannot end at offset 0.
type span struct{ start, end int }

func (s span) ok() bool { return s.end > 0 }

// topLevel is what one scan of a body learns about its top-level object.
// Where a member repeats, the last one wins, as in encoding/json and
// JavaScript's JSON.parse (OpenRouter's side).
type topLevel struct {
	tools, model, messages, input, plugins, models, stream span

	// nTools counts "tools" members; with two, parsers disagree on which
	// list counts.
	nTools int
	// dupKey is set when a member other than tools that the patch decision
	// reads appears more than once.
	dupKey bool
	// lastEnd is the offset just past the last member's value; 0 for {}.
	lastEnd int
}

// parseTop scans the whole body once, validating it the way
// encoding/json.Valid does, and records the spans of the top-level members the
// patch needs. It reports false for invalid JSON and for any top-level value
// other than an object.
func parseTop(b []byte, t *topLevel, st *depthStack) bool {
	*t = topLevel{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ks := i
		if i = skipString(b, i); i < 0 {
			return false
		}
		key := b[ks+1 : i-1]
		if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
			return false
		}
		vs := skipWS(b, i+1)
		if vs >= len(b) {
			return false
		}
		if i = skipValue(b, vs, 1, st); i < 0 {
			return false
		}
		t.record(key, span{vs, i})
		t.lastEnd = i
		if i = skipWS(b, i); i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func (t *topLevel) record(key []byte, v span) {
	var dst *span
	switch keyOf(key) {
	case keyTools:
		t.nTools++
		t.tools = v
		return
	case keyModel:
		dst = &t.model
	case keyMessages:
		dst = &t.messages
	case keyInput:
		dst = &t.input
	case keyPlugins:
		dst = &t.plugins
	case keyModels:
		dst = &t.models
	case keyStream:
		// Only logged, never decides anything, so a repeat is harmless.
		t.stream = v
		return
	default:
		return
	}
	if dst.ok() {
		t.dupKey = true
	}
	*dst = v
}

type key uint8

const (
	keyOther key = iota
	keyTools
	keyModel
	keyMessages
	keyInput
	keyPlugins
	keyModels
	keyStream
	// keyType is not a top-level member the patch reads: tools' "type".
	keyType
)

func keyNamed(name []byte) key {
	// A conversion used only as a switch operand does not allocate.
	switch string(name) {
	case "tools":
		return keyTools
	case "model":
		return keyModel
	case "messages":
		return keyMessages
	case "input":
		return keyInput
	case "plugins":
		return keyPlugins
	case "models":
		return keyModels
	case "stream":
		return keyStream
	case "type":
		return keyType
	}
	return keyOther
}

// keyOf identifies a member name (raw, without its quotes). Names are compared
// after JSON unescaping, because "t\u006fols" is "tools" to every JSON parser
// upstream.
func keyOf(raw []byte) key {
	const longest = len("messages")
	if bytes.IndexByte(raw, '\\') < 0 {
		return keyNamed(raw)
	}
	if len(raw) > longest*len(`\u0000`) {
		return keyOther
	}
	var buf [longest]byte
	n := 0
	for i := 0; i < len(raw); i++ {
		if n == len(buf) {
			return keyOther
		}
		c := raw[i]
		if c == '\\' {
			// raw passed the scanner, so every escape is complete.
			i++
			switch raw[i] {
			case 'u':
				r := hexVal(raw[i+1])<<12 | hexVal(raw[i+2])<<8 | hexVal(raw[i+3])<<4 | hexVal(raw[i+4])
				if r >= 0x80 {
					return keyOther // the names we look for are ASCII
				}
				c = byte(r)
				i += 4
			case '"', '\\', '/':
				c = raw[i]
			default:
				return keyOther // \b \f \n \r \t are in none of our names
			}
		}
		buf[n] = c
		n++
	}
	return keyNamed(buf[:n])
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the offset just past the value starting at b[i], or -1 if
// no valid value starts there. depth is the nesting depth of the container
// holding the value. It loops instead of recursing, so hostile nesting costs
// no stack.
func skipValue(b []byte, i, depth int, st *depthStack) int {
	base := depth
	for {
		// Here b[i] starts a value.
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '"':
			if i = skipString(b, i); i < 0 {
				return -1
			}
		case '{', '[':
			if depth++; depth > maxDepth {
				return -1
			}
			st.set(depth, c == '{')
			if i = skipWS(b, i+1); i >= len(b) {
				return -1
			}
			if c == '{' {
				if b[i] == '}' {
					i++
					depth--
					break
				}
				if i = skipKey(b, i); i < 0 {
					return -1
				}
				continue
			}
			if b[i] == ']' {
				i++
				depth--
				break
			}
			continue
		case 't':
			if i = skipLiteral(b, i, "true"); i < 0 {
				return -1
			}
		case 'f':
			if i = skipLiteral(b, i, "false"); i < 0 {
				return -1
			}
		case 'n':
			if i = skipLiteral(b, i, "null"); i < 0 {
				return -1
			}
		default:
			if i = skipNumber(b, i); i < 0 {
				return -1
			}
		}
		// A value ended at i: close finished containers, then move to the
		// next value.
		for {
			if depth == base {
				return i
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			obj := st.object(depth)
			c := b[i]
			if c == ',' {
				if i = skipWS(b, i+1); obj {
					i = skipKey(b, i)
				}
				break
			}
			if (obj && c == '}') || (!obj && c == ']') {
				i++
				depth--
				continue
			}
			return -1
		}
		if i < 0 {
			return -1
		}
	}
}

// skipKey moves over `"name" :` and the whitespace after it to the member's
// value, or returns -1.
func skipKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = skipString(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		if i++; i >= len(b) {
			return -1
		}
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// stringStop marks the bytes that end a run of plain string content.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// skipString returns the offset just past the string starting at b[i] (a
// quote), or -1. Like encoding/json it rejects control characters and bad
// escapes but lets invalid UTF-8 through.
func skipString(b []byte, i int) int {
	i++
	for {
		// Most of a chat body is string content: look for the next quote,
		// backslash or control character eight bytes at a time.
		for i+8 <= len(b) {
			if m := stopBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto stop
			}
			i += 8
		}
		for i < len(b) && !stringStop[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
	stop:
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
}

// stopBytes sets the high bit of each byte of w (little-endian) that is a
// quote, a backslash or below 0x20. Bits above the lowest one may be false
// positives (borrows), so only the lowest is used.
func stopBytes(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := w ^ (ones * '"')
	s := w ^ (ones * '\\')
	return ((w - ones*0x20) | (q - ones) | (s - ones)) &^ w & highs
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
