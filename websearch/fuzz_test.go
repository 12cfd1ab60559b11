package websearch

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

// fuzzSettings turn every parameter and the Messages opt-in on, so the
// fuzzer checks the longest tool on every endpoint.
var fuzzSettings = Settings{
	Enabled: true, Engine: "exa", MaxResults: 5, MaxCharacters: 4000,
	MaxTotalResults: 20, SearchContextSize: "low", AllowedDomains: []string{"go.dev", "github.com"},
	Messages: true,
}

// FuzzPatch checks the patch's promises on any body sent to any of the
// endpoints (endpoint picks chat, Responses or Messages). Its seeds are in
// testdata/fuzz/FuzzPatch: the bodies of TestPatch, an OpenCode session
// and a Claude Code one.
func FuzzPatch(f *testing.F) {
	in, err := New(fuzzSettings, "", nil, nil, Options{})
	if err != nil {
		f.Fatal(err)
	}
	off := fuzzSettings
	off.Messages = false
	offIn, err := New(off, "", nil, nil, Options{})
	if err != nil {
		f.Fatal(err)
	}
	reqs := []Request{chatReq, responsesReq, messagesReq}
	f.Fuzz(func(t *testing.T, body []byte, endpoint uint8) {
		req := reqs[int(endpoint)%len(reqs)]
		orig := bytes.Clone(body)
		if req == messagesReq {
			out, d := offIn.Patch(req, body)
			if d != (Decision{Reason: ReasonMessagesOff}) || !bytes.Equal(out, body) {
				t.Fatalf("with messages off: %+v", d)
			}
		}
		out, d := in.Patch(req, body)
		if !bytes.Equal(orig, body) {
			t.Fatal("the input was modified")
		}
		if !d.Patched {
			if !bytes.Equal(out, body) {
				t.Fatalf("unchanged (%s) but the output differs", d.Reason)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatal("patched a body that is not valid JSON")
		}
		if !json.Valid(out) {
			t.Fatalf("patched output is not valid JSON:\n%s", out)
		}
		if a, b := membersBut(body, "tools"), membersBut(out, "tools"); !equalMembers(a, b) {
			t.Fatalf("members other than tools changed:\n%q\n%q", a, b)
		}
		checkTools(t, body, out, in.tool)
		again, d2 := in.Patch(req, out)
		if d2.Patched || !bytes.Equal(again, out) {
			t.Fatalf("patching twice changed the body again (%s)", d2.Reason)
		}
		if d2.Reason != ReasonHasWebSearch {
			t.Fatalf("a patched body is skipped for %s, want %s", d2.Reason, ReasonHasWebSearch)
		}
	})
}

// membersBut lists the raw name and value of each top-level member in
// order, leaving out those named skip (after unescaping).
func membersBut(b []byte, skip string) [][2]string {
	var m [][2]string
	gjson.ParseBytes(b).ForEach(func(k, v gjson.Result) bool {
		if k.String() != skip {
			m = append(m, [2]string{k.Raw, v.Raw})
		}
		return true
	})
	return m
}

func equalMembers(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkTools compares the tools arrays as upstream reads them (last member
// wins): the output's is the input's, if any, plus exactly our tool, and it
// holds exactly one web search tool.
func checkTools(t *testing.T, body, out, tool []byte) {
	t.Helper()
	// Maps, not structs: encoding/json matches struct fields ignoring case,
	// upstream does not.
	tools := func(b []byte) []json.RawMessage {
		var m map[string]json.RawMessage
		var list []json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(m["tools"], &list); m["tools"] != nil && err != nil {
			t.Fatalf("tools is not null or an array: %v", err)
		}
		return list
	}
	before, after := tools(body), tools(out)
	n := len(after)
	if n != len(before)+1 {
		t.Fatalf("%d tools before, %d after", len(before), n)
	}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("tool %d changed:\n%s\n%s", i, before[i], after[i])
		}
	}
	if !bytes.Equal(after[n-1], tool) {
		t.Fatalf("added %s, want %s", after[n-1], tool)
	}
	web := 0
	for _, raw := range after {
		var tt map[string]any
		if json.Unmarshal(raw, &tt) == nil {
			if typ, ok := tt["type"].(string); ok && isWebSearchType(typ) {
				web++
			}
		}
	}
	if web != 1 {
		t.Fatalf("%d web search tools in the output", web)
	}
}
