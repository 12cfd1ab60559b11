package usage

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// with returns r with the changes f makes, to write expectations as a
// variation on a fixture's Record.
func with(r Record, f func(*Record)) Record {
	f(&r)
	return r
}

type answerCase struct {
	name string
	meta Meta
	body string
	want Record
}

// answerCases are the answer shapes, each with the Record it must give
// when read whole to EOF (Bytes filled in by the test).
func answerCases() []answerCase {
	sseFlags := func(r *Record) { r.Streamed, r.End = true, EndEOF }
	jsonFlags := func(r *Record) { r.End = EndEOF }
	return []answerCase{
		{"chat JSON", jsonMeta(Chat), chatJSON, with(chatRecord, func(r *Record) { jsonFlags(r); r.Complete = true })},
		{"chat SSE, usage in the final chunk before [DONE]", sseMeta(Chat), chatSSE,
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"chat SSE with CRLF line ends and keep-alive comments", sseMeta(Chat), strings.ReplaceAll(chatSSE, "\n", "\r\n"),
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"chat SSE with CR line ends", sseMeta(Chat), strings.ReplaceAll(chatSSE, "\n", "\r"),
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"chat SSE, usage null in every chunk (OpenAI style)", sseMeta(Chat),
			strings.ReplaceAll(chatSSE, `"logprobs":null}]}`, `"logprobs":null}],"usage":null}`),
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"chat SSE, [DONE] without a final line break", sseMeta(Chat), strings.TrimSuffix(chatSSE, "\n\n"),
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"legacy completions SSE", sseMeta(EndpointKind("/api/v1/completions")), chatSSE,
			with(chatRecord, func(r *Record) { sseFlags(r); r.Complete = true })},
		{"chat SSE, no usage at all", sseMeta(Chat), sse(chatChunk("Hi"), chatStop, "data: [DONE]"),
			Record{Streamed: true, End: EndEOF, Complete: true, ModelServed: "openai/gpt-4o", Provider: "OpenAI", GenerationID: "gen-abc"}},
		{"chat SSE, mid-stream error event and no [DONE]", sseMeta(Chat), sse(": OPENROUTER PROCESSING", chatChunk("Hel"), chatMidError),
			Record{Streamed: true, End: EndEOF, ErrorEvent: true, ModelServed: "openai/gpt-4o", Provider: "OpenAI", GenerationID: "gen-abc"}},
		{"chat SSE, the error event's finish_reason alone", sseMeta(Chat),
			sse(chatChunk("Hel"), strings.Replace(chatStop, `"finish_reason":"stop"`, `"finish_reason": "error"`, 1)),
			Record{Streamed: true, End: EndEOF, ErrorEvent: true, ModelServed: "openai/gpt-4o", Provider: "OpenAI", GenerationID: "gen-abc"}},
		{"chat JSON, choice finished with error", jsonMeta(Chat),
			strings.Replace(chatJSON, `"finish_reason":"stop"`, `"finish_reason":"error","error":{"code":502,"message":"Provider returned error"}`, 1),
			with(chatRecord, func(r *Record) { jsonFlags(r); r.Complete, r.ErrorEvent = true, true })},
		{"error answer JSON", jsonMeta(Chat),
			`{"error":{"code":402,"message":"Insufficient credits","metadata":{"error_type":"payment_required"}},"user_id":"user_1"}`,
			Record{End: EndEOF, Complete: true, ErrorEvent: true}},
		{"Responses SSE, response.completed", sseMeta(Responses), responsesSSE,
			with(responsesRecord, func(r *Record) { sseFlags(r) })},
		{"Responses SSE without event lines, keys in any order", sseMeta(Responses), responsesSSEPlain,
			with(responsesRecord, func(r *Record) { sseFlags(r) })},
		{"Responses SSE, response.failed", sseMeta(Responses), sse(
			`data: {"type":"response.created","response":{"id":"gen-resp1","model":"openai/gpt-5","status":"in_progress"}}`,
			`data: {"type":"response.failed","response":{"id":"gen-resp1","model":"openai/gpt-5","status":"failed","error":{"code":"server_error","message":"x"},"usage":`+responsesUsage+`}}`),
			with(responsesRecord, func(r *Record) { sseFlags(r); r.ErrorEvent = true })},
		{"Responses SSE, error event", sseMeta(Responses), sse(
			`data: {"type":"response.created","response":{"id":"gen-resp1","model":"openai/gpt-5","status":"in_progress"}}`,
			`data: {"type":"error","code":"rate_limit_exceeded","message":"Rate limit exceeded","sequence_number":3}`),
			Record{Streamed: true, End: EndEOF, ErrorEvent: true, ModelServed: "openai/gpt-5", GenerationID: "gen-resp1"}},
		{"Responses JSON", jsonMeta(Responses),
			`{"id":"gen-resp1","object":"response","created_at":1,"model":"openai/gpt-5","status":"completed","error":null,"output":[],"usage":` + responsesUsage + `}`,
			with(responsesRecord, func(r *Record) { jsonFlags(r) })},
		{"Messages SSE with event lines", sseMeta(Messages), messagesSSE, with(messagesRecord, sseFlags)},
		{"Messages SSE without event lines", sseMeta(Messages),
			strings.NewReplacer("event: message_start\n", "", "event: ping\n", "", "event: content_block_start\n", "",
				"event: content_block_delta\n", "", "event: content_block_stop\n", "", "event: message_delta\n", "",
				"event: message_stop\n", "").Replace(messagesSSE),
			with(messagesRecord, sseFlags)},
		{"Messages SSE with CRLF line ends, typed by the event lines", sseMeta(Messages),
			strings.ReplaceAll(strings.Replace(messagesSSE, `data: {"type":"message_stop"}`, `data: {}`, 1), "\n", "\r\n"),
			with(messagesRecord, sseFlags)},
		{"Messages SSE, error event", sseMeta(Messages), sse(messagesStart,
			"event: error\n"+`data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`),
			with(messagesRecord, func(r *Record) {
				sseFlags(r)
				r.Complete, r.ErrorEvent, r.CostKnown, r.Cost, r.CompletionTokens, r.WebSearches = false, true, false, 0, 1, 0
			})},
		{"Messages JSON", jsonMeta(Messages), messagesJSON, Record{
			Found: true, CostKnown: true, Cost: 0.0001, PromptTokens: 42, CompletionTokens: 6, CachedTokens: 30,
			ModelServed: "anthropic/claude-haiku-4.5", Provider: "Anthropic", GenerationID: "gen-msg2", Complete: true, End: EndEOF}},
		{"Messages error JSON", jsonMeta(Messages),
			`{"type":"error","error":{"type":"billing_error","message":"Insufficient credits","error_type":"payment_required"},"request_id":null}`,
			Record{ErrorEvent: true, Complete: true, End: EndEOF}},
		{"embeddings JSON", jsonMeta(EndpointKind("/api/v1/embeddings")), embeddingsJSON, Record{
			Found: true, CostKnown: true, Cost: 2e-7, PromptTokens: 8,
			ModelServed: "openai/text-embedding-3-small", GenerationID: "gen-emb1", Complete: true, End: EndEOF}},
		{"count_tokens is not usage", jsonMeta(EndpointKind("/v1/messages/count_tokens?beta=true")), `{"input_tokens":2095}`,
			Record{Complete: true, End: EndEOF}},
		{"JSON without usage", jsonMeta(Chat), `{"id":"gen-abc","model":"openai/gpt-4o","choices":[]}`,
			Record{ModelServed: "openai/gpt-4o", GenerationID: "gen-abc", Complete: true, End: EndEOF}},
		{"empty body", jsonMeta(Chat), ``, Record{End: EndEOF}},
		{"HTML error page", Meta{Kind: Chat, ContentType: "text/html"}, `<html><body>502 Bad Gateway</body></html>`, Record{End: EndEOF}},
		{"truncated JSON keeps what it shows but is not complete", jsonMeta(Chat), chatJSON[:len(chatJSON)-1],
			with(chatRecord, jsonFlags)},
	}
}

func TestTapAnswers(t *testing.T) {
	for _, tc := range answerCases() {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Bytes = int64(len(tc.body))
			assert.Equal(t, tc.want, whole(t, tc.meta, tc.body))
		})
	}
}

// TestTapSplits feeds every answer in 1-byte reads, in every split into two
// reads, and in random reads, with the error alone or with the last bytes:
// the Record must not depend on how the bytes arrive.
func TestTapSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range answerCases() {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			want := whole(t, tc.meta, tc.body)
			assert.Equal(t, want, run(t, tc.meta, pieces(body, every(body, 1), io.EOF, false)), "1-byte reads")
			assert.Equal(t, want, run(t, tc.meta, pieces(body, every(body, 1), io.EOF, true)), "1-byte reads, EOF alone")
			for c := 1; c < len(body); c++ {
				if got := run(t, tc.meta, pieces(body, []int{c}, io.EOF, c%2 == 0)); !assert.Equal(t, want, got, "split at %d", c) {
					return
				}
			}
			for range 50 {
				var cuts []int
				for c := rng.IntN(64); c < len(body); c += 1 + rng.IntN(64) {
					cuts = append(cuts, c)
				}
				require.Equal(t, want, run(t, tc.meta, pieces(body, cuts, io.EOF, rng.IntN(2) == 0)), "cuts %v", cuts)
			}
		})
	}
}

func TestTapGzip(t *testing.T) {
	for _, tc := range answerCases() {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.meta
			m.ContentEncoding = "gzip"
			zbody := gzipped(t, []byte(tc.body))
			want := with(whole(t, tc.meta, tc.body), func(r *Record) { r.Gzip, r.Bytes = true, int64(len(zbody)) })
			assert.Equal(t, want, run(t, m, pieces(zbody, nil, io.EOF, false)), "one read")
			assert.Equal(t, want, run(t, m, pieces(zbody, every(zbody, 1), io.EOF, false)), "1-byte reads")
			assert.Equal(t, want, run(t, m, pieces(zbody, every(zbody, 7), io.EOF, true)), "7-byte reads")
		})
	}
}

func TestTapGzipFailures(t *testing.T) {
	zbody := gzipped(t, []byte(chatSSE))
	t.Run("corrupt stream: usage unknown, marked", func(t *testing.T) {
		bad := append([]byte{}, zbody...)
		bad[len(bad)/2] ^= 0xff
		bad[len(bad)/2+1] ^= 0xff
		r := run(t, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, pieces(bad, every(bad, 16), io.EOF, false))
		assert.True(t, r.DecodeFailed)
		assert.Contains(t, r.DecodeError, "gzip: ")
		assert.NotContains(t, r.DecodeError, "gzip: gzip:")
		assert.False(t, r.Complete)
	})
	t.Run("not gzip at all", func(t *testing.T) {
		r := run(t, Meta{Kind: Chat, ContentType: "application/json", ContentEncoding: "gzip"}, pieces([]byte(chatJSON), nil, io.EOF, false))
		assert.True(t, r.DecodeFailed)
		assert.Equal(t, "gzip: invalid header", r.DecodeError)
		assert.False(t, r.Found)
		assert.False(t, r.Complete)
	})
	t.Run("a cut gzip stream is a cut, not a decoding failure", func(t *testing.T) {
		cut := len(zbody) * 3 / 4
		r := run(t, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, pieces(zbody[:cut], every(zbody[:cut], 50), errCut, false))
		assert.Equal(t, EndError, r.End)
		assert.False(t, r.DecodeFailed, r.DecodeError)
		assert.False(t, r.Complete)
		assert.Equal(t, "openai/gpt-4o", r.ModelServed, "what was decoded before the cut counts")
	})
	t.Run("a gzip stream that ends early at EOF is a decoding failure", func(t *testing.T) {
		cut := len(zbody) - 4
		r := run(t, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, pieces(zbody[:cut], nil, io.EOF, false))
		assert.True(t, r.DecodeFailed)
		assert.Contains(t, r.DecodeError, "unexpected EOF")
	})
	for _, enc := range []string{"br", "zstd", "deflate", "gzip, br"} {
		t.Run("encoding "+enc+" is not read", func(t *testing.T) {
			r := run(t, Meta{Kind: Chat, ContentType: "application/json", ContentEncoding: enc}, pieces([]byte(chatJSON), nil, io.EOF, false))
			assert.Equal(t, Record{DecodeFailed: true, DecodeError: `content encoding "` + enc + `" is not read`,
				End: EndEOF, Bytes: int64(len(chatJSON))}, r)
		})
	}
	t.Run("identity is read as is", func(t *testing.T) {
		r := run(t, Meta{Kind: Chat, ContentType: "application/json", ContentEncoding: " Identity "}, pieces([]byte(chatJSON), nil, io.EOF, false))
		assert.True(t, r.Found)
	})
	t.Run("x-gzip is gzip", func(t *testing.T) {
		zj := gzipped(t, []byte(chatJSON))
		r := run(t, Meta{Kind: Chat, ContentType: "application/json", ContentEncoding: "X-Gzip"}, pieces(zj, nil, io.EOF, false))
		assert.True(t, r.Found && r.Gzip && !r.DecodeFailed, "%+v", r)
	})
}

func TestGzipBomb(t *testing.T) {
	old := maxDecoded
	maxDecoded = 1 << 20
	t.Cleanup(func() { maxDecoded = old })
	body := []byte(sse(strings.Repeat(": OPENROUTER PROCESSING\n\n", (2<<20)/25), chatFinal, "data: [DONE]"))
	zbody := gzipped(t, body)
	r := run(t, Meta{Kind: Chat, ContentType: "text/event-stream", ContentEncoding: "gzip"}, pieces(zbody, every(zbody, 4096), io.EOF, false))
	assert.True(t, r.DecodeFailed)
	assert.Contains(t, r.DecodeError, "expands past 1 MiB")
	assert.False(t, r.Found)
}

// TestGzipBehind: when the decoder cannot keep up, Read does not wait for
// it; the queue stops at maxPending and the usage is given up.
func TestGzipBehind(t *testing.T) {
	g := newGzSide()
	g.started = true // no decoder runs: it has fallen behind for good
	tap := &Tap{}
	chunk := make([]byte, 64<<10)
	for range maxPending/len(chunk) + 1 {
		g.feed(tap, chunk)
	}
	assert.True(t, g.behind)
	assert.LessOrEqual(t, len(g.data), maxPending)
	close(g.done)
	err := g.close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fell more than 4 MiB behind")
}

func TestTapCosts(t *testing.T) {
	cases := []struct {
		name          string
		usage         string
		known         bool
		cost          float64
		prompt, compl int64
	}{
		{"number", `{"prompt_tokens":10,"completion_tokens":5,"cost":0.5}`, true, 0.5, 10, 5},
		{"zero", `{"prompt_tokens":10,"completion_tokens":5,"cost":0}`, true, 0, 10, 5},
		{"negative zero", `{"cost":-0}`, true, 0, 0, 0},
		{"exponent", `{"cost":1.5e-7}`, true, 1.5e-7, 0, 0},
		{"quoted decimal", `{"cost":"0.0002","prompt_tokens":"12"}`, true, 0.0002, 12, 0},
		{"not a number", `{"prompt_tokens":10,"completion_tokens":5,"cost":"abc"}`, false, 0, 10, 5},
		{"quoted NaN", `{"prompt_tokens":10,"cost":"NaN"}`, false, 0, 10, 0},
		{"quoted infinity", `{"cost":"Infinity"}`, false, 0, 0, 0},
		{"quoted hex", `{"cost":"0x10"}`, false, 0, 0, 0},
		{"overflows to infinity", `{"cost":1e999,"prompt_tokens":1e999}`, false, 0, 0, 0},
		{"negative", `{"prompt_tokens":-10,"completion_tokens":5,"cost":-0.5}`, false, 0, 0, 5},
		{"implausibly large", `{"cost":2e6}`, false, 0, 0, 0},
		{"null", `{"prompt_tokens":null,"cost":null}`, false, 0, 0, 0},
		{"object", `{"cost":{"total":1},"prompt_tokens":[1]}`, false, 0, 0, 0},
		{"bool", `{"cost":true,"prompt_tokens":false}`, false, 0, 0, 0},
		{"absent", `{"prompt_tokens":3}`, false, 0, 3, 0},
		{"huge token count", `{"prompt_tokens":1e300,"completion_tokens":9007199254740993}`, false, 0, 0, 0},
		{"fractional tokens", `{"prompt_tokens":12.9}`, false, 0, 12, 0},
		{"later figure wins", `{"cost":0.1,"cost":0.2,"prompt_tokens":1,"prompt_tokens":2}`, true, 0.2, 2, 0},
		{"invalid later figure makes the cost unknown", `{"cost":0.1,"cost":"x"}`, false, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []Meta{jsonMeta(Chat), sseMeta(Chat)} {
				body := `{"id":"gen-1","choices":[],"usage":` + tc.usage + `}`
				if m.ContentType != "application/json" {
					body = sse("data: "+body, "data: [DONE]")
				}
				r := whole(t, m, body)
				assert.True(t, r.Found)
				assert.Equal(t, tc.known, r.CostKnown)
				assert.Equal(t, tc.cost, r.Cost)
				assert.Equal(t, tc.prompt, r.PromptTokens)
				assert.Equal(t, tc.compl, r.CompletionTokens)
			}
		})
	}
}

func TestTapMalformed(t *testing.T) {
	junk := strings.Repeat(`"k":[1,{"a":"b"}],`, 10000) // ~180 KB of other members
	cases := []struct {
		name string
		meta Meta
		body string
		want func(*testing.T, Record)
	}{
		{"usage is not an object", jsonMeta(Chat), `{"usage":[1,2]}`, func(t *testing.T, r Record) { assert.False(t, r.Found) }},
		{"usage is null", jsonMeta(Chat), `{"usage":null}`, func(t *testing.T, r Record) { assert.False(t, r.Found) }},
		{"usage is a string", sseMeta(Chat), sse(`data: {"usage":"{\"cost\":1}"}`), func(t *testing.T, r Record) { assert.False(t, r.Found) }},
		{"huge usage object", sseMeta(Chat), sse(`data: {"choices":[],"usage":{`+junk+`"prompt_tokens":7,"cost":0.25}}`, "data: [DONE]"),
			func(t *testing.T, r Record) {
				assert.True(t, r.Found && r.CostKnown)
				assert.Equal(t, int64(7), r.PromptTokens)
				assert.False(t, r.LineSkipped)
			}},
		{"usage line cut off", sseMeta(Chat), sse(`data: {"choices":[],"usage":{"prompt_tokens":7,"cost":`),
			func(t *testing.T, r Record) { assert.False(t, r.CostKnown); assert.False(t, r.Complete) }},
		{"broken JSON in every way", sseMeta(Chat), sse(`data: {"usage":{{{`, `data: {"usage":}`, `data: {`, `data: {"error":{`, `data: {"usage":{"cost":0.1`),
			func(t *testing.T, r Record) { assert.True(t, r.Found) }},
		{"usage in a nested object is not the answer's", jsonMeta(Chat), `{"choices":[{"message":{"usage":{"cost":5}}}]}`,
			func(t *testing.T, r Record) { assert.False(t, r.Found) }},
		{"model name implausibly long", jsonMeta(Chat), `{"model":"` + strings.Repeat("m", 300) + `","usage":{"cost":1}}`,
			func(t *testing.T, r Record) { assert.Empty(t, r.ModelServed); assert.True(t, r.CostKnown) }},
		{"escaped strings are unescaped", jsonMeta(Chat), `{"model":"openai\/gpt-4o","provider":"Open\u0041I"}`,
			func(t *testing.T, r Record) {
				assert.Equal(t, "openai/gpt-4o", r.ModelServed)
				assert.Equal(t, "OpenAI", r.Provider)
			}},
		{"data without a space and with trailing blanks", sseMeta(Chat), "data:{\"usage\":{\"cost\":0.3}} \t\n\ndata:[DONE]  \n\n",
			func(t *testing.T, r Record) { assert.True(t, r.CostKnown); assert.True(t, r.Complete) }},
		{"[DONE] in a comment or event does not end the stream", sseMeta(Chat), ": [DONE]\n\nevent: [DONE]\ndata: x\n\nid: [DONE]\n\n",
			func(t *testing.T, r Record) { assert.False(t, r.Complete) }},
		{"Messages usage only in message_start", sseMeta(Messages), sse(messagesStart),
			func(t *testing.T, r Record) {
				assert.True(t, r.Found)
				assert.Equal(t, int64(175), r.PromptTokens)
				assert.False(t, r.CostKnown)
				assert.False(t, r.Complete)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := whole(t, tc.meta, tc.body)
			tc.want(t, r)
			body := []byte(tc.body)
			assert.Equal(t, r, run(t, tc.meta, pieces(body, every(body, 3), io.EOF, false)), "3-byte reads")
		})
	}
}

// TestTapLongLines: a line past MaxLine is skipped and marked, whether it
// lies in one read or spans many; lines after it are read.
func TestTapLongLines(t *testing.T) {
	long := `data: {"choices":[],"usage":{"cost":9,"pad":"` + strings.Repeat("x", MaxLine) + `"}}`
	fits := `data: {"usage":{"pad":"` + strings.Repeat("x", MaxLine-60) + `","cost":0.5}}`
	require.Less(t, len(fits), MaxLine)
	for _, tc := range []struct {
		name    string
		body    string
		skipped bool
		cost    float64
	}{
		{"longer than MaxLine", sse(long, chatFinal, "data: [DONE]"), true, 0.00095},
		{"just under MaxLine", sse(fits, "data: [DONE]"), false, 0.5},
		{"exactly MaxLine", sse(fits+strings.Repeat(" ", MaxLine-len(fits)), "data: [DONE]"), false, 0.5},
		{"one past MaxLine", sse(fits+strings.Repeat(" ", MaxLine-len(fits)+1), "data: [DONE]"), true, 0},
		{"a long comment is no loss", sse(": "+strings.Repeat("z", 2*MaxLine), chatFinal, "data: [DONE]"), false, 0.00095},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			for _, n := range []int{len(body), 64 << 10, 4093} {
				r := run(t, sseMeta(Chat), pieces(body, every(body, n), io.EOF, false))
				assert.Equal(t, tc.skipped, r.LineSkipped, "reads of %d", n)
				assert.Equal(t, tc.cost, r.Cost, "reads of %d", n)
				assert.True(t, r.Complete, "reads of %d", n)
			}
		})
	}
}

func TestTapBodyCap(t *testing.T) {
	pad := `"pad":"` + strings.Repeat("x", MaxBody-200) + `",`
	under := `{` + pad + `"usage":{"cost":0.5}}`
	require.Less(t, len(under), MaxBody)
	over := `{` + pad + `"more":"` + strings.Repeat("y", 400) + `","usage":{"cost":0.5}}`
	for _, m := range []Meta{jsonMeta(Chat), {Kind: Chat, ContentType: "application/json", ContentLength: int64(len(under))}} {
		r := run(t, m, pieces([]byte(under), every([]byte(under), 32<<10), io.EOF, false))
		assert.True(t, r.CostKnown)
		assert.False(t, r.BodyTooLarge)
		r = run(t, m, pieces([]byte(over), every([]byte(over), 32<<10), io.EOF, false))
		assert.False(t, r.Found)
		assert.False(t, r.Complete)
		assert.True(t, r.BodyTooLarge)
	}
	zover := gzipped(t, []byte(over))
	r := run(t, Meta{Kind: Chat, ContentType: "application/json", ContentEncoding: "gzip"}, pieces(zover, every(zover, 1000), io.EOF, false))
	assert.True(t, r.BodyTooLarge)
	assert.False(t, r.Found)
	assert.False(t, r.DecodeFailed, "stopping at the cap is not a decoding failure")
}

func TestTapGenerationID(t *testing.T) {
	m := jsonMeta(Chat)
	m.GenerationID = "gen-header"
	assert.Equal(t, "gen-header", whole(t, m, chatJSON).GenerationID, "the header wins")
	assert.Equal(t, "gen-abc", whole(t, jsonMeta(Chat), chatJSON).GenerationID, "else the body's id")
}
