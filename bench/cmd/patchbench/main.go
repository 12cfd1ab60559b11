// Command patchbench measures what adding the web search tool to a chat body
// costs with orproxy's websearch patch and the naive way — encoding/json
// decode into a map, append, encode — on the same realistic bodies, and
// writes those bodies out so that Node's JSON.parse + JSON.stringify times
// the same bytes. It prints one JSON line per measurement.
//
//	patchbench -out DIR [-sizes 10KB=10240,1MiB=1048576]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orproxy/orproxy/websearch"
)

type result struct {
	Kind        string  `json:"kind"`
	Impl        string  `json:"impl"`
	Size        string  `json:"size"`
	Bytes       int     `json:"bytes"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
	BytesPerOp  int64   `json:"bytes_per_op"`
	Iterations  int     `json:"iterations"`
}

func main() {
	out := flag.String("out", "", "directory for the bodies (body-NAME.json)")
	sizes := flag.String("sizes", "10KB=10240,1MiB=1048576", "NAME=BYTES,… body sizes")
	flag.Parse()
	if err := run(*out, *sizes); err != nil {
		fmt.Fprintln(os.Stderr, "patchbench:", err)
		os.Exit(1)
	}
}

func run(out, sizes string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	// The daemon's settings at their defaults, without a model catalogue.
	in, err := websearch.New(websearch.Settings{Enabled: true, Engine: "auto", MaxResults: 8}, "", nil, nil, websearch.Options{})
	if err != nil {
		return err
	}
	req := websearch.Request{Method: "POST", Path: "/chat/completions", ContentType: "application/json"}
	patch := func(body []byte) error {
		if _, d := in.Patch(req, body); !d.Patched {
			return fmt.Errorf("not patched: %s", d.Reason)
		}
		return nil
	}
	for _, spec := range strings.Split(sizes, ",") {
		name, n, ok := strings.Cut(spec, "=")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size <= 0 {
			return fmt.Errorf("-sizes: %q is not NAME=BYTES", spec)
		}
		body, err := chatBody(size)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "body-"+name+".json"), body, 0o644); err != nil {
			return err
		}
		if err := emit(bench("websearch", name, body, patch)); err != nil {
			return err
		}
		if err := emit(bench("encoding/json", name, body, encodingJSON)); err != nil {
			return err
		}
	}
	return nil
}

var webSearchTool = map[string]any{"type": "openrouter:web_search", "parameters": map[string]any{"engine": "auto", "max_results": 8}}

// encodingJSON is the naive patch: decode, append the tool, encode.
func encodingJSON(body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	tools, _ := m["tools"].([]any)
	m["tools"] = append(tools, webSearchTool)
	_, err := json.Marshal(m)
	return err
}

func bench(impl, size string, body []byte, patch func([]byte) error) result {
	if err := patch(body); err != nil {
		panic(fmt.Sprintf("%s on the %s body: %v", impl, size, err))
	}
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = patch(body)
		}
	})
	return result{Kind: "patch", Impl: impl, Size: size, Bytes: len(body), Iterations: r.N,
		NsPerOp: float64(r.T.Nanoseconds()) / float64(r.N), AllocsPerOp: r.AllocsPerOp(), BytesPerOp: r.AllocedBytesPerOp()}
}

func emit(r result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}
