package opencode

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/backup"
)

func testResult() *Result {
	return &Result{Provider: Provider{
		NPM:     "@ai-sdk/openai-compatible",
		Name:    "orproxy",
		Options: ProviderOptions{BaseURL: "http://127.0.0.1:8765/api/v1", APIKey: PlaceholderAPIKey},
		Models: map[string]Model{
			"anthropic/claude-sonnet-4.6": {Name: "Claude Sonnet 4.6", ToolCall: true, Limit: &Limit{Context: 1000000, Output: 64000}},
			"openai/gpt-5.4":              {Name: "GPT-5.4", ToolCall: true},
		},
	}}
}

// parse reads merged output the way OpenCode does: JSON with comments.
func parse(t *testing.T, text []byte) map[string]any {
	t.Helper()
	doc, err := decodeJSONC(text)
	require.NoError(t, err, "%s", text)
	return doc
}

func ourProvider(t *testing.T) any {
	t.Helper()
	raw, err := json.Marshal(testResult().Provider)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

const existingJSON = `{
  "$schema": "https://opencode.ai/config.json",
  "model": "anthropic/claude-sonnet-4-5",
  "provider": {
    "anthropic": {
      "options": {"apiKey": "{env:ANTHROPIC_API_KEY}"}
    }
  },
  "mcp": {
    "github": {"type": "remote", "url": "https://api.example/mcp", "enabled": true}
  },
  "agent": {"review": {"model": "anthropic/claude-opus-4-1", "prompt": "Be brief."}}
}
`

func TestMergeKeepsEverythingElse(t *testing.T) {
	out, err := Merge([]byte(existingJSON), testResult())
	require.NoError(t, err)
	assert.True(t, json.Valid(out), "plain JSON in, plain JSON out:\n%s", out)

	got := parse(t, out)
	before := parse(t, []byte(existingJSON))
	for _, k := range []string{"$schema", "model", "mcp", "agent"} {
		assert.Equal(t, before[k], got[k], k)
	}
	providers := got["provider"].(map[string]any)
	assert.Equal(t, before["provider"].(map[string]any)["anthropic"], providers["anthropic"])
	assert.Equal(t, ourProvider(t), providers["orproxy"])

	// The rest of the text is untouched, not re-serialized.
	for _, line := range []string{
		`  "mcp": {` + "\n" + `    "github": {"type": "remote", "url": "https://api.example/mcp", "enabled": true}`,
		`  "agent": {"review": {"model": "anthropic/claude-opus-4-1", "prompt": "Be brief."}}`,
		`      "options": {"apiKey": "{env:ANTHROPIC_API_KEY}"}`,
	} {
		assert.Contains(t, string(out), line)
	}
	// The new provider is indented like its neighbours.
	assert.Contains(t, string(out), "\n  \"provider\": {\n    \"orproxy\": {\n      \"npm\": \"@ai-sdk/openai-compatible\",")
}

func TestMergeJSONCWithCommentsAndTrailingCommas(t *testing.T) {
	const src = `// OpenCode settings
{
  /* the default model */
  "model": "anthropic/claude-sonnet-4-5", // keep this
  "theme": "http://not-a-comment/*x*/,}", // a string that looks like JSONC
  "provider": {
    "local": {"npm": "@ai-sdk/openai-compatible", "options": {"baseURL": "http://localhost:11434/v1",},},
  },
  "mcp": {},
}
`
	out, err := Merge([]byte(src), testResult())
	require.NoError(t, err)
	for _, kept := range []string{"// OpenCode settings", "/* the default model */", "// keep this", "// a string that looks like JSONC"} {
		assert.Contains(t, string(out), kept)
	}
	got := parse(t, out)
	assert.Equal(t, "anthropic/claude-sonnet-4-5", got["model"])
	assert.Equal(t, "http://not-a-comment/*x*/,}", got["theme"])
	assert.Equal(t, SchemaURL, got["$schema"], "a missing $schema is added")
	assert.Equal(t, map[string]any{}, got["mcp"])
	providers := got["provider"].(map[string]any)
	assert.Equal(t, ourProvider(t), providers["orproxy"])
	assert.Equal(t, "http://localhost:11434/v1", providers["local"].(map[string]any)["options"].(map[string]any)["baseURL"])

	_, info, err := merge([]byte(src), testResult())
	require.NoError(t, err)
	assert.True(t, info.keptComments)
}

func TestMergeReplacesAnEarlierOrproxyProvider(t *testing.T) {
	const src = `{
	"provider": {
		"orproxy": {"npm": "@ai-sdk/openai-compatible", "models": {"old/model": {"name": "Old"}}},
		"other": {"name": "Other"}
	}
}
`
	out, info, err := merge([]byte(src), testResult())
	require.NoError(t, err)
	assert.True(t, info.replaced)
	assert.NotContains(t, string(out), "old/model")
	got := parse(t, out)
	providers := got["provider"].(map[string]any)
	assert.Equal(t, ourProvider(t), providers["orproxy"])
	assert.Equal(t, map[string]any{"name": "Other"}, providers["other"])
	assert.Contains(t, string(out), "\n\t\t\"orproxy\": {\n\t\t\t\"npm\"", "tab indentation is followed")
	assert.Contains(t, string(out), "\n\t\"$schema\": \"https://opencode.ai/config.json\",\n")

	again, err := Merge(out, testResult())
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again), "merging twice changes nothing")
}

func TestMergeIntoEmptyInputs(t *testing.T) {
	for _, src := range []string{"", "  \n", "\xef\xbb\xbf"} {
		out, err := Merge([]byte(src), testResult())
		require.NoError(t, err)
		assert.Equal(t, string(testResult().JSON()), string(out))
	}
	out, err := Merge([]byte("{}\n"), testResult())
	require.NoError(t, err)
	assert.Equal(t, string(testResult().JSON()), string(out), "an empty object is laid out like a fresh file")

	out, err = Merge([]byte(`{"provider": {}}`), testResult())
	require.NoError(t, err)
	assert.Equal(t, ourProvider(t), parse(t, out)["provider"].(map[string]any)["orproxy"])
	assert.True(t, json.Valid(out))

	out, err = Merge([]byte(`{"model":"x","small_model":"y"}`), testResult())
	require.NoError(t, err)
	assert.True(t, json.Valid(out))
	assert.Contains(t, string(out), "\n    }\n  },\n  \"model\":\"x\",\"small_model\":\"y\"}", "compact members stay as they were, on a line of their own")

	out, err = Merge([]byte("{ // nothing yet\n}"), testResult())
	require.NoError(t, err)
	assert.Contains(t, string(out), "// nothing yet")
	assert.Equal(t, ourProvider(t), parse(t, out)["provider"].(map[string]any)["orproxy"])
}

func TestMergeRefusesWhatItCannotParse(t *testing.T) {
	for name, tc := range map[string]struct {
		src        string
		line, col  int
		msgContain string
	}{
		"missing comma":       {"{\n  \"a\": 1\n  \"b\": 2\n}", 3, 3, "invalid character"},
		"unterminated string": {"{\n  \"a\": \"oops\n}", 2, 8, "not terminated"},
		"open comment":        {"{\n  /* forever\n}", 2, 3, "comment is not terminated"},
		"array at the top":    {"[1, 2]", 1, 1, "expected an object"},
		"provider not object": {"{\n  \"provider\": \"orproxy\"\n}", 2, 15, `"provider" is not an object`},
		"truncated":           {"{\n  \"a\": {", 2, 9, "unexpected end"},
		"text after":          {"{} x", 1, 4, "after top-level value"},
		"bare slash":          {"{ / }", 1, 3, "unexpected '/'"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Merge([]byte(tc.src), testResult())
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "got %v", err)
			assert.Equal(t, tc.line, pe.Line, "line")
			assert.Equal(t, tc.col, pe.Column, "column")
			assert.Contains(t, pe.Problem, tc.msgContain)
		})
	}
}

// What OpenCode reads, the merge reads too, and gives back with the
// same bytes around the provider.
func TestMergeJSONCEdgeCases(t *testing.T) {
	for name, tc := range map[string]struct {
		src      string
		comments bool
		kept     string
	}{
		"line comment at the end without a newline": {`{"model": "x"} // end`, true, `"model": "x"} // end`},
		"byte-order mark":                  {"\xef\xbb\xbf{\"model\": \"x\"}\n", false, "\xef\xbb\xbf{"},
		"trailing commas only":             {"{\"model\": \"x\", \"a\": [1, 2,],}\n", false, `"a": [1, 2,],}` + "\n"},
		"comment between key and value":    {"{\"model\" /* why */ : // this\n \"x\"}", true, "\"model\" /* why */ : // this\n \"x\"}"},
		"comment inside an empty provider": {"{\"provider\": {/* none yet */}}\n", true, "/* none yet */}"},
	} {
		t.Run(name, func(t *testing.T) {
			out, info, err := merge([]byte(tc.src), testResult())
			require.NoError(t, err)
			assert.Equal(t, tc.comments, info.keptComments)
			assert.Contains(t, string(out), tc.kept)
			if strings.HasPrefix(tc.src, "\xef\xbb\xbf") {
				assert.True(t, strings.HasPrefix(string(out), "\xef\xbb\xbf{"), "the mark stays first")
			}
			assert.Equal(t, strings.HasSuffix(tc.src, "\n"), strings.HasSuffix(string(out), "\n"), "the end of the file is kept as it was")
			got := parse(t, out)
			assert.Equal(t, ourProvider(t), got["provider"].(map[string]any)["orproxy"])
		})
	}
}

// A repeated key's last value is the one OpenCode uses, so that is the one
// replaced.
func TestMergeReplacesTheLastOfARepeatedProvider(t *testing.T) {
	const src = `{"provider": {"orproxy": {"name": "first"}}, "provider": {"orproxy": {"name": "second"}}}`
	out, info, err := merge([]byte(src), testResult())
	require.NoError(t, err)
	assert.True(t, info.replaced)
	assert.Contains(t, string(out), `"provider": {"orproxy": {"name": "first"}}`)
	assert.NotContains(t, string(out), "second")
}

// Malformed input is refused at its line, and the message never repeats the
// file's text: an OpenCode config may hold an API key.
func TestMergeRefusesMalformedInputWithoutQuotingIt(t *testing.T) {
	const key = "sk-or-v1-0123456789abcdef"
	for name, tc := range map[string]struct {
		src        string
		line, col  int
		msgContain string
	}{
		"unquoted value":            {"{\n  \"apiKey\": " + key + "\n}", 2, 13, "unquoted text"},
		"unquoted key":              {"{\n  apiKey: \"" + key + "\"\n}", 2, 3, "unquoted text"},
		"string broken by a line":   {"{\n  \"apiKey\": \"" + key + "\n  , \"b\": 1}", 2, 13, "string is not terminated"},
		"string to the end":         {"{\n  \"apiKey\": \"" + key, 2, 13, "string is not terminated"},
		"invalid escape":            {"{\n  \"apiKey\": \"" + key + "\\q\"\n}", 2, 13, "invalid escape"},
		"control character":         {"{\n  \"apiKey\": \"" + key + "\t\"\n}", 2, 13, "control character"},
		"missing colon":             {"{\n  \"apiKey\" \"" + key + "\"\n}", 2, 12, "invalid character"},
		"bad literal":               {"{\"a\": tru}", 1, 7, "unquoted text"},
		"slash after a value":       {"{\"a\": 1 / }", 1, 9, "unexpected '/'"},
		"end after trailing spaces": {"{\"a\": [1,\n\n  \n", 1, 10, "unexpected end"},
		"open comment at the end":   {"{\"a\": 1 /* " + key, 1, 9, "comment is not terminated"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Merge([]byte(tc.src), testResult())
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "got %v", err)
			assert.Equal(t, tc.line, pe.Line, "line")
			assert.Equal(t, tc.col, pe.Column, "column")
			assert.Contains(t, pe.Problem, tc.msgContain)
			assert.NotContains(t, err.Error(), "0123456789abcdef")
		})
	}
}

func TestWriteFileCreatesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "opencode.json")
	res, err := WriteFile(path, testResult())
	require.NoError(t, err)
	assert.True(t, res.Created)
	assert.Empty(t, res.Backup)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, testResult().JSON(), got)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	}
	assert.Contains(t, res.String(), "Created "+path)

	withToken := testResult()
	withToken.Provider.Options.APIKey, withToken.TokenIncluded = "local-token", true
	path2 := filepath.Join(t.TempDir(), "opencode.json")
	_, err = WriteFile(path2, withToken)
	require.NoError(t, err)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path2)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a file holding the access token is private")
	}
}

func TestWriteFileBacksUpAndKeepsTheMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opencode.jsonc")
	require.NoError(t, os.WriteFile(path, []byte(existingJSON), 0o640))
	require.NoError(t, os.Chmod(path, 0o640))

	res, err := WriteFile(path, testResult())
	require.NoError(t, err)
	assert.False(t, res.Created)
	assert.Equal(t, []string{res.Backup}, backups(t, path))
	saved, err := os.ReadFile(res.Backup)
	require.NoError(t, err)
	assert.Equal(t, existingJSON, string(saved))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := Merge([]byte(existingJSON), testResult())
	require.NoError(t, err)
	assert.Equal(t, want, got)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	}
	assert.Contains(t, res.String(), "the previous file is "+res.Backup)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"opencode.jsonc", filepath.Base(res.Backup)}, names, "no temporary files left")

	// Writing the same provider again changes nothing, not even the backup.
	first := res.Backup
	res, err = WriteFile(path, testResult())
	require.NoError(t, err)
	assert.True(t, res.Unchanged)
	assert.Equal(t, []string{first}, backups(t, path))
	saved, err = os.ReadFile(first)
	require.NoError(t, err)
	assert.Equal(t, existingJSON, string(saved))
}

// backups lists the backups WriteFile made of path, newest first.
func backups(t *testing.T, path string) []string {
	t.Helper()
	names, err := backup.List(path, "bak")
	require.NoError(t, err)
	return names
}

// Each merge that changes the file keeps the text it replaced in a backup
// of its own, even within one second; the last five are kept, all private.
func TestWriteFileNeverOverwritesABackup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "opencode.json")
	require.NoError(t, os.WriteFile(path, []byte(existingJSON), 0o644))
	var replaced []string
	for i := range 7 {
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		replaced = append(replaced, string(before))
		r := testResult()
		r.Provider.Models[fmt.Sprintf("vendor/model-%d", i)] = Model{Name: fmt.Sprintf("Model %d", i)}
		res, err := WriteFile(path, r)
		require.NoError(t, err)
		require.False(t, res.Unchanged)
		assert.Regexp(t, `opencode\.json\.bak-\d{8}T\d{6}Z(-\d+)?$`, res.Backup)
	}
	names := backups(t, path)
	require.Len(t, names, 5)
	for i, name := range names {
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		assert.Equal(t, replaced[len(replaced)-1-i], string(got), "newest first")
		if runtime.GOOS != "windows" {
			fi, err := os.Stat(name)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the old text may hold the token")
		}
	}
	assert.NoFileExists(t, path+".bak")
}

func TestWriteFileMakesAnExistingFilePrivateForTheToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no group and other permission bits")
	}
	withToken := testResult()
	withToken.Provider.Options.APIKey, withToken.TokenIncluded = "local-token", true
	mode := func(path string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		return fi.Mode().Perm()
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "opencode.json")
	require.NoError(t, os.WriteFile(path, []byte(existingJSON), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	res, err := WriteFile(path, withToken)
	require.NoError(t, err)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(got), "local-token")
	assert.Equal(t, os.FileMode(0o600), mode(path), "the merged file holds the access token")
	require.Equal(t, []string{res.Backup}, backups(t, path))
	assert.Equal(t, os.FileMode(0o600), mode(res.Backup), "the backup is as private as the file")
	assert.Equal(t, os.FileMode(0o644), res.Tightened)
	assert.Contains(t, res.String(), "mode was changed from 0644 to 0600")

	// The same provider again, with the file opened up by hand: nothing to
	// merge, but the mode is still tightened.
	require.NoError(t, os.Chmod(path, 0o664))
	res, err = WriteFile(path, withToken)
	require.NoError(t, err)
	assert.True(t, res.Unchanged)
	assert.Equal(t, os.FileMode(0o600), mode(path))
	assert.Contains(t, res.String(), "mode was changed from 0664 to 0600")

	// Already private: nothing to say.
	res, err = WriteFile(path, withToken)
	require.NoError(t, err)
	assert.Zero(t, res.Tightened)
	assert.NotContains(t, res.String(), "mode was changed")

	// Without the token the mode is kept (as in the test above).
	path2 := filepath.Join(dir, "other.json")
	require.NoError(t, os.WriteFile(path2, []byte(existingJSON), 0o644))
	require.NoError(t, os.Chmod(path2, 0o644))
	res, err = WriteFile(path2, testResult())
	require.NoError(t, err)
	assert.Zero(t, res.Tightened)
	assert.Equal(t, os.FileMode(0o644), mode(path2))
}

func TestWriteFileRefusesAnUnparsableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opencode.json")
	const broken = "{\n  \"model\": \"x\",\n  \"provider\" {}\n}\n"
	require.NoError(t, os.WriteFile(path, []byte(broken), 0o644))
	_, err := WriteFile(path, testResult())
	require.Error(t, err)
	assert.ErrorContains(t, err, path+": line 3, column 14")
	assert.ErrorContains(t, err, "left unchanged")
	var pe *ParseError
	assert.True(t, errors.As(err, &pe))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, broken, string(got))
	assert.Empty(t, backups(t, path))
}

func TestWriteFileFollowsASymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "dotfiles", "opencode.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(real), 0o755))
	require.NoError(t, os.WriteFile(real, []byte(existingJSON), 0o644))
	link := filepath.Join(dir, "opencode.json")
	require.NoError(t, os.Symlink(real, link))

	res, err := WriteFile(link, testResult())
	require.NoError(t, err)
	assert.Equal(t, real, res.Path)
	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.True(t, fi.Mode()&os.ModeSymlink != 0, "the link stays a link")
	got, err := os.ReadFile(real)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(got), `"orproxy"`))
}
