package websearch

import (
	"encoding/json"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"10KB", 10 << 10},
	{"1MiB", 1 << 20},
}

var benchReq = Request{Method: "POST", Path: "/chat/completions", ContentType: "application/json"}

// BenchmarkPatch measures the patch, validation included, on OpenCode-like
// bodies.
func BenchmarkPatch(b *testing.B) {
	in := newTestInjector(b, testSettings())
	for _, s := range benchSizes {
		body := opencodeBody(s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, d := in.Patch(benchReq, body); !d.Patched {
					b.Fatalf("not patched: %s", d.Reason)
				}
			}
		})
	}
}

// BenchmarkPatchMessages measures the patch on Claude Code-like Anthropic
// Messages bodies, with web_search.messages on.
func BenchmarkPatchMessages(b *testing.B) {
	in := newTestInjector(b, testSettings())
	req := Request{Method: "POST", Path: "/messages", ContentType: "application/json"}
	for _, s := range benchSizes {
		body := claudeCodeBody(s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, d := in.Patch(req, body); !d.Patched {
					b.Fatalf("not patched: %s", d.Reason)
				}
			}
		})
	}
}

// BenchmarkEncodingJSON is the naive alternative for comparison: decode into
// map[string]any, append the tool, encode.
func BenchmarkEncodingJSON(b *testing.B) {
	tool := map[string]any{"type": "openrouter:web_search", "parameters": map[string]any{"engine": "auto", "max_results": 8}}
	for _, s := range benchSizes {
		body := opencodeBody(s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					b.Fatal(err)
				}
				ts, _ := m["tools"].([]any)
				m["tools"] = append(ts, tool)
				if _, err := json.Marshal(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScan isolates the validating scan, the bulk of the patch's cost.
func BenchmarkScan(b *testing.B) {
	for _, s := range benchSizes {
		body := opencodeBody(s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var t topLevel
			var st depthStack
			for b.Loop() {
				if !parseTop(body, &t, &st) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
