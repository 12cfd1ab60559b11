package websearch

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// scanCases are documents on the edges of JSON's grammar. The tests compare
// the scanner with encoding/json.Valid on each, rather than listing the
// expected answer, because agreeing with it is the contract.
var scanCases = []string{
	``, ` `, `{}`, ` {} `, `{`, `}`, `[]`, `[`, `]`, `[1,]`, `[,1]`, `{"a":1,}`, `{,"a":1}`,
	`{"a"}`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `{"a":1 "b":2}`, `{"a":1}{}`, `{"a":1} x`,
	`{"a":1}` + "\n\t\r ", "\ufeff{}", `{"a":1}` + "\x00",
	`0`, `-0`, `-`, `01`, `1.`, `.1`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-01`, `+1`,
	`12345678901234567890`, `1.0e0`, `0.0`, `-0.0e-0`, `2.`, `0x10`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `nulll`, `[true,false,null]`,
	`""`, `"`, `"a`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`,
	`"\u00e"`, `"\ud83d\ude00"`, `"\ud800"`, "\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"", "\"\xff\xfe\"",
	"\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x85\"", `"12345678"`, `"1234567\"`, `"1234567\\"`,
	`{"a":[1,{"b":[{}]}],"c":{"d":null}}`, `{"a":[1,{"b":[{}]],"c":{"d":null}}`, `[[[]]]`, `[[[]]`, `[{]}`, `{[]}`,
	`{"a" : [ 1 , 2 ] , "b" : { } }`, " {\n  \"a\": 1\n}\n", `{"":""}`, `{"a":1,"a":2}`,
	strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth),
	strings.Repeat(`[`, maxDepth+1) + strings.Repeat(`]`, maxDepth+1),
	`{"a":` + strings.Repeat(`[`, maxDepth-1) + strings.Repeat(`]`, maxDepth-1) + `}`,
	`{"a":` + strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth) + `}`,
	strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat(`}`, maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1),
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	var st depthStack
	for _, c := range scanCases {
		assert.Equal(t, json.Valid([]byte(c)), valid([]byte(c), &st), "%.80q", c)
	}
	// Every prefix of a realistic body is invalid, as the whole is valid.
	body := opencodeBody(0)
	require.True(t, valid(body, &st))
	for n := range len(body) {
		if valid(body[:n], &st) {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
}

func TestSkipStringEveryStopPosition(t *testing.T) {
	// The eight-byte scan must find a stop byte wherever it falls in a word,
	// including after bytes whose arithmetic borrows (0x80 and up, 0x20).
	var st depthStack
	for _, stop := range []string{`\"`, `\\`, `\n`, `\u00e9`, "\n", "\x1f", `"`} {
		for pos := range 20 {
			for _, fill := range []string{"a", "\xff", " ", "\x80", "!", "#", "[", "]"} {
				doc := `"` + strings.Repeat(fill, pos) + stop + strings.Repeat("z", 9) + `"`
				assert.Equal(t, json.Valid([]byte(doc)), valid([]byte(doc), &st), "%q", doc)
			}
		}
	}
}

func TestParseTop(t *testing.T) {
	tests := []struct {
		name                string
		body                string
		ok                  bool
		tools, model, input string // raw values; "" = absent
		nTools              int
		dupKey              bool
	}{
		{"members", `{"model":"m","tools":[1],"input":"x"}`, true, `[1]`, `"m"`, `"x"`, 1, false},
		{"whitespace", " {\n \"model\" : \"m\" ,\n\t\"tools\":null }\n", true, `null`, `"m"`, ``, 1, false},
		{"escaped names", `{"mod\u0065l":"m","t\u006fols":{},"\u0069nput":1}`, true, `{}`, `"m"`, `1`, 1, false},
		{"escaped non-ASCII name", `{"t\u00f6ols":1}`, true, ``, ``, ``, 0, false},
		{"name with a NUL", `{"tools\u0000":1}`, true, ``, ``, ``, 0, false},
		{"long escaped name", `{"\u006d\u006f\u0064\u0065\u006c\u006d\u006f\u0064\u0065\u006c":1}`, true, ``, ``, ``, 0, false},
		{"nested tools ignored", `{"messages":[{"tools":[1]}],"x":{"tools":2}}`, true, ``, ``, ``, 0, false},
		{"duplicate tools, last wins", `{"tools":[1],"tools":[2]}`, true, `[2]`, ``, ``, 2, false},
		{"duplicate model", `{"model":"a","model":"b"}`, true, ``, `"b"`, ``, 0, true},
		{"duplicate stream is fine", `{"stream":true,"stream":false}`, true, ``, ``, ``, 0, false},
		{"empty object", `{}`, true, ``, ``, ``, 0, false},
		{"array", `[{"tools":[]}]`, false, ``, ``, ``, 0, false},
		{"string", `"tools"`, false, ``, ``, ``, 0, false},
		{"truncated", `{"model":"m","tools":[`, false, ``, ``, ``, 0, false},
		{"trailing garbage", `{"model":"m"}x`, false, ``, ``, ``, 0, false},
		{"two objects", `{"model":"m"}{}`, false, ``, ``, ``, 0, false},
		{"trailing comma", `{"model":"m",}`, false, ``, ``, ``, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var top topLevel
			var st depthStack
			b := []byte(tt.body)
			require.Equal(t, tt.ok, parseTop(b, &top, &st))
			if !tt.ok {
				return
			}
			raw := func(s span) string {
				if !s.ok() {
					return ""
				}
				return string(b[s.start:s.end])
			}
			assert.Equal(t, tt.tools, raw(top.tools), "tools")
			assert.Equal(t, tt.model, raw(top.model), "model")
			assert.Equal(t, tt.input, raw(top.input), "input")
			assert.Equal(t, tt.nTools, top.nTools)
			assert.Equal(t, tt.dupKey, top.dupKey)
		})
	}
}

func FuzzScan(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	f.Add(opencodeBody(0))
	f.Add(claudeCodeBody(0))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st depthStack
		want := json.Valid(b)
		if got := valid(b, &st); got != want {
			t.Fatalf("valid = %v, encoding/json.Valid = %v", got, want)
		}
		var top topLevel
		isObject := want && bytes.TrimLeft(b, " \t\r\n")[0] == '{'
		if got := parseTop(b, &top, &st); got != isObject {
			t.Fatalf("parseTop = %v for a valid object = %v", got, isObject)
		}
		if !isObject {
			return
		}
		checkSpans(t, b, &top)
		if top.tools.ok() {
			want := webSearchToolByGJSON(b[top.tools.start:top.tools.end])
			if got := hasWebSearchTool(b, top.tools, &st); got != want {
				t.Fatalf("hasWebSearchTool = %v, gjson finds %v", got, want)
			}
		}
	})
}

// webSearchToolByGJSON is hasWebSearchTool done the plain way, by gjson:
// any "type" member of any object in the array names a web search.
func webSearchToolByGJSON(tools []byte) bool {
	found := false
	gjson.ParseBytes(tools).ForEach(func(_, tool gjson.Result) bool {
		if tool.IsObject() {
			tool.ForEach(func(k, v gjson.Result) bool {
				found = k.Str == "type" && v.Type == gjson.String && isWebSearchType(v.Str)
				return !found
			})
		}
		return !found
	})
	return found
}

// checkSpans compares the recorded members with encoding/json, which
// unescapes names and lets the last of duplicates win, as upstream does.
func checkSpans(t *testing.T, b []byte, top *topLevel) {
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	for name, s := range map[string]span{
		"tools": top.tools, "model": top.model, "messages": top.messages, "input": top.input,
		"plugins": top.plugins, "models": top.models, "stream": top.stream,
	} {
		v, ok := m[name]
		if !ok {
			assert.False(t, s.ok(), "%s found but absent", name)
			continue
		}
		if assert.True(t, s.ok(), "%s missed", name) {
			assert.Equal(t, string(v), string(b[s.start:s.end]), name)
		}
	}
	n := 0
	gjson.ParseBytes(b).ForEach(func(k, _ gjson.Result) bool {
		if k.String() == "tools" {
			n++
		}
		return true
	})
	assert.Equal(t, n, top.nTools, "number of tools members")
}

// valid reports whether b is one JSON value, exactly as encoding/json.Valid.
func valid(b []byte, st *depthStack) bool {
	i := skipWS(b, 0)
	if i >= len(b) {
		return false
	}
	if i = skipValue(b, i, 0, st); i < 0 {
		return false
	}
	return skipWS(b, i) == len(b)
}

func TestHasWebSearchTool(t *testing.T) {
	tests := []struct {
		tools string
		want  bool
	}{
		{`null`, false},
		{`[]`, false},
		{" [ \n\t] ", false},
		{`[{}]`, false},
		{`[ { } , { "type" : "function" } ]`, false},
		{`[{"type":"web_search"}]`, true},
		{` [ {} , 1 , "x" , null , [ ] , { "name" : "f" , "type" : "web_search_20250305" } ] `, true},
		{`[{"type":"openrouter:web_search","parameters":{"max_results":2}}]`, true},
		{`[{"type":"openrouter:web_fetch"},{"type":"openrouter:datetime"}]`, false},
		{`["web_search",{"name":"web_search"},{"function":{"type":"web_search"}}]`, false},
		{`[[{"type":"web_search"}]]`, false},
		{`[{"Type":"web_search"}]`, false},
		{`[{"type":["web_search"]}]`, false},
		{`[{"type":1,"type":"web_search_preview"}]`, true},
		{`[{"type":"web_search","type":"function"}]`, true},
		{`[{"t\u0079pe":"web_search"}]`, true},
		{`[{"type":"web_s\u0065arch_20260209"}]`, true},
		{`[{"type":"websearch"}]`, false},
		{`[{"description":"say \"type\":\"web_search\"","input_schema":{"type":"object","properties":{"type":{"type":"string","enum":["web_search"]}}}}]`, false},
	}
	var st depthStack
	for _, tt := range tests {
		body := []byte(`{"tools":` + tt.tools + `}`)
		var top topLevel
		require.True(t, parseTop(body, &top, &st), tt.tools)
		assert.Equal(t, tt.want, hasWebSearchTool(body, top.tools, &st), tt.tools)
		assert.Equal(t, tt.want, webSearchToolByGJSON(body[top.tools.start:top.tools.end]), "the gjson version agrees: %s", tt.tools)
	}
}
