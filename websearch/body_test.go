package websearch

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file builds realistic chat bodies for the benchmarks and the fuzz
// seeds: what OpenCode sends mid-session, with a system prompt, file reads
// and command output full of code, unicode, and ten function tools.

// jsonString writes s the way JavaScript's JSON.stringify does (OpenCode's
// encoder): quotes, backslashes and control characters escaped, everything
// else raw. With asciiOnly it escapes non-ASCII as \uXXXX, like Python's
// json.dumps default, so bodies carry both forms.
func jsonString(sb *strings.Builder, s string, asciiOnly bool) {
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20:
			fmt.Fprintf(sb, `\u%04x`, r)
		case asciiOnly && r >= 0x80:
			if r >= 0x10000 {
				r -= 0x10000
				fmt.Fprintf(sb, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			} else {
				fmt.Fprintf(sb, `\u%04x`, r)
			}
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
}

const systemPrompt = `You are opencode, an interactive CLI tool that helps users with software engineering tasks. Use the instructions below and the tools available to you to assist the user.

IMPORTANT: Refuse to write code or explain code that may be used maliciously.
When the user asks about "this project", read AGENTS.md first.

# Tone and style
You should be concise, direct, and to the point. Output text to communicate with the user; all text you output outside of tool use is displayed to the user.

# Following conventions
- NEVER assume that a given library is available, even if it is well known.
- Mimic code style, use existing libraries and utilities, and follow existing patterns.
- Paths look like C:\Users\dev\project or /home/dev/project; quote them as "path".

Here is useful information about the environment you are running in:
<env>
  Working directory: /home/dev/orproxy
  Is directory a git repo: yes
  Platform: linux
  Today's date: Sun Nov 23 2026
</env>`

var goFile = `package proxy

import (
	"errors"
	"net/http"
	"regexp"
)

// hostRE matches "localhost" and loopback literals like 127.0.0.1 or [::1].
var hostRE = regexp.MustCompile(` + "`" + `^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$` + "`" + `)

func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostRE.MatchString(r.Host) {
			http.Error(w, "{\"error\":{\"message\":\"bad host\"}}", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !isLoopbackOrigin(o) {
			writeJSONError(w, http.StatusForbidden, errors.New("cross-origin request refused"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
`

var testOutput = `=== RUN   TestGuard
=== RUN   TestGuard/évil_host
    guard_test.go:41: got 200, want 403 — "Host: évil.example" was accepted
=== RUN   TestGuard/ipv6_[::1]
--- FAIL: TestGuard (0.00s)
    --- FAIL: TestGuard/évil_host (0.00s)
    --- PASS: TestGuard/ipv6_[::1] (0.00s)
FAIL	github.com/orproxy/orproxy/proxy	0.012s
日本語のログ: 接続が拒否されました 🚫 (errno=111)
Résumé: 1 échec, 1 succès ✅ — naïve café Ω ≈ ∑
`

var userAsks = []string{
	"The guard test fails for the évil host case 😅 can you look at proxy/guard.go and fix it?",
	"Also check the IPv6 case, and explain what \"loopback\" means here — 簡単に説明してください。",
	"Run the tests again with -race and tell me if anything else breaks.\nThanks!",
	"Search the docs for how OpenRouter handles tool_choice with server tools, then update README.md.",
}

type toolDef struct{ name, desc, params string }

// tools are OpenCode's built-in tools with their JSON-schema parameters.
var tools = []toolDef{
	{"bash", "Executes a given bash command in a persistent shell session with optional timeout, ensuring proper handling and security measures.\n\nBefore executing the command, please follow these steps:\n1. Directory Verification\n2. Command Execution: always quote file paths that contain spaces with double quotes (e.g., cd \"path with spaces/file.txt\")",
		`{"type":"object","properties":{"command":{"type":"string","description":"The command to execute"},"timeout":{"type":"number","description":"Optional timeout in milliseconds"},"description":{"type":"string","description":"Clear, concise description of what this command does in 5-10 words. Examples:\nInput: ls\nOutput: Lists files in current directory"}},"required":["command","description"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"edit", "Performs exact string replacements in files. The edit will FAIL if oldString is not unique in the file.",
		`{"type":"object","properties":{"filePath":{"type":"string","description":"The absolute path to the file to modify"},"oldString":{"type":"string","description":"The text to replace"},"newString":{"type":"string","description":"The text to replace it with (must be different from oldString)"},"replaceAll":{"type":"boolean","description":"Replace all occurrences of oldString (default false)"}},"required":["filePath","oldString","newString"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"glob", "Fast file pattern matching tool that works with any codebase size. Supports glob patterns like \"**/*.js\" or \"src/**/*.ts\".",
		`{"type":"object","properties":{"pattern":{"type":"string","description":"The glob pattern to match files against"},"path":{"type":"string","description":"The directory to search in. If not specified, the current working directory will be used."}},"required":["pattern"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"grep", "Fast content search tool. Searches file contents using regular expressions. Supports full regex syntax (eg. \"log.*Error\", \"function\\s+\\w+\").",
		`{"type":"object","properties":{"pattern":{"type":"string","description":"The regex pattern to search for in file contents"},"path":{"type":"string","description":"The directory to search in."},"include":{"type":"string","description":"File pattern to include in the search (e.g. \"*.js\", \"*.{ts,tsx}\")"}},"required":["pattern"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"list", "Lists files and directories in a given path.",
		`{"type":"object","properties":{"path":{"type":"string","description":"The absolute path to the directory to list"},"ignore":{"type":"array","items":{"type":"string"},"description":"List of glob patterns to ignore"}},"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"read", "Reads a file from the local filesystem. By default, it reads up to 2000 lines starting from the beginning of the file.",
		`{"type":"object","properties":{"filePath":{"type":"string","description":"The path to the file to read"},"offset":{"type":"number","description":"The line number to start reading from (0-based)"},"limit":{"type":"number","description":"The number of lines to read (defaults to 2000)"}},"required":["filePath"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"write", "Writes a file to the local filesystem. This tool will overwrite the existing file if there is one at the provided path.",
		`{"type":"object","properties":{"content":{"type":"string","description":"The content to write to the file"},"filePath":{"type":"string","description":"The absolute path to the file to write (must be absolute, not relative)"}},"required":["content","filePath"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"todowrite", "Use this tool to create and manage a structured task list for your current coding session.",
		`{"type":"object","properties":{"todos":{"type":"array","items":{"type":"object","properties":{"content":{"type":"string","minLength":1},"status":{"type":"string","enum":["pending","in_progress","completed","cancelled"]},"priority":{"type":"string","enum":["high","medium","low"]},"id":{"type":"string"}},"required":["content","status","priority","id"],"additionalProperties":false},"description":"The updated todo list"}},"required":["todos"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"webfetch", "Fetches content from a specified URL and returns it as markdown, text or html.",
		`{"type":"object","properties":{"url":{"type":"string","description":"The URL to fetch content from"},"format":{"type":"string","enum":["text","markdown","html"]},"timeout":{"type":"number","description":"Optional timeout in seconds (max 120)"}},"required":["url","format"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
	{"task", "Launch a new agent to handle complex, multi-step tasks autonomously.",
		`{"type":"object","properties":{"description":{"type":"string","description":"A short (3-5 words) description of the task"},"prompt":{"type":"string","description":"The task for the agent to perform"},"subagent_type":{"type":"string","description":"The type of specialized agent to use for this task"}},"required":["description","prompt","subagent_type"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`},
}

// opencodeBody returns a streaming chat body of at least size bytes (a few
// KB at the least), the same every time.
func opencodeBody(size int) []byte {
	var sb strings.Builder
	sb.Grow(size + 16<<10)
	sb.WriteString(`{"model":"anthropic/claude-sonnet-4.5","max_tokens":32000,"temperature":0,"messages":[{"role":"system","content":`)
	jsonString(&sb, systemPrompt, false)
	sb.WriteString(`}`)
	for turn := 0; sb.Len() < size-8<<10 || turn == 0; turn++ {
		sb.WriteString(`,{"role":"user","content":[{"type":"text","text":`)
		jsonString(&sb, userAsks[turn%len(userAsks)], turn%3 == 2)
		sb.WriteString(`}]}`)
		id := fmt.Sprintf("toolu_01%04dAbCdEf", turn)
		args := fmt.Sprintf(`{"filePath":"/home/dev/orproxy/proxy/guard.go","offset":%d,"limit":2000}`, turn*10)
		sb.WriteString(`,{"role":"assistant","content":"Let me read the file first.","tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"read","arguments":`)
		jsonString(&sb, args, false)
		sb.WriteString(`}}]},{"role":"tool","tool_call_id":"` + id + `","content":`)
		var file strings.Builder
		file.WriteString("<file>\n")
		for n, line := range strings.Split(goFile, "\n") {
			fmt.Fprintf(&file, "%05d| %s\n", n+1, line)
		}
		file.WriteString("</file>")
		jsonString(&sb, file.String(), false)
		sb.WriteString(`},{"role":"assistant","content":"","tool_calls":[{"id":"` + id + `b","type":"function","function":{"name":"bash","arguments":`)
		jsonString(&sb, `{"command":"go test -race -run 'TestGuard' ./proxy/","description":"Run the guard tests"}`, false)
		sb.WriteString(`}}]},{"role":"tool","tool_call_id":"` + id + `b","content":`)
		jsonString(&sb, testOutput, turn%4 == 1)
		sb.WriteString(`},{"role":"assistant","content":`)
		jsonString(&sb, "The test shows the host check accepts \"évil.example\" because the regexp isn't anchored per label — I'll fix `hostRE` ✅.", false)
		sb.WriteString(`}`)
	}
	sb.WriteString(`],"tools":[`)
	for i, t := range tools {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"type":"function","function":{"name":"` + t.name + `","description":`)
		jsonString(&sb, t.desc, false)
		sb.WriteString(`,"parameters":` + t.params + `}}`)
	}
	sb.WriteString(`],"tool_choice":"auto","stream":true,"stream_options":{"include_usage":true}}`)
	if !utf8.ValidString(sb.String()) {
		panic("opencodeBody built invalid UTF-8")
	}
	return []byte(sb.String())
}

// claudeCodeBody returns an Anthropic Messages body of at least size bytes
// (a few KB at the least), shaped like Claude Code's mid-session request:
// system blocks and the last tool with cache breakpoints, tool_use blocks
// whose input is an object, tool_result blocks, metadata, stream. The same
// every time.
func claudeCodeBody(size int) []byte {
	var sb strings.Builder
	sb.Grow(size + 16<<10)
	sb.WriteString(`{"model":"anthropic/claude-sonnet-4.5","messages":[`)
	for turn := 0; sb.Len() < size-8<<10 || turn == 0; turn++ {
		if turn > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"role":"user","content":[{"type":"text","text":`)
		jsonString(&sb, userAsks[turn%len(userAsks)], turn%3 == 2)
		sb.WriteString(`}]}`)
		id := fmt.Sprintf("toolu_01%04dAbCdEf", turn)
		sb.WriteString(`,{"role":"assistant","content":[{"type":"text","text":"Let me read the file first."},{"type":"tool_use","id":"` + id + `","name":"Read","input":`)
		fmt.Fprintf(&sb, `{"file_path":"/home/dev/orproxy/proxy/guard.go","offset":%d,"limit":2000}}]}`, turn*10)
		sb.WriteString(`,{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":`)
		var file strings.Builder
		for n, line := range strings.Split(goFile, "\n") {
			fmt.Fprintf(&file, "%6d\t%s\n", n+1, line)
		}
		jsonString(&sb, file.String(), false)
		sb.WriteString(`}]},{"role":"assistant","content":[{"type":"tool_use","id":"` + id + `b","name":"Bash","input":{"command":"go test -race -run 'TestGuard' ./proxy/","description":"Run the guard tests"}}]}`)
		sb.WriteString(`,{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `b","content":`)
		jsonString(&sb, testOutput, turn%4 == 1)
		sb.WriteString(`,"is_error":true}]},{"role":"assistant","content":[{"type":"text","text":`)
		jsonString(&sb, "The test shows the host check accepts \"évil.example\" because the regexp isn't anchored per label — I'll fix `hostRE` ✅.", false)
		sb.WriteString(`}]}`)
	}
	sb.WriteString(`],"temperature":1,"system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."},{"type":"text","text":`)
	jsonString(&sb, systemPrompt, false)
	sb.WriteString(`,"cache_control":{"type":"ephemeral"}}],"tools":[`)
	for i, t := range tools {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"name":"` + t.name + `","description":`)
		jsonString(&sb, t.desc, false)
		sb.WriteString(`,"input_schema":` + t.params)
		if i == len(tools)-1 {
			sb.WriteString(`,"cache_control":{"type":"ephemeral"}`)
		}
		sb.WriteString(`}`)
	}
	sb.WriteString(`],"metadata":{"user_id":"user_2f9c_account__session_1b7e"},"max_tokens":32000,"stream":true}`)
	if !utf8.ValidString(sb.String()) {
		panic("claudeCodeBody built invalid UTF-8")
	}
	return []byte(sb.String())
}
