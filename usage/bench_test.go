package usage

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchEvents is the size of a typical streamed answer.
const benchEvents = 200

// chatStream is a 200-event chat stream as OpenRouter sends it: a
// keep-alive, content chunks, the stop chunk, the usage chunk and [DONE],
// one event per Read as the upstream flushes them.
func chatStream() []step {
	events := []string{": OPENROUTER PROCESSING"}
	for i := len(events); i < benchEvents-3; i++ {
		events = append(events, chatChunk(fmt.Sprintf(" token%d and some words", i)))
	}
	events = append(events, chatStop, chatFinal, "data: [DONE]")
	return eventSteps(events)
}

func responsesStream() []step {
	events := []string{`data: {"type":"response.created","sequence_number":0,"response":{"id":"gen-resp1","object":"response","model":"openai/gpt-5","status":"in_progress","usage":null,"error":null}}`}
	for i := len(events); i < benchEvents-2; i++ {
		events = append(events, fmt.Sprintf(`event: response.output_text.delta`+"\n"+
			`data: {"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg-1","output_index":0,"content_index":0,"delta":" token%d and some words"}`, i, i))
	}
	events = append(events, `event: response.completed`+"\n"+
		`data: {"type":"response.completed","sequence_number":2,"response":{"id":"gen-resp1","object":"response","model":"openai/gpt-5","status":"completed","error":null,"output":[],"usage":`+responsesUsage+`}}`,
		"data: [DONE]")
	return eventSteps(events)
}

func messagesStream() []step {
	events := []string{messagesStart}
	for i := len(events); i < benchEvents-2; i++ {
		events = append(events, fmt.Sprintf(`event: content_block_delta`+"\n"+
			`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" token%d and some words"}}`, i))
	}
	events = append(events,
		`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15,"cost":0.0042}}`,
		`event: message_stop`+"\n"+`data: {"type":"message_stop"}`)
	return eventSteps(events)
}

func eventSteps(events []string) []step {
	steps := make([]step, 0, len(events)+1)
	for _, e := range events {
		steps = append(steps, step{data: []byte(e + "\n\n")})
	}
	return append(steps, step{err: io.EOF})
}

// chatJSON10K is a 10 KB chat completion: a long answer, then usage.
func chatJSON10K() []byte {
	long := strings.Repeat("A sentence of a long answer, with words. ", 250)
	return []byte(strings.Replace(chatJSON, "Hello, there is no error here.", long, 1))
}

// drain reads src through a Tap (or bare, with m nil) like ReverseProxy
// does and returns the bytes read.
func drain(b *testing.B, src *script, m *Meta, buf []byte) int {
	var r io.ReadCloser = src
	if m != nil {
		r = NewTap(src, *m, nil)
	}
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	_ = r.Close()
	if m != nil {
		if rec, _ := r.(*Tap).Result(); !rec.Complete || !rec.Found {
			b.Fatalf("the benchmark answer was not read: %+v", rec)
		}
	}
	return total
}

func benchStream(b *testing.B, steps []step, m Meta) {
	buf := make([]byte, 2<<10) // the proxy's copy buffer
	size := 0
	for _, s := range steps {
		size += len(s.data)
	}
	for _, tc := range []struct {
		name string
		meta *Meta
	}{{"bare", nil}, {"tap", &m}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			src := &script{steps: steps}
			for b.Loop() {
				src.i = 0
				drain(b, src, tc.meta, buf)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(steps)-1), "ns/read")
		})
	}
}

// BenchmarkTapSSE reads 200-event streams, one event per read, through a
// Tap and, for scale, bare: the difference in ns/read is what accounting
// costs per event.
func BenchmarkTapSSE(b *testing.B) {
	b.Run("chat", func(b *testing.B) { benchStream(b, chatStream(), sseMeta(Chat)) })
	b.Run("responses", func(b *testing.B) { benchStream(b, responsesStream(), sseMeta(Responses)) })
	b.Run("messages", func(b *testing.B) { benchStream(b, messagesStream(), sseMeta(Messages)) })
	b.Run("chat-gzip", func(b *testing.B) {
		var plain []byte
		for _, s := range chatStream() {
			plain = append(plain, s.data...)
		}
		z := gzipped(b, plain)
		m := sseMeta(Chat)
		m.ContentEncoding = "gzip"
		benchStream(b, pieces(z, every(z, len(z)/benchEvents+1), io.EOF, true), m) // as many reads as events
	})
}

// BenchmarkTapJSON reads a 10 KB chat completion in reads of the proxy's
// 2 KiB copy buffer.
func BenchmarkTapJSON(b *testing.B) {
	body := chatJSON10K()
	m := Meta{Kind: Chat, ContentType: "application/json", ContentLength: int64(len(body))}
	benchStream(b, pieces(body, every(body, 2<<10), io.EOF, true), m)
}
