package opencode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	if offset > len(src) {
		offset = len(src)
	}
	if offset < 0 {
		offset = 0
	}
	line := 1 + bytes.Count(src[:offset], []byte("\n"))
	col := offset - (bytes.LastIndexByte(src[:offset], '\n') + 1) + 1
	return &ParseError{Line: line, Column: col, Problem: problem}
}

// standardize turns JSONC (OpenCode reads its config files with comments and
// trailing commas) into plain JSON of exactly the same length: comments,
// trailing commas and a byte-order mark become spaces, newlines stay. Offsets
// in the result are therefore offsets in the original, which lets errors
// point at the user's line and edits be spliced into the original text with
// its comments intact.
func standardize(src []byte) (out []byte, hadComments bool, err error) {
	out = bytes.Clone(src)
	if bytes.HasPrefix(out, []byte("\xef\xbb\xbf")) {
		copy(out, "   ")
	}
	blank := func(from, to int) {
		for i := from; i < to; i++ {
			if out[i] != '\n' && out[i] != '\r' {
				out[i] = ' '
			}
		}
	}
	// Pass 1: strings are skipped, comments blanked.
	for i := 0; i < len(out); i++ {
		switch out[i] {
		case '"':
			end, ok := skipString(out, i)
			if !ok {
				return nil, false, parseErrorAt(src, i, "string is not terminated")
			}
			i = end - 1
		case '/':
			if i+1 >= len(out) {
				return nil, false, parseErrorAt(src, i, "unexpected '/'")
			}
			switch out[i+1] {
			case '/':
				end := bytes.IndexByte(out[i:], '\n')
				if end < 0 {
					end = len(out) - i
				}
				blank(i, i+end)
				hadComments = true
				i += end - 1
			case '*':
				end := bytes.Index(out[i+2:], []byte("*/"))
				if end < 0 {
					return nil, false, parseErrorAt(src, i, "comment is not terminated (missing */)")
				}
				blank(i, i+2+end+2)
				hadComments = true
				i += 2 + end + 1
			default:
				return nil, false, parseErrorAt(src, i, "unexpected '/'")
			}
		}
	}
	// Pass 2: a comma followed only by whitespace and a closing bracket is a
	// trailing comma.
	for i := 0; i < len(out); i++ {
		switch out[i] {
		case '"':
			end, _ := skipString(out, i)
			i = end - 1
		case ',':
			j := i + 1
			for j < len(out) && isSpace(out[j]) {
				j++
			}
			if j < len(out) && (out[j] == '}' || out[j] == ']') {
				out[i] = ' '
			}
		}
	}
	return out, hadComments, nil
}

// skipString returns the offset just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		case '\n':
			return j, false
		}
	}
	return len(b), false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// checkSyntax reports the first syntax error of standardized text at its
// place in the original. json.Unmarshal is used for its error offsets: its
// validating pass reports the offending byte exactly, where a Decoder reports
// offsets relative to its buffer.
func checkSyntax(src, std []byte) error {
	var v any
	err := json.Unmarshal(std, &v)
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return nil
	}
	if strings.Contains(syn.Error(), "unexpected end") {
		return parseErrorAt(src, len(bytes.TrimRight(src, " \t\r\n")), "unexpected end of the file")
	}
	return parseErrorAt(src, int(syn.Offset)-1, syn.Error())
}

// member is one "key": value of an object, by offsets into the text.
type member struct {
	key string
	// keyEnd is just past the key's closing quote.
	keyEnd             int
	valueStart, valEnd int
	value              json.RawMessage
}

// object is an object's braces and members, by offsets into the text.
type object struct {
	open, close int
	members     []member
}

// last returns the last member with key: JSON parsers, OpenCode's included,
// let a repeated key's last value win.
func (o *object) last(key string) *member {
	for i := len(o.members) - 1; i >= 0; i-- {
		if o.members[i].key == key {
			return &o.members[i]
		}
	}
	return nil
}

// parseObject reads the object that std[from:to] holds (std is standardized
// text, so offsets are valid in the original src too). Syntax errors are
// expected to have been reported by checkSyntax already.
func parseObject(src, std []byte, from, to int) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(std[from:to]))
	dec.UseNumber()
	fail := func(err error) error {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			// Offset is just past the offending byte.
			return parseErrorAt(src, from+int(syn.Offset)-1, syn.Error())
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return parseErrorAt(src, to, "unexpected end of the file")
		}
		return parseErrorAt(src, from+int(dec.InputOffset()), err.Error())
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fail(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, parseErrorAt(src, from+int(dec.InputOffset())-1, "expected an object ({…})")
	}
	obj := &object{open: from + int(dec.InputOffset()) - 1}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, parseErrorAt(src, from+int(dec.InputOffset())-1, "expected a quoted key")
		}
		keyEnd := from + int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(err)
		}
		end := from + int(dec.InputOffset())
		start := end - len(raw)
		if start < keyEnd || !bytes.Equal(std[start:end], raw) {
			return nil, fmt.Errorf("cannot locate the value of %q", key)
		}
		obj.members = append(obj.members, member{
			key:        key,
			keyEnd:     keyEnd,
			valueStart: start,
			valEnd:     end,
			value:      raw,
		})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fail(err)
	}
	obj.close = from + int(dec.InputOffset()) - 1
	// Anything after the object other than whitespace is an error, as in
	// OpenCode's parser.
	for i := from + int(dec.InputOffset()); i < to; i++ {
		if !isSpace(std[i]) {
			return nil, parseErrorAt(src, i, "unexpected text after the end of the object")
		}
	}
	return obj, nil
}
