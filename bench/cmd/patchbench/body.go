package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The pieces of a coding agent's chat request: a long system prompt, turns
// of questions, tool calls whose results are source files and test output,
// and the agent's tool definitions. Quotes, backslashes, tabs, newlines and
// non-ASCII text all appear, as they do in real bodies.
const systemPrompt = `You are an interactive CLI agent that helps users with software engineering tasks.
Use the tools available to you to read, search and edit files, and to run commands.

# Tone
- Be concise; answer in fewer than 4 lines unless asked for detail.
- Never invent file paths, APIs or "facts" — check them with the tools first.
- When you run a non-trivial bash command, explain what it does and why.

# Code style
- Follow the conventions of the surrounding code: naming, imports, error handling.
- Do not add comments unless asked; never add a "TODO" without a reason.
- Paths use forward slashes: /home/dev/project/internal/…, not C:\Users\….

<env>
Working directory: /home/dev/orproxy
Is directory a git repo: yes
Platform: linux
Today's date: 2026-11-23
</env>`

const goSource = `package proxy

import (
	"net/http"
	"strings"
)

// guard refuses requests that did not plainly come from this machine.
func (h *Handler) guard(r *http.Request) *refusal {
	if r.Method == http.MethodConnect {
		return &refusal{http.StatusMethodNotAllowed, "CONNECT is refused: \"orproxy\" is not a forward proxy"}
	}
	if !strings.HasPrefix(r.RequestURI, "/") {
		return &refusal{http.StatusBadRequest, "request target " + quote(r.RequestURI) + " is refused"}
	}
	for _, name := range []string{"Origin", "Sec-Fetch-Site"} {
		if v := r.Header.Get(name); v != "" && !loopbackOrigin(v) {
			return &refusal{http.StatusForbidden, "requests from web pages are refused\t(" + name + ")"}
		}
	}
	return nil // C:\\ paths and "quoted" strings survive the round trip
}
`

const testOutput = `=== RUN   TestGuard
=== RUN   TestGuard/foreign_origin
=== RUN   TestGuard/dns_rebinding
    guard_test.go:48: Host "évil.example:8765" accepted, want 403
--- FAIL: TestGuard (0.00s)
    --- PASS: TestGuard/foreign_origin (0.00s)
    --- FAIL: TestGuard/dns_rebinding (0.00s)
FAIL
FAIL	github.com/orproxy/orproxy/proxy	0.012s
FAIL`

var userAsks = []string{
	"The guard lets a DNS-rebinding request through when the Host has a trailing dot. Find out why and fix it.",
	"Run the guard tests again and tell me which cases still fail — only the failing ones, please.",
	"Now add a test for an IPv6 loopback Host like \"[::1]:8765\" and make sure it passes ✅",
	"Explain in two sentences why `path.Clean` is not enough here.",
}

type toolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

func tools() []toolDef {
	defs := []struct{ name, desc, params string }{
		{"bash", "Executes a given bash command in a persistent shell session with an optional timeout.\n\nBefore executing the command, verify that the parent directory exists.",
			`{"type":"object","properties":{"command":{"type":"string","description":"The command to execute"},"timeout":{"type":"number","description":"Optional timeout in milliseconds"},"description":{"type":"string","description":"Clear, concise description of what this command does in 5-10 words"}},"required":["command","description"],"additionalProperties":false}`},
		{"read", "Reads a file from the local filesystem. The filePath parameter must be an absolute path, not a relative path.",
			`{"type":"object","properties":{"filePath":{"type":"string","description":"The path to the file to read"},"offset":{"type":"number","description":"The line number to start reading from (0-based)"},"limit":{"type":"number","description":"The number of lines to read (defaults to 2000)"}},"required":["filePath"],"additionalProperties":false}`},
		{"edit", "Performs exact string replacements in files. You must use your read tool at least once before editing.",
			`{"type":"object","properties":{"filePath":{"type":"string","description":"The absolute path to the file to modify"},"oldString":{"type":"string","description":"The text to replace"},"newString":{"type":"string","description":"The text to replace it with (must be different from oldString)"},"replaceAll":{"type":"boolean","description":"Replace all occurrences of oldString (default false)"}},"required":["filePath","oldString","newString"],"additionalProperties":false}`},
		{"grep", "Fast content search tool that works with any codebase size. Supports full regex syntax (eg. \"log.*Error\", \"function\\s+\\w+\").",
			`{"type":"object","properties":{"pattern":{"type":"string","description":"The regex pattern to search for in file contents"},"path":{"type":"string","description":"The directory to search in"},"include":{"type":"string","description":"File pattern to include in the search (e.g. \"*.js\", \"*.{ts,tsx}\")"}},"required":["pattern"],"additionalProperties":false}`},
		{"todowrite", "Use this tool to create and manage a structured task list for your current coding session.",
			`{"type":"object","properties":{"todos":{"type":"array","items":{"type":"object","properties":{"content":{"type":"string"},"status":{"type":"string","enum":["pending","in_progress","completed","cancelled"]},"priority":{"type":"string","enum":["high","medium","low"]},"id":{"type":"string"}},"required":["content","status","priority","id"]}}},"required":["todos"],"additionalProperties":false}`},
	}
	out := make([]toolDef, len(defs))
	for i, d := range defs {
		out[i].Type = "function"
		out[i].Function.Name, out[i].Function.Description, out[i].Function.Parameters = d.name, d.desc, json.RawMessage(d.params)
	}
	return out
}

type request struct {
	Model         string    `json:"model"`
	MaxTokens     int       `json:"max_tokens"`
	Temperature   float64   `json:"temperature"`
	Messages      []message `json:"messages"`
	Tools         []toolDef `json:"tools"`
	ToolChoice    string    `json:"tool_choice"`
	Stream        bool      `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type message struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type textPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

func call(id, name, args string) []toolCall {
	c := toolCall{ID: id, Type: "function"}
	c.Function.Name, c.Function.Arguments = name, args
	return []toolCall{c}
}

func numbered(src string) string {
	var b strings.Builder
	b.WriteString("<file>\n")
	for i, line := range strings.Split(src, "\n") {
		fmt.Fprintf(&b, "%05d| %s\n", i+1, line)
	}
	b.WriteString("</file>")
	return b.String()
}

// chatBody returns a compact JSON chat request of at least size bytes, shaped
// like the requests a coding agent sends.
func chatBody(size int) ([]byte, error) {
	req := request{Model: "anthropic/claude-sonnet-4.5", MaxTokens: 32000, Tools: tools(), ToolChoice: "auto", Stream: true}
	req.StreamOptions.IncludeUsage = true
	req.Messages = []message{{Role: "system", Content: systemPrompt}}
	file := numbered(goSource)
	for turn := 0; ; turn++ {
		id := fmt.Sprintf("toolu_01%04dAbCdEfGh", turn)
		args := fmt.Sprintf(`{"filePath":"/home/dev/orproxy/proxy/guard.go","offset":%d,"limit":2000}`, turn*10)
		req.Messages = append(req.Messages,
			message{Role: "user", Content: []textPart{{"text", userAsks[turn%len(userAsks)]}}},
			message{Role: "assistant", Content: "Let me read the file first.", ToolCalls: call(id, "read", args)},
			message{Role: "tool", ToolCallID: id, Content: file},
			message{Role: "assistant", Content: "", ToolCalls: call(id+"b", "bash", `{"command":"go test -race -run 'TestGuard' ./proxy/","description":"Run the guard tests"}`)},
			message{Role: "tool", ToolCallID: id + "b", Content: testOutput},
			message{Role: "assistant", Content: "The host check accepts \"évil.example\" because the pattern isn't anchored per label — I'll fix `hostRE` ✅."},
		)
		body, err := encode(req)
		if err != nil || len(body) >= size {
			return body, err
		}
	}
}

// encode marshals v compactly without HTML escaping, as JSON.stringify does.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
