package opencode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"

	"github.com/tailscale/hujson"

	"github.com/orproxy/orproxy/internal/backup"
)

// Merge puts the provider entry of r into an existing opencode.json or
// opencode.jsonc and returns the new text. Only provider.orproxy (replaced
// or added) and, when missing, "$schema" change; every other byte of the
// original, comments and formatting included, stays as it was. Comments and
// trailing commas are accepted, as OpenCode accepts them in both file names;
// a file without them stays plain JSON. Empty input gives r.JSON().
func Merge(existing []byte, r *Result) ([]byte, error) {
	out, _, err := merge(existing, r)
	return out, err
}

type mergeInfo struct {
	replaced     bool // provider.orproxy was there and was replaced
	keptComments bool
}

// kv is a member to insert, in order.
type kv struct {
	key   string
	value any
}

// merge edits the parsed file in place (hujson keeps every comment and
// space of it) and packs it again, so only the members it touches change.
func merge(src []byte, r *Result) ([]byte, mergeInfo, error) {
	var info mergeInfo
	if len(bytes.TrimSpace(bytes.TrimPrefix(src, bom))) == 0 {
		return r.JSON(), info, nil
	}
	doc, err := parseJSONC(src)
	if err != nil {
		return nil, info, err
	}
	top, ok := doc.root.Value.(*hujson.Object)
	if !ok {
		return nil, info, parseErrorAt(doc.text, doc.root.StartOffset, "expected an object ({…})")
	}
	info.keptComments = hasComments(&doc.root)
	unit := indentUnit(doc.src, &doc.root, top)

	// The provider first: inserting into the top object moves its members,
	// and prov points at one of them.
	var topNew []kv
	if last(top, "$schema") == nil {
		topNew = append(topNew, kv{"$schema", SchemaURL})
	}
	if prov := last(top, "provider"); prov == nil {
		topNew = append(topNew, kv{"provider", map[string]Provider{ProviderID: r.Provider}})
	} else {
		pobj, ok := prov.Value.Value.(*hujson.Object)
		if !ok {
			return nil, info, parseErrorAt(doc.text, prov.Value.StartOffset, `"provider" is not an object`)
		}
		if old := last(pobj, ProviderID); old != nil {
			v, err := jsoncValue(r.Provider, lineIndent(doc.src, old.Name.EndOffset), unit)
			if err != nil {
				return nil, info, err
			}
			// Only the value: the spaces and comments around it stay.
			old.Value.Value = v
			info.replaced = true
		} else if err := insertFirst(doc.src, &prov.Value, pobj, unit, []kv{{ProviderID, r.Provider}}); err != nil {
			return nil, info, err
		}
	}
	if len(topNew) > 0 {
		if err := insertFirst(doc.src, &doc.root, top, unit, topNew); err != nil {
			return nil, info, err
		}
	}

	out := doc.pack()
	if err := verify(src, out, r); err != nil {
		return nil, info, err
	}
	return out, info, nil
}

// last returns the last member with key: JSON parsers, OpenCode's included,
// let a repeated key's last value win.
func last(obj *hujson.Object, key string) *hujson.ObjectMember {
	for i := len(obj.Members) - 1; i >= 0; i-- {
		if name, ok := obj.Members[i].Name.Value.(hujson.Literal); ok && name.String() == key {
			return &obj.Members[i]
		}
	}
	return nil
}

// jsoncValue is v as an indented hujson value whose lines after the first
// start with prefix.
func jsoncValue(v any, prefix, indent string) (hujson.ValueTrimmed, error) {
	text, err := marshal(v, prefix, indent)
	if err != nil {
		return nil, err
	}
	parsed, err := hujson.Parse([]byte(text))
	if err != nil {
		return nil, err
	}
	return parsed.Value, nil
}

// insertFirst adds members at the start of obj (the value of objVal), so no
// trailing comma of the original has to be found or fixed. src is the
// file the offsets of the parsed values refer to.
func insertFirst(src []byte, objVal *hujson.Value, obj *hujson.Object, unit string, members []kv) error {
	parent := lineIndent(src, objVal.StartOffset)
	indent := parent + unit
	ownLine := len(obj.Members) > 0 && bytes.IndexByte(obj.Members[0].Name.BeforeExtra, '\n') >= 0
	if ownLine {
		// The first member sits on a line of its own: match its indentation.
		indent = lineIndent(src, obj.Members[0].Name.EndOffset)
	}
	added := make([]hujson.ObjectMember, 0, len(members)+len(obj.Members))
	for _, m := range members {
		key, err := marshal(m.key, "", "")
		if err != nil {
			return err
		}
		value, err := jsoncValue(m.value, indent, unit)
		if err != nil {
			return err
		}
		added = append(added, hujson.ObjectMember{
			Name:  hujson.Value{BeforeExtra: hujson.Extra("\n" + indent), Value: hujson.Literal(key)},
			Value: hujson.Value{BeforeExtra: hujson.Extra(" "), Value: value},
		})
	}
	switch {
	case len(obj.Members) > 0:
		if !ownLine {
			// A compact object: move its old members off the new one's last line.
			first := &obj.Members[0].Name
			first.BeforeExtra = append(hujson.Extra("\n"+indent), first.BeforeExtra...)
		}
	case len(bytes.TrimSpace(obj.AfterExtra)) == 0:
		// An empty object: lay it out afresh.
		obj.AfterExtra = hujson.Extra("\n" + parent)
	default:
		// Empty but for comments, which stay after the new members.
	}
	obj.Members = append(added, obj.Members...)
	return nil
}

// lineIndent is the leading whitespace of the line holding src[at].
func lineIndent(src []byte, at int) string {
	start := bytes.LastIndexByte(src[:at], '\n') + 1
	end := start
	for end < len(src) && (src[end] == ' ' || src[end] == '\t') {
		end++
	}
	return string(src[start:end])
}

// indentUnit guesses the file's indentation step from its first member;
// two spaces when there is nothing to go by.
func indentUnit(src []byte, root *hujson.Value, top *hujson.Object) string {
	if len(top.Members) == 0 || bytes.IndexByte(top.Members[0].Name.BeforeExtra, '\n') < 0 {
		return "  "
	}
	u := strings.TrimPrefix(lineIndent(src, top.Members[0].Name.EndOffset), lineIndent(src, root.StartOffset))
	if u == "" || (strings.Trim(u, " ") != "" && strings.Trim(u, "\t") != "") {
		return "  "
	}
	return u
}

// verify re-reads the merged text and checks that it says what the original
// said, plus our provider and a schema. It guards the editing: a bug there
// must stop the write, not damage the user's config.
func verify(src, out []byte, r *Result) error {
	before, err := decodeJSONC(src)
	if err != nil {
		return err
	}
	after, err := decodeJSONC(out)
	if err != nil {
		return fmt.Errorf("merging produced unreadable text (%v); nothing was written", err)
	}
	want := map[string]any{}
	for k, v := range before {
		want[k] = v
	}
	if _, ok := want["$schema"]; !ok {
		want["$schema"] = SchemaURL
	}
	var ours any
	raw, err := json.Marshal(r.Provider)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &ours); err != nil {
		return err
	}
	providers := map[string]any{}
	if old, ok := want["provider"].(map[string]any); ok {
		for k, v := range old {
			providers[k] = v
		}
	}
	providers[ProviderID] = ours
	want["provider"] = providers
	if !reflect.DeepEqual(want, after) {
		return errors.New("merging would have changed more than the orproxy provider; nothing was written")
	}
	return nil
}

// WriteResult is what WriteFile did.
type WriteResult struct {
	// Path is the file written; a symlink is followed, so this is its target.
	Path string
	// Backup holds the previous contents; empty when the file was new or is
	// unchanged.
	Backup string
	// Created says the file did not exist before.
	Created bool
	// Unchanged says the file already held exactly this provider.
	Unchanged bool
	// Replaced says an earlier orproxy provider was replaced.
	Replaced bool
	// KeptComments says the file had comments, which were kept.
	KeptComments bool
	// Models is the number of models in the provider.
	Models int
	// Tightened is the mode the file had before it was made private
	// because it now holds the access token; zero when it was left as is.
	Tightened fs.FileMode
}

func (w *WriteResult) String() string {
	var b strings.Builder
	switch {
	case w.Unchanged:
		fmt.Fprintf(&b, "%s already has this orproxy provider; nothing to change", w.Path)
	case w.Created:
		fmt.Fprintf(&b, "Created %s with the orproxy provider (%d models)", w.Path, w.Models)
	case w.Replaced:
		fmt.Fprintf(&b, "Replaced the orproxy provider in %s (%d models); the previous file is %s", w.Path, w.Models, w.Backup)
	default:
		fmt.Fprintf(&b, "Added the orproxy provider to %s (%d models); the previous file is %s", w.Path, w.Models, w.Backup)
	}
	b.WriteString("\n")
	if w.KeptComments && !w.Unchanged {
		b.WriteString("Comments in the file were kept; only the orproxy provider changed.\n")
	}
	if w.Tightened != 0 {
		fmt.Fprintf(&b, "%s holds the proxy's access token, so its mode was changed from %#o to %#o (owner only).\n",
			w.Path, w.Tightened, privateMode)
		if w.Backup != "" {
			fmt.Fprintf(&b, "The backup %s is %#o too.\n", w.Backup, privateMode)
		}
	}
	b.WriteString(`Pick a model in OpenCode as "orproxy/<model id>", e.g. with /models.` + "\n")
	return b.String()
}

// privateMode is the mode of a config file that holds the access token.
const privateMode fs.FileMode = 0o600

// WriteFile merges r into the OpenCode config file at path, creating it if
// missing. A file that cannot be parsed is refused and left untouched.
// Otherwise the previous contents go to a new <path>.bak-<UTC time> first
// (0600; the last 5 are kept), and the new text is written to a temporary
// file in the same directory and renamed over the original, keeping its
// permissions, so a crash leaves the old or the new file, never half of
// one. When r includes the access token, a file readable by group or others
// is made 0600 instead.
func WriteFile(path string, r *Result) (*WriteResult, error) {
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		// Keep a symlinked config (dotfiles) a symlink: write its target.
		target = resolved
	}
	res := &WriteResult{Path: target, Models: len(r.Provider.Models)}
	old, err := os.ReadFile(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		mode := fs.FileMode(0o644)
		if r.TokenIncluded {
			mode = privateMode
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the directory of %s: %w", target, err)
		}
		if err := writeAtomic(target, r.JSON(), mode, nil); err != nil {
			return nil, err
		}
		res.Created = true
		return res, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %w", target, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", target, err)
	}
	merged, info, err := merge(old, r)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = target
			return nil, fmt.Errorf("cannot update %w; the file was left unchanged", pe)
		}
		return nil, fmt.Errorf("cannot update %s: %w; the file was left unchanged", target, err)
	}
	res.Replaced, res.KeptComments = info.replaced, info.keptComments
	mode := fi.Mode().Perm()
	// Windows has no group and other bits to clear; its ACLs are left alone.
	if r.TokenIncluded && mode&0o077 != 0 && runtime.GOOS != "windows" {
		res.Tightened, mode = mode, privateMode
	}
	if bytes.Equal(merged, old) {
		res.Unchanged = true
		if res.Tightened != 0 {
			if err := os.Chmod(target, mode); err != nil {
				return nil, fmt.Errorf("%s holds the access token but cannot be made private: %w", target, err)
			}
		}
		return res, nil
	}
	// A new backup each time (the last few are kept), 0600: the old text
	// may hold the same token.
	res.Backup, err = backup.Write(path, "bak", old, backup.Options{Owner: fi})
	if err != nil {
		return nil, fmt.Errorf("cannot write the backup, so %s was left unchanged: %w", target, err)
	}
	if err := writeAtomic(target, merged, mode, fi); err != nil {
		return nil, err
	}
	return res, nil
}

// writeAtomic writes data to a temporary file next to path and renames it
// over path. like, when set, is the file whose owner the new file keeps.
func writeAtomic(path string, data []byte, mode fs.FileMode, like fs.FileInfo) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("cannot set the permissions of %s: %w", path, err)
	}
	if like != nil {
		keepOwner(tmp, like)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot replace %s: %w", path, err)
	}
	return nil
}
