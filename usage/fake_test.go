package usage

import (
	"bufio"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/testkit"
)

// tapProxy is a ReverseProxy in front of the fake OpenRouter that reads
// every answer through a Tap, as orproxy will; each Record goes to records.
type tapProxy struct {
	fake    *openrouter.Server
	key     string
	url     string
	client  *http.Client
	records chan Record
}

func newTapProxy(t *testing.T) *tapProxy {
	t.Helper()
	key := openrouter.NewKey()
	fake := openrouter.New(openrouter.Options{Keys: []string{key}})
	upstream := httptest.NewServer(fake.Handler())
	t.Cleanup(upstream.Close)
	target, err := url.Parse(upstream.URL)
	require.NoError(t, err)
	p := &tapProxy{fake: fake, key: key, client: &http.Client{Timeout: 10 * time.Second}, records: make(chan Record, 10)}
	rp := &httputil.ReverseProxy{
		Rewrite:  func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ErrorLog: log.New(io.Discard, "", 0), // cut answers are meant here
		ModifyResponse: func(res *http.Response) error {
			res.Body = NewTap(res.Body, MetaFrom(EndpointKind(res.Request.URL.Path), res), func(r Record) { p.records <- r })
			return nil
		},
	}
	front := httptest.NewServer(rp)
	t.Cleanup(front.Close)
	p.url = front.URL
	return p
}

func (p *tapProxy) post(t *testing.T, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := p.client.Do(req)
	require.NoError(t, err)
	return res
}

// record waits for the Record of the answer just read; the Tap hands it
// over before the proxy's handler returns, so it comes at once.
func (p *tapProxy) record(t *testing.T) Record {
	t.Helper()
	select {
	case r := <-p.records:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no Record within 10s")
		return Record{}
	}
}

// TestTapWithFakeOpenRouter reads the project's fake OpenRouter's answers
// through a ReverseProxy and a Tap: the Record must say exactly what the
// fake charged, in every API and shape.
func TestTapWithFakeOpenRouter(t *testing.T) {
	search := `,"tools":[{"type":"openrouter:web_search"}]`
	for _, tc := range []struct {
		name, path, body string
		fault            openrouter.Fault
		streamed         bool
		check            func(t *testing.T, r Record, charged *openrouter.Usage)
	}{
		{name: "chat stream with search and reasoning", path: "/api/v1/chat/completions", streamed: true,
			body: `{"model":"openai/gpt-4o","stream":true,"reasoning":{"effort":"low"},"messages":[{"role":"user","content":"hi"}]` + search + `}`},
		{name: "chat JSON", path: "/api/v1/chat/completions",
			body: `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]` + search + `}`},
		{name: "chat, searches in server_tool_use_details", path: "/api/v1/chat/completions", streamed: true,
			fault: openrouter.Fault{ServerToolUseDetails: true},
			body:  `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]` + search + `}`},
		{name: "Responses stream", path: "/api/v1/responses", streamed: true,
			body: `{"model":"openai/gpt-5","stream":true,"reasoning":{"effort":"low"},"input":"hi"` + search + `}`},
		{name: "Responses JSON", path: "/api/v1/responses", body: `{"model":"openai/gpt-5","input":"hi"}`},
		{name: "Messages stream with thinking", path: "/api/v1/messages?beta=true", streamed: true,
			body: `{"model":"anthropic/claude-sonnet-4","stream":true,"max_tokens":100,"thinking":{"type":"enabled","budget_tokens":1024},` +
				`"messages":[{"role":"user","content":"hi"}]` + search + `}`},
		{name: "Messages JSON", path: "/api/v1/messages", body: `{"model":"anthropic/claude-sonnet-4","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
		{name: "chat stream, mid-stream error", path: "/api/v1/chat/completions", streamed: true,
			fault: openrouter.Fault{ErrorMidStream: 2},
			body:  `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, r Record, _ *openrouter.Usage) {
				assert.True(t, r.ErrorEvent)
				assert.False(t, r.Complete)
				assert.False(t, r.Found, "the stream ended before its usage")
				assert.Equal(t, "openai/gpt-4o", r.ModelServed)
			}},
		{name: "Messages stream, mid-stream error", path: "/api/v1/messages", streamed: true,
			fault: openrouter.Fault{ErrorMidStream: 2},
			body:  `{"model":"anthropic/claude-sonnet-4","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, r Record, charged *openrouter.Usage) {
				assert.True(t, r.ErrorEvent)
				assert.False(t, r.Complete)
				assert.Equal(t, int64(charged.PromptTokens), r.PromptTokens, "message_start told the prompt")
				assert.False(t, r.CostKnown, "the cost comes with message_delta")
			}},
		{name: "chat stream without usage", path: "/api/v1/chat/completions", streamed: true,
			fault: openrouter.Fault{OmitUsage: true},
			body:  `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, r Record, _ *openrouter.Usage) {
				assert.False(t, r.Found)
				assert.False(t, r.CostKnown)
				assert.True(t, r.Complete)
			}},
		{name: "chat stream cut mid-body", path: "/api/v1/chat/completions", streamed: true,
			fault: openrouter.Fault{CutAfterBytes: 300},
			body:  `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, r Record, _ *openrouter.Usage) {
				assert.Equal(t, EndError, r.End)
				assert.False(t, r.Complete)
				assert.False(t, r.CostKnown)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTapProxy(t)
			p.fake.SetFault(tc.fault)
			res := p.post(t, tc.path, tc.body)
			_, _ = io.Copy(io.Discard, res.Body) // a cut body ends in an error
			require.NoError(t, res.Body.Close())
			r := p.record(t)
			reqs := p.fake.Requests()
			require.Len(t, reqs, 1)
			charged := reqs[0].Usage
			require.NotNil(t, charged)
			assert.Equal(t, tc.streamed, r.Streamed)
			assert.Equal(t, reqs[0].GenerationID, r.GenerationID)
			assert.Equal(t, res.Header.Get("X-Generation-Id"), r.GenerationID)
			if tc.check != nil {
				tc.check(t, r, charged)
				return
			}
			want := Record{
				Found: true, CostKnown: true, Cost: charged.Cost,
				PromptTokens: int64(charged.PromptTokens), CompletionTokens: int64(charged.CompletionTokens),
				CachedTokens: int64(charged.CachedTokens), ReasoningTokens: int64(charged.ReasoningTokens),
				WebSearches: int64(charged.WebSearches),
				ModelServed: r.ModelServed, Provider: r.Provider, GenerationID: r.GenerationID,
				Complete: true, Streamed: tc.streamed, End: EndEOF, Bytes: r.Bytes,
			}
			assert.Equal(t, want, r)
			assert.NotEmpty(t, r.ModelServed)
			assert.Positive(t, r.Cost)
		})
	}
}

// TestTapCachedPrompt: the second of two requests with a long common
// prefix reads most of its prompt from the cache; Messages reports those
// tokens apart from input_tokens, and the Record counts them in the prompt
// as chat does.
func TestTapCachedPrompt(t *testing.T) {
	long := strings.Repeat("A long system prompt that stays the same. ", 200)
	for _, tc := range []struct{ name, path, body string }{
		{"chat", "/api/v1/chat/completions", `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"` + long + `"}]}`},
		{"Messages JSON", "/api/v1/messages", `{"model":"anthropic/claude-sonnet-4","max_tokens":10,"messages":[{"role":"user","content":"` + long + `"}]}`},
		{"Messages stream", "/api/v1/messages", `{"model":"anthropic/claude-sonnet-4","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"` + long + `"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTapProxy(t)
			for i := range 2 {
				res := p.post(t, tc.path, tc.body)
				_, err := io.Copy(io.Discard, res.Body)
				require.NoError(t, err)
				require.NoError(t, res.Body.Close())
				r := p.record(t)
				charged := p.fake.Requests()[i].Usage
				require.NotNil(t, charged)
				if i == 1 {
					require.Positive(t, charged.CachedTokens, "the fake read the second prompt from its cache")
				}
				assert.Equal(t, int64(charged.PromptTokens), r.PromptTokens)
				assert.Equal(t, int64(charged.CachedTokens), r.CachedTokens)
				assert.Equal(t, charged.Cost, r.Cost)
			}
		})
	}
}

// TestTapHoldsNothingBack: through a ReverseProxy with a Tap, each piece of
// a stream reaches the client before the fake sends the next one.
func TestTapHoldsNothingBack(t *testing.T) {
	p := newTapProxy(t)
	p.fake.SetFault(openrouter.Fault{Stepped: true, KeepAlivesBetween: 1})
	res := p.post(t, "/api/v1/chat/completions", `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	br := bufio.NewReader(res.Body)
	pieces := testkit.ReadEachStep(t, br, p.fake.Step)
	require.Greater(t, pieces, 5)
	_, err := io.Copy(io.Discard, br)
	require.NoError(t, err)
	r := p.record(t)
	assert.True(t, r.Found && r.CostKnown && r.Complete, "%+v", r)
}
