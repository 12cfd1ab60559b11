package opencode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// ParseError is a config file that cannot be read as JSON with comments.
type ParseError struct {
	// File is the file, when known.
	File string
	// Line and Column are 1-based; Column counts bytes.
	Line, Column int
	Problem      string
}

func (e *ParseError) Error() string {
	where := fmt.Sprintf("line %d, column %d", e.Line, e.Column)
	if e.File != "" {
		where = e.File + ": " + where
	}
	return where + ": " + e.Problem
}

func parseErrorAt(src []byte, offset int, problem string) *ParseError {
	offset = max(0, min(offset, len(src)))
	line := 1 + bytes.Count(src[:offset], []byte("\n"))
	col := offset - (bytes.LastIndexByte(src[:offset], '\n') + 1) + 1
	return &ParseError{Line: line, Column: col, Problem: problem}
}

var bom = []byte("\xef\xbb\xbf")

// document is a config file parsed with hujson, which keeps every comment
// and space, so that the file can be edited in place and written back.
type document struct {
	root hujson.Value
	// src is the file as read, for the indentation around an edit.
	src []byte
	// text is what root's offsets refer to: the file with a byte-order mark
	// turned into spaces (hujson does not know one) and a final newline
	// added when missing (hujson wants a line comment to end with one). It
	// has the file's offsets, so errors point at the user's line.
	text         []byte
	bom, newline bool
}

// parseJSONC reads src the way OpenCode reads its config files, in both
// file names: JSON with comments and trailing commas.
func parseJSONC(src []byte) (*document, error) {
	d := &document{src: src, text: bytes.Clone(src)}
	if bytes.HasPrefix(d.text, bom) {
		copy(d.text, "   ")
		d.bom = true
	}
	if !bytes.HasSuffix(d.text, []byte("\n")) {
		d.text = append(d.text, '\n')
		d.newline = true
	}
	// hujson's values alias the text they were parsed from; the text is
	// ours alone, so the caller's src is never changed.
	root, err := hujson.Parse(d.text)
	if err != nil {
		return nil, parseFailure(d.text, len(src), err)
	}
	d.root = root
	return d, nil
}

// pack is the document's text, with what parseJSONC added taken off again.
func (d *document) pack() []byte {
	out := d.root.Pack()
	if d.newline {
		out = out[:len(out)-1]
	}
	if d.bom {
		copy(out, bom)
	}
	return out
}

// decodeJSONC decodes a config file's JSON with comments into a map, as
// OpenCode would read it.
func decodeJSONC(src []byte) (map[string]any, error) {
	d, err := parseJSONC(src)
	if err != nil {
		return nil, err
	}
	d.root.Standardize()
	var doc map[string]any
	if err := json.Unmarshal(d.root.Pack(), &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// hasComments reports whether any comment is in v: hujson keeps comments
// and whitespace in the Extra fields, so a '/' there starts a comment.
func hasComments(v *hujson.Value) bool {
	comment := func(e hujson.Extra) bool { return bytes.IndexByte(e, '/') >= 0 }
	for x := range v.All() {
		if comment(x.BeforeExtra) || comment(x.AfterExtra) {
			return true
		}
		switch c := x.Value.(type) {
		case *hujson.Object:
			if comment(c.AfterExtra) {
				return true
			}
		case *hujson.Array:
			if comment(c.AfterExtra) {
				return true
			}
		}
	}
	return false
}

// hujsonError is the form of hujson.Parse's errors.
var hujsonError = regexp.MustCompile(`(?s)^hujson: line (\d+), column (\d+): (.*)$`)

// parseFailure turns a hujson error into a ParseError at the same place,
// in words that never repeat the file's text: hujson quotes a bad literal
// whole, and in an OpenCode config that may be an API key. srcLen is the
// length of the file, without the newline parseJSONC may have added.
func parseFailure(text []byte, srcLen int, err error) *ParseError {
	line, col, msg, ok := splitHujsonError(err)
	if !ok {
		return &ParseError{Line: 1, Column: 1, Problem: "is not valid JSON with comments"}
	}
	at := offsetOf(text, line, col)
	end := len(bytes.TrimRight(text[:srcLen], " \t\r\n"))
	switch {
	case strings.HasPrefix(msg, "parsing comment:"):
		return parseErrorAt(text, at, "comment is not terminated (missing */)")
	case strings.HasPrefix(msg, "parsing string:"):
		// The string ran to the end of the file; find where it began by
		// closing it there, which makes it a literal with a line break.
		if line, col, msg, ok := splitHujsonError(reparse(text, '"')); ok && strings.HasPrefix(msg, "invalid literal") {
			if p := offsetOf(text, line, col); p < len(text) && text[p] == '"' {
				return parseErrorAt(text, p, "string is not terminated")
			}
		}
		return parseErrorAt(text, end, "string is not terminated")
	case strings.Contains(msg, "unexpected EOF"):
		return parseErrorAt(text, end, "unexpected end of the file")
	case strings.HasPrefix(msg, "invalid literal"):
		if at < len(text) && text[at] == '"' {
			if stringEndsOnItsLine(text[at:]) {
				return parseErrorAt(text, at, "string holds a control character, an invalid escape or invalid UTF-8")
			}
			return parseErrorAt(text, at, "string is not terminated")
		}
		return parseErrorAt(text, at, "unquoted text: keys and strings need double quotes; other values are numbers, true, false or null")
	case strings.HasPrefix(msg, "invalid UTF-8"):
		return parseErrorAt(text, at, msg)
	case at < len(text) && text[at] == '/':
		return parseErrorAt(text, at, "unexpected '/' (a comment is // … or /* … */)")
	case strings.HasPrefix(msg, "invalid character"):
		// It names one character.
		return parseErrorAt(text, at, msg)
	}
	return parseErrorAt(text, at, "is not valid JSON with comments")
}

func reparse(text []byte, extra byte) error {
	_, err := hujson.Parse(append(bytes.Clone(text), extra))
	return err
}

func splitHujsonError(err error) (line, col int, msg string, ok bool) {
	if err == nil {
		return 0, 0, "", false
	}
	m := hujsonError.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, 0, "", false
	}
	line, err1 := strconv.Atoi(m[1])
	col, err2 := strconv.Atoi(m[2])
	return line, col, m[3], err1 == nil && err2 == nil
}

// offsetOf is the byte offset of a 1-based line and byte column.
func offsetOf(text []byte, line, col int) int {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(text[off:], '\n')
		if i < 0 {
			return len(text)
		}
		off += i + 1
	}
	return min(off+col-1, len(text))
}

// stringEndsOnItsLine reports whether the string that s starts with is
// closed before the end of its line.
func stringEndsOnItsLine(s []byte) bool {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return true
		case '\n':
			return false
		}
	}
	return false
}
