package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/budget"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/ledger"
)

const (
	benchJSONAnswer = `{"id":"gen-1","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello there."}}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`
	benchEvent      = `data: {"id":"gen-1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n"
	benchEvents     = 20
)

// benchUpstream answers as fast as it can, so the figures are the proxy's.
func benchUpstream(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.RawQuery, "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			f := w.(http.Flusher)
			for range benchEvents {
				_, _ = io.WriteString(w, benchEvent)
				f.Flush()
			}
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, benchJSONAnswer)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchProxy is the handler in front of benchUpstream; with spending, each
// answer is read for its cost and its row goes to a real ledger through a
// budget tracker, as in the daemon's default configuration.
func benchProxy(b *testing.B, spending bool) (*httptest.Server, *http.Client) {
	up := benchUpstream(b)
	u, _ := url.Parse(up.URL + "/api/v1")
	tr, err := NewUpstreamTransport()
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Upstream: u, Keys: &staticKeys{key: secret.New(storedKey)}, Logger: zap.NewNop(), Transport: tr}
	if spending {
		w, err := ledger.Open(filepath.Join(b.TempDir(), "usage.db"), ledger.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if st := w.Status(); st.Dropped > 0 {
				b.Errorf("the ledger dropped %d rows", st.Dropped)
			}
			_ = w.Close(context.Background())
		})
		opts.Spending = budget.New(budget.Options{DailyUSD: 1000, Ledger: w})
	}
	h, err := NewHandler(opts)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config = NewServer(h, ServerOptions{})
	srv.Start()
	b.Cleanup(srv.Close)
	b.Cleanup(tr.CloseIdleConnections)
	ct := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(ct.CloseIdleConnections)
	return srv, &http.Client{Transport: ct}
}

func runBench(b *testing.B, path string, wantBytes int, spending bool) {
	srv, c := benchProxy(b, spending)
	body := `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 80) + `"}]}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(srv.URL+path, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || int(n) != wantBytes {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkProxyJSON is one small non-streaming completion through the full
// handler: guard, body read, key injection, forwarding. Client, proxy and
// upstream share the machine, so ns/op includes all three.
func BenchmarkProxyJSON(b *testing.B) {
	runBench(b, "/api/v1/chat/completions", len(benchJSONAnswer), false)
}

// BenchmarkProxyJSONLedger is BenchmarkProxyJSON with each answer read for
// its cost, admitted by a budget and written to the ledger: the default
// configuration.
func BenchmarkProxyJSONLedger(b *testing.B) {
	runBench(b, "/api/v1/chat/completions", len(benchJSONAnswer), true)
}

// BenchmarkProxySSE is one streamed completion of 20 events plus [DONE],
// each event flushed through the proxy on its own.
func BenchmarkProxySSE(b *testing.B) {
	runBench(b, "/api/v1/chat/completions?stream", benchEvents*len(benchEvent)+len("data: [DONE]\n\n"), false)
}

// BenchmarkProxySSELedger is BenchmarkProxySSE with the ledger and a budget.
func BenchmarkProxySSELedger(b *testing.B) {
	runBench(b, "/api/v1/chat/completions?stream", benchEvents*len(benchEvent)+len("data: [DONE]\n\n"), true)
}
