package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ValidateServiceURL checks a URL the way Load checks upstream and
// broker.url, for commands that take one outside Load (`config init
// --broker`). The error shows the URL without its password.
func ValidateServiceURL(raw string) error { return validateServiceURL(raw) }

// SetInFile returns the config file data with the scalar at key (dotted, as
// in Keys) replaced by value, written as a quoted string. Only that value's
// text changes: comments, order and layout stay as the user (or the example
// file) wrote them, which a decode and re-encode would not keep. The key
// must already be in data with a one-line value.
func SetInFile(data []byte, key, value string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("read the config text: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("the config text has no %s to set", key)
	}
	n := doc.Content[0]
	for _, part := range strings.Split(key, ".") {
		n = valueOf(n, part)
		if n == nil {
			return nil, fmt.Errorf("the config text has no %s to set", key)
		}
	}
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return nil, fmt.Errorf("%s is not a one-line value in the config text", key)
	}
	quoted, err := quote(value)
	if err != nil {
		return nil, err
	}

	lines := bytes.Split(data, []byte("\n"))
	if n.Line < 1 || n.Line > len(lines) {
		return nil, fmt.Errorf("%s: line %d is outside the text", key, n.Line)
	}
	// yaml counts columns in characters.
	line := []rune(string(lines[n.Line-1]))
	start := n.Column - 1
	if start < 0 || start > len(line) {
		return nil, fmt.Errorf("%s: column %d is outside line %d", key, n.Column, n.Line)
	}
	// The old value runs to the end of the line or to its comment, which
	// is kept with the space before it.
	old, tail, eol := string(line[start:]), "", ""
	if trimmed, ok := strings.CutSuffix(old, "\r"); ok {
		old, eol = trimmed, "\r"
	}
	if n.LineComment != "" {
		if i := strings.LastIndex(old, n.LineComment); i >= 0 {
			tail = old[len(strings.TrimRight(old[:i], " \t")):]
		}
	}
	lines[n.Line-1] = []byte(string(line[:start]) + quoted + tail + eol)
	out := bytes.Join(lines, []byte("\n"))

	// The edit is checked by reading it back, so a quoting or position
	// mistake can never be written to a user's file.
	var check yaml.Node
	if err := yaml.Unmarshal(out, &check); err != nil || len(check.Content) == 0 {
		return nil, fmt.Errorf("setting %s would break the config text", key)
	}
	got := check.Content[0]
	for _, part := range strings.Split(key, ".") {
		if got = valueOf(got, part); got == nil {
			break
		}
	}
	if got == nil || got.Value != value {
		return nil, fmt.Errorf("setting %s would break the config text", key)
	}
	return out, nil
}

// valueOf is the value node of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolveAlias(n.Content[i+1])
		}
	}
	return nil
}

// quote writes s as a YAML double-quoted scalar: a JSON string is one, and
// it escapes every control character.
func quote(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
