package usage

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTapPassesBytesThrough: each Read returns exactly what the body's
// Read gave, in the same call, with one body Read per Read: nothing is held
// back, read ahead or changed. An error that came with bytes is returned by
// the next Read, without reading the body again.
func TestTapPassesBytesThrough(t *testing.T) {
	body := []byte(chatSSE)
	for _, tc := range []struct {
		name string
		meta Meta
		data []byte
		end  error
	}{
		{"SSE", sseMeta(Chat), body, io.EOF},
		{"SSE cut", sseMeta(Chat), body[:len(body)/2], errCut},
		{"JSON", jsonMeta(Chat), []byte(chatJSON), io.EOF},
		{"gzip SSE", Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, gzipped(t, body), io.EOF},
		{"brotli, not read", Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "br"}, body, io.EOF},
	} {
		for _, alone := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				steps := pieces(tc.data, []int{1, 2, 3, 50, 51, 300, 301, 302, 900}, tc.end, alone)
				steps = append(steps[:2], append([]step{{}}, steps[2:]...)...) // a Read that gives nothing
				src := &script{steps: steps}
				calls := 0
				tap := NewTap(src, tc.meta, func(Record) { calls++ })
				buf := make([]byte, 4096)
				for i, st := range steps {
					for j := range buf {
						buf[j] = 0xAA // the Tap must not have written into p beyond n
					}
					n, err := tap.Read(buf)
					require.Equal(t, i+1, src.reads, "one body Read per Read")
					require.Equal(t, len(st.data), n, "read %d", i)
					require.Equal(t, string(st.data), string(buf[:n]), "read %d", i)
					for _, b := range buf[n:] {
						require.Equal(t, byte(0xAA), b)
					}
					if st.err != nil && n > 0 {
						require.NoError(t, err, "read %d: the error comes on the next Read", i)
						require.Zero(t, calls, "the Record waits until the bytes are out")
						n, err = tap.Read(buf)
						require.Equal(t, i+1, src.reads, "the deferred error needs no body Read")
						require.Zero(t, n)
					}
					require.Equal(t, st.err, err, "read %d", i)
				}
				require.Equal(t, 1, calls)
				n, err := tap.Read(buf)
				require.Zero(t, n)
				require.Equal(t, tc.end, err, "the end stays")
				require.NoError(t, tap.Close())
				require.Equal(t, 1, calls, "exactly once")
			})
		}
	}
}

func TestTapClose(t *testing.T) {
	body := []byte(chatSSE)
	t.Run("before the end: the client went away", func(t *testing.T) {
		src := &script{steps: pieces(body, every(body, 100), io.EOF, false)}
		var got []Record
		tap := NewTap(src, sseMeta(Chat), func(r Record) { got = append(got, r) })
		buf := make([]byte, 100)
		for range 3 {
			_, err := tap.Read(buf)
			require.NoError(t, err)
		}
		require.Empty(t, got)
		require.NoError(t, tap.Close())
		require.Len(t, got, 1)
		assert.Equal(t, EndClosed, got[0].End)
		assert.False(t, got[0].Complete)
		assert.Equal(t, int64(300), got[0].Bytes)
		assert.Equal(t, "openai/gpt-4o", got[0].ModelServed)
		require.NoError(t, tap.Close())
		_, _ = tap.Read(buf) // a Read after Close goes to the body and changes nothing
		require.Len(t, got, 1, "exactly once")
	})
	t.Run("after the last bytes, before the EOF was returned", func(t *testing.T) {
		src := &script{steps: pieces(body, nil, io.EOF, false)}
		var got []Record
		tap := NewTap(src, sseMeta(Chat), func(r Record) { got = append(got, r) })
		n, err := tap.Read(make([]byte, len(body)))
		require.NoError(t, err)
		require.Equal(t, len(body), n)
		require.NoError(t, tap.Close())
		require.Len(t, got, 1)
		assert.Equal(t, EndEOF, got[0].End, "the body had ended")
		assert.True(t, got[0].Complete)
	})
	t.Run("a gzip answer closed early stops its decoder", func(t *testing.T) {
		zbody := gzipped(t, body)
		src := &script{steps: pieces(zbody, every(zbody, 10), io.EOF, false)}
		tap := NewTap(src, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, nil)
		_, err := tap.Read(make([]byte, 10))
		require.NoError(t, err)
		require.NoError(t, tap.Close())
		r, ended := tap.Result()
		require.True(t, ended)
		assert.Equal(t, EndClosed, r.End)
		assert.False(t, r.DecodeFailed, "a stream closed early is not a decoding failure")
		// goleak in TestMain checks that the decoder ended.
	})
	t.Run("a gzip answer closed before any byte starts no decoder", func(t *testing.T) {
		tap := NewTap(&script{}, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, nil)
		require.NoError(t, tap.Close())
		r, _ := tap.Result()
		assert.Equal(t, Record{Streamed: true, Gzip: true, End: EndClosed}, r)
	})
	t.Run("Close passes the body's error on", func(t *testing.T) {
		want := errors.New("close failed")
		tap := NewTap(closeErr{want}, sseMeta(Chat), nil)
		require.ErrorIs(t, tap.Close(), want)
	})
}

type closeErr struct{ err error }

func (closeErr) Read([]byte) (int, error) { return 0, io.EOF }
func (c closeErr) Close() error           { return c.err }

func TestTapCut(t *testing.T) {
	body := []byte(chatSSE)
	final := len(body) - len("data: [DONE]\n\n")
	for _, tc := range []struct {
		name  string
		at    int
		found bool
	}{
		{"before the usage", len(body) / 2, false},
		{"after the usage, before [DONE]", final, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, sseMeta(Chat), pieces(body[:tc.at], every(body[:tc.at], 64), errCut, false))
			assert.Equal(t, EndError, r.End)
			assert.False(t, r.Complete)
			assert.Equal(t, tc.found, r.Found)
			assert.Equal(t, tc.found, r.CostKnown)
		})
	}
	t.Run("a cut line is not read at the end", func(t *testing.T) {
		cut := []byte(sse(chatChunk("a")) + "data: [DONE]")
		r := run(t, sseMeta(Chat), pieces(cut, nil, errCut, false))
		assert.False(t, r.Complete, "a cut stream's last line may be partial")
	})
}

func TestEndpointKind(t *testing.T) {
	for path, want := range map[string]Kind{
		"/api/v1/chat/completions":                    Chat,
		"/api/v1/chat/completions/":                   Chat,
		"/v1/chat/completions?x=1":                    Chat,
		"/api/v1/completions":                         Chat,
		"/api/v1/responses":                           Responses,
		"/api/v1/messages":                            Messages,
		"/v1/messages?beta=true":                      Messages,
		"/api/v1/messages/count_tokens?beta=true":     Other,
		"/api/v1/embeddings":                          Other,
		"/api/v1/presets/my-preset/chat/completions":  Chat,
		"/api/v1/models":                              Other,
		"/api/v1/key":                                 Other,
		"":                                            Other,
		"/":                                           Other,
		"/api/v1/chat/completionsx":                   Other,
		"/api/v1/responses/resp_123":                  Other,
		"/api/v1/generation?id=gen-1":                 Other,
		"/api/v1/messages#frag":                       Messages,
		"/api/v1/messages/../chat/completions?beta=1": Chat,
	} {
		assert.Equal(t, want, EndpointKind(path), path)
	}
	assert.Equal(t, "chat", Chat.String())
	assert.Equal(t, "responses", Responses.String())
	assert.Equal(t, "messages", Messages.String())
	assert.Equal(t, "other", Other.String())
	assert.Equal(t, "eof", EndEOF.String())
	assert.Equal(t, "error", EndError.String())
	assert.Equal(t, "closed", EndClosed.String())
	assert.Equal(t, "none", EndNone.String())
}

func TestClientFamily(t *testing.T) {
	for _, tc := range []struct{ ua, want string }{
		{"opencode/1.0.85", "opencode"},
		{"opencode/0.15.3 ai-sdk/provider-utils/3.0.9 runtime/bun/1.2.21", "opencode"},
		{"ai-sdk/openai-compatible/1.0.19 ai-sdk/provider-utils/3.0.10 runtime/node.js/22", "opencode"},
		{"OpenCode/1.2", "opencode"},
		{"claude-cli/1.0.108 (external, cli)", "claude-code"},
		{"claude-cli/2.0.1 (external, sdk-ts)", "claude-code"},
		{"Claude-Code/1.0", "claude-code"},
		{"OpenAI/JS 4.104.0", "openai-sdk"},
		{"OpenAI/Python 1.109.1", "openai-sdk"},
		{"AsyncOpenAI/Python 1.109.1", "openai-sdk"},
		{"OpenAI/Go 1.12.0", "openai-sdk"},
		{"curl/8.5.0", "curl"},
		{"CURL/7.0", "curl"},
		{"", "other"},
		{"Mozilla/5.0 (X11; Linux x86_64)", "other"},
		{"python-requests/2.32.3", "other"},
		{"Go-http-client/1.1", "other"},
		{"libcurl-agent/1.0", "other"},
		{"opencod", "other"},
		{"claude-cli", "other"},
	} {
		assert.Equal(t, tc.want, ClientFamily(tc.ua), tc.ua)
	}
}

func TestClientFamilyAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _ = ClientFamily("OpenCode/0.15.3 AI-SDK/provider-utils/3.0.9 runtime/bun/1.2.21") })
	assert.Zero(t, allocs)
}

func TestMetaFrom(t *testing.T) {
	res := &http.Response{Header: http.Header{}, ContentLength: 123}
	res.Header.Set("Content-Type", "text/event-stream")
	res.Header.Set("Content-Encoding", "gzip")
	res.Header.Set("X-Generation-Id", "gen-1")
	assert.Equal(t, Meta{Kind: Messages, ContentType: "text/event-stream", ContentEncoding: "gzip", ContentLength: 123, GenerationID: "gen-1"},
		MetaFrom(Messages, res))
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                true,
		"text/event-stream; charset=utf-8": true,
		"Text/Event-Stream;charset=UTF-8":  true,
		" text/event-stream ":              true,
		"text/event-streams":               false,
		"text/event":                       false,
		"application/json":                 false,
		"":                                 false,
	} {
		assert.Equal(t, want, isEventStream(ct), ct)
	}
}

// TestTapEventAllocs: once a stream has named its model, an event without
// usage costs no allocation.
func TestTapEventAllocs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  Kind
		steps []step
	}{
		{"chat", Chat, chatStream()},
		{"responses", Responses, responsesStream()},
		{"messages", Messages, messagesStream()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tap := NewTap(nil, sseMeta(tc.kind), nil)
			tap.sse(tc.steps[0].data)
			tap.sse(tc.steps[1].data)
			event := tc.steps[2].data
			assert.Zero(t, testing.AllocsPerRun(100, func() { tap.sse(event) }))
			half := len(event) / 2
			assert.Zero(t, testing.AllocsPerRun(100, func() { tap.sse(event[:half]); tap.sse(event[half:]) }),
				"a line split across reads reuses its buffer")
		})
	}
}
