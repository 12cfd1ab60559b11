package websearch

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/config"
)

// settingsFrom is what the daemon does with the config's web_search section.
func settingsFrom(c config.WebSearch) Settings {
	return Settings{
		Enabled:           c.Enabled,
		Engine:            c.Engine,
		MaxResults:        c.MaxResults,
		MaxCharacters:     c.MaxCharacters,
		ExcludeModels:     c.ExcludeModels,
		MaxTotalResults:   c.MaxTotalResults,
		SearchContextSize: c.SearchContextSize,
		AllowedDomains:    c.AllowedDomains,
		ExcludedDomains:   c.ExcludedDomains,
		Messages:          c.Messages,
	}
}

// Settings mirror the config section field by field, so that a key added
// there cannot be forgotten here.
func TestSettingsMirrorConfig(t *testing.T) {
	cfg, set := reflect.TypeFor[config.WebSearch](), reflect.TypeFor[Settings]()
	require.Equal(t, cfg.NumField(), set.NumField(), "Settings and config.WebSearch have different fields")
	for i := range cfg.NumField() {
		f := cfg.Field(i)
		g, ok := set.FieldByName(f.Name)
		if assert.True(t, ok, "Settings has no %s", f.Name) {
			assert.Equal(t, f.Type, g.Type, f.Name)
		}
	}
}

// Every web_search value the config accepts, New accepts, and every one it
// refuses New refuses with the config's own words.
func TestNewSharesConfigRules(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.WebSearch)
		key  string // the key a refusal names; "" = accepted
	}{
		{"default", func(*config.WebSearch) {}, ""},
		{"every cost control", func(w *config.WebSearch) {
			w.MaxCharacters, w.MaxTotalResults, w.SearchContextSize = 100000, 100, "high"
			w.AllowedDomains, w.Messages = []string{"go.dev", "pkg.go.dev"}, true
		}, ""},
		{"max_total_results 1", func(w *config.WebSearch) { w.MaxTotalResults = 1 }, ""},
		{"search_context_size low", func(w *config.WebSearch) { w.SearchContextSize = "low" }, ""},
		{"search_context_size medium", func(w *config.WebSearch) { w.SearchContextSize = "medium" }, ""},
		{"excluded_domains", func(w *config.WebSearch) { w.ExcludedDomains = []string{"pinterest.com"} }, ""},
		{"disabled with bad values is still checked", func(w *config.WebSearch) { w.Enabled, w.MaxTotalResults = false, -1 }, "web_search.max_total_results"},
		{"max_total_results negative", func(w *config.WebSearch) { w.MaxTotalResults = -1 }, "web_search.max_total_results"},
		{"max_total_results 101", func(w *config.WebSearch) { w.MaxTotalResults = 101 }, "web_search.max_total_results"},
		{"search_context_size unknown", func(w *config.WebSearch) { w.SearchContextSize = "huge" }, "web_search.search_context_size"},
		{"search_context_size upper case", func(w *config.WebSearch) { w.SearchContextSize = "Low" }, "web_search.search_context_size"},
		{"both domain lists", func(w *config.WebSearch) {
			w.AllowedDomains, w.ExcludedDomains = []string{"go.dev"}, []string{"example.com"}
		}, "web_search.allowed_domains"},
		{"allowed domain with a scheme", func(w *config.WebSearch) { w.AllowedDomains = []string{"https://go.dev"} }, "web_search.allowed_domains[0]"},
		{"excluded domain with a path", func(w *config.WebSearch) { w.ExcludedDomains = []string{"example.com", "go.dev/doc"} }, "web_search.excluded_domains[1]"},
		{"empty domain", func(w *config.WebSearch) { w.AllowedDomains = []string{""} }, "web_search.allowed_domains[0]"},
		{"engine", func(w *config.WebSearch) { w.Engine = "bing" }, "web_search.engine"},
		{"max_results", func(w *config.WebSearch) { w.MaxResults = 26 }, "web_search.max_results"},
		{"max_characters", func(w *config.WebSearch) { w.MaxCharacters = -1 }, "web_search.max_characters"},
		{"exclude_models glob", func(w *config.WebSearch) { w.ExcludeModels = []string{"a/["} }, "web_search.exclude_models[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.mod(&c.WebSearch)
			problems := c.Validate()
			_, err := New(settingsFrom(c.WebSearch), "", nil, nil, Options{})
			if tt.key == "" {
				assert.Empty(t, problems)
				assert.NoError(t, err)
				return
			}
			require.NotEmpty(t, problems, "the config accepts it")
			require.Error(t, err, "New accepts what the config refuses")
			assert.Equal(t, strings.Join(problems, "; "), err.Error(), "New words it as the config does")
			assert.True(t, strings.HasPrefix(err.Error(), tt.key+": "), "%q does not name %s", err, tt.key)
		})
	}
}

// TestToolParameters pins the bytes of the spliced tool: parameters in a
// fixed order, the unset ones left out.
func TestToolParameters(t *testing.T) {
	base := Settings{Enabled: true, Engine: "auto", MaxResults: 8}
	tests := []struct {
		name string
		mod  func(*Settings)
		tool string
	}{
		{"defaults", func(*Settings) {},
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8}}`},
		{"max_total_results", func(s *Settings) { s.MaxTotalResults = 20 },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8,"max_total_results":20}}`},
		{"search_context_size", func(s *Settings) { s.SearchContextSize = "low" },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8,"search_context_size":"low"}}`},
		{"allowed_domains", func(s *Settings) { s.AllowedDomains = []string{"go.dev", "pkg.go.dev"} },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8,"allowed_domains":["go.dev","pkg.go.dev"]}}`},
		{"excluded_domains", func(s *Settings) { s.ExcludedDomains = []string{"pinterest.com"} },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8,"excluded_domains":["pinterest.com"]}}`},
		{"empty lists are unset", func(s *Settings) { s.AllowedDomains, s.ExcludedDomains = []string{}, []string{} },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8}}`},
		{"messages changes no parameter", func(s *Settings) { s.Messages = true },
			`{"type":"openrouter:web_search","parameters":{"engine":"auto","max_results":8}}`},
		{"everything, allowed domains", func(s *Settings) {
			s.Engine, s.MaxResults, s.MaxCharacters, s.MaxTotalResults, s.SearchContextSize = "exa", 5, 3000, 15, "high"
			s.AllowedDomains = []string{"go.dev"}
		}, `{"type":"openrouter:web_search","parameters":{"engine":"exa","max_results":5,"max_characters":3000,"max_total_results":15,"search_context_size":"high","allowed_domains":["go.dev"]}}`},
		{"everything, excluded domains", func(s *Settings) {
			s.Engine, s.MaxResults, s.MaxCharacters, s.MaxTotalResults, s.SearchContextSize = "parallel", 25, 100000, 100, "medium"
			s.ExcludedDomains = []string{"example.com", "example.org"}
		}, `{"type":"openrouter:web_search","parameters":{"engine":"parallel","max_results":25,"max_characters":100000,"max_total_results":100,"search_context_size":"medium","excluded_domains":["example.com","example.org"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.mod(&s)
			s.Messages = true
			in := newTestInjector(t, s)
			for _, req := range []Request{chatReq, responsesReq, messagesReq} {
				conversation := `"messages":[{"role":"user","content":"hi"}]`
				if req.Path == "/responses" {
					conversation = `"input":"hi"`
				}
				body := `{"model":"m",` + conversation + `,"tools":[{"type":"function","name":"f"}],"stream":true}`
				want := `{"model":"m",` + conversation + `,"tools":[{"type":"function","name":"f"},` + tt.tool + `],"stream":true}`
				out, d := in.Patch(req, []byte(body))
				require.True(t, d.Patched, "%s: %s", req.Path, d.Reason)
				assert.Equal(t, want, string(out), req.Path)
			}
		})
	}
}

// Every combination of the optional parameters (both domain lists together
// being refused) gives the parameters set, in the fixed order, and no other.
func TestToolParametersEveryCombination(t *testing.T) {
	optional := []struct {
		key, json string
		set       func(*Settings)
	}{
		{"max_characters", `,"max_characters":2000`, func(s *Settings) { s.MaxCharacters = 2000 }},
		{"max_total_results", `,"max_total_results":12`, func(s *Settings) { s.MaxTotalResults = 12 }},
		{"search_context_size", `,"search_context_size":"medium"`, func(s *Settings) { s.SearchContextSize = "medium" }},
		{"allowed_domains", `,"allowed_domains":["go.dev","github.com"]`, func(s *Settings) { s.AllowedDomains = []string{"go.dev", "github.com"} }},
		{"excluded_domains", `,"excluded_domains":["example.com"]`, func(s *Settings) { s.ExcludedDomains = []string{"example.com"} }},
	}
	const allowed, excluded = 1 << 3, 1 << 4
	body := []byte(`{"model":"m","messages":[]}`)
	combinations := 0
	for mask := range 1 << len(optional) {
		if mask&allowed != 0 && mask&excluded != 0 {
			continue
		}
		combinations++
		s := Settings{Enabled: true, Engine: "exa", MaxResults: 3, Messages: true}
		params := `"engine":"exa","max_results":3`
		var unset []string
		for i, o := range optional {
			if mask&(1<<i) != 0 {
				o.set(&s)
				params += o.json
			} else {
				unset = append(unset, o.key)
			}
		}
		in := newTestInjector(t, s)
		want := `{"model":"m","messages":[],"tools":[{"type":"openrouter:web_search","parameters":{` + params + `}}]}`
		for _, req := range []Request{chatReq, messagesReq} {
			out, d := in.Patch(req, body)
			require.True(t, d.Patched)
			assert.Equal(t, want, string(out), "mask %05b on %s", mask, req.Path)
			for _, key := range unset {
				assert.NotContains(t, string(out), `"`+key+`"`, "mask %05b", mask)
			}
		}
	}
	assert.Equal(t, 24, combinations)
}

// With web_search.messages off (the default), a Messages body goes out as
// the very slice the client sent, unread; chat still gets the tool.
func TestMessagesOffKeepsTheBody(t *testing.T) {
	s := testSettings()
	s.Messages = false
	in := newTestInjector(t, s)
	for _, body := range [][]byte{
		[]byte(ccHead + `"tools":` + ccTools + ccTail),
		[]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`),
		claudeCodeBody(0),
	} {
		orig := bytes.Clone(body)
		out, d := in.Patch(messagesReq, body)
		assert.Equal(t, Decision{Reason: ReasonMessagesOff}, d, "not patched, and not read either")
		assert.Equal(t, orig, out)
		assert.Same(t, &body[0], &out[0], "the client's own bytes go out")
	}
	_, d := in.Patch(chatReq, []byte(`{"model":"m","messages":[]}`))
	assert.True(t, d.Patched, "chat is not affected")
	assert.Equal(t, uint64(3), in.Status().Skipped["messages_off"])
}

// The opt-in adds the tool to a Messages body, query or not: the proxy
// hands over the path alone.
func TestMessagesOn(t *testing.T) {
	in := newTestInjector(t, testSettings())
	body := claudeCodeBody(64 << 10)
	out, d := in.Patch(messagesReq, body)
	require.True(t, d.Patched, d.Reason)
	assert.Equal(t, "anthropic/claude-sonnet-4.5", d.Model)
	assert.True(t, d.Stream)
	// The tool goes after the last tool, the one with the cache
	// breakpoint, and nothing else moves.
	i := bytes.Index(body, []byte(`],"metadata":`))
	require.Positive(t, i)
	assert.Equal(t, string(body[:i])+","+webTool+string(body[i:]), string(out))

	again, d := in.Patch(messagesReq, out)
	assert.Equal(t, ReasonHasWebSearch, d.Reason, "a patched body is not patched twice")
	assert.Equal(t, out, again)
}

// A Messages request whose tool upstream refuses fails open like chat: the
// refusal in Anthropic's envelope is recognised, the model cools down, and
// its next requests go as the client wrote them.
func TestMessagesToolRejectionFailsOpen(t *testing.T) {
	in := newTestInjector(t, testSettings())
	body := []byte(`{"model":"anthropic/claude-haiku-4.5","max_tokens":1024,"messages":[{"role":"user","content":"What is new in Go?"}]}`)
	_, d := in.Patch(messagesReq, body)
	require.True(t, d.Patched)

	refused := []byte(`{"type":"error","error":{"type":"invalid_request_error","message":"Server tool request failed","error_type":"invalid_request"},"request_id":null}`)
	require.True(t, in.ToolRejected(d.Model, 400, refused))
	out, d := in.Patch(messagesReq, body)
	assert.Equal(t, ReasonCooldown, d.Reason)
	assert.Equal(t, string(body), string(out))
	assert.Equal(t, uint64(1), in.Status().ResentWithoutTool)
}
