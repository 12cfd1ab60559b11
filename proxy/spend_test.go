package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/budget"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testkit"
	"github.com/orproxy/orproxy/ledger"
)

// spendRecorder is a Spending that keeps every row and counts it in a real
// budget tracker, as the daemon's is.
type spendRecorder struct {
	budget *budget.Tracker
	rows   chan ledger.Row

	mu  sync.Mutex
	all []ledger.Row
}

func newSpendRecorder(opts budget.Options) *spendRecorder {
	return &spendRecorder{budget: budget.New(opts), rows: make(chan ledger.Row, 100)}
}

func (s *spendRecorder) Record(r ledger.Row) {
	s.budget.Add(r.Time, r.CostUSD, r.CostKnown, r.WebSearches)
	s.mu.Lock()
	s.all = append(s.all, r)
	s.mu.Unlock()
	s.rows <- r
}

func (s *spendRecorder) Admit() string { return s.budget.Admit() }

// row waits for the next row; it comes as the answer's body ends, before
// the handler returns.
func (s *spendRecorder) row(t *testing.T) ledger.Row {
	t.Helper()
	select {
	case r := <-s.rows:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no ledger row within 10s")
		return ledger.Row{}
	}
}

func (s *spendRecorder) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

func withSpending(s *spendRecorder) harnessOption {
	return func(o *Options) { o.Spending = s }
}

// TestRowsMatchTheFakesCharges: the row of each request says what the fake
// OpenRouter charged for it, to the token and the cent, in every API.
func TestRowsMatchTheFakesCharges(t *testing.T) {
	search := `,"tools":[{"type":"openrouter:web_search"}]`
	for _, tc := range []struct {
		name, path, body, endpoint, model string
		streamed                          bool
	}{
		{"chat stream with search", "/api/v1/chat/completions",
			`{"model":"openai/gpt-4o","stream":true,"reasoning":{"effort":"low"},"messages":[{"role":"user","content":"hi"}]` + search + `}`,
			"chat", "openai/gpt-4o", true},
		{"chat JSON", "/api/v1/chat/completions", `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]` + search + `}`,
			"chat", "openai/gpt-4o-mini", false},
		{"Responses stream", "/v1/responses", `{"model":"openai/gpt-5","stream":true,"input":"hi"}`, "responses", "openai/gpt-5", true},
		{"Messages JSON", "/v1/messages", `{"model":"anthropic/claude-sonnet-4","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`,
			"messages", "anthropic/claude-sonnet-4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spend := newSpendRecorder(budget.Options{})
			h := newHarness(t, openrouter.Options{}, withSpending(spend))
			resp, body := h.do(t, http.MethodPost, tc.path, tc.body, map[string]string{"User-Agent": "opencode/1.0.3 ai-sdk/provider-utils"})
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			row := spend.row(t)
			reqs := h.fake.Requests()
			require.Len(t, reqs, 1)
			charged := reqs[0].Usage
			require.NotNil(t, charged)
			require.Positive(t, charged.Cost)

			assert.Equal(t, tc.endpoint, row.Endpoint)
			assert.Equal(t, tc.model, row.Model)
			assert.NotEmpty(t, row.ModelServed)
			assert.Equal(t, reqs[0].GenerationID, row.GenerationID)
			assert.Equal(t, http.StatusOK, row.Status)
			assert.Equal(t, tc.streamed, row.Streamed)
			assert.True(t, row.CostKnown)
			assert.Equal(t, charged.Cost, row.CostUSD)
			assert.Equal(t, int64(charged.PromptTokens), row.PromptTokens)
			assert.Equal(t, int64(charged.CompletionTokens), row.CompletionTokens)
			assert.Equal(t, int64(charged.CachedTokens), row.CachedTokens)
			assert.Equal(t, int64(charged.ReasoningTokens), row.ReasoningTokens)
			assert.Equal(t, int64(charged.WebSearches), row.WebSearches)
			assert.Equal(t, "opencode", row.Client)
			assert.False(t, row.Error)
			assert.False(t, row.Retried)
			assert.Positive(t, row.TTFB)
			assert.GreaterOrEqual(t, row.Duration, row.TTFB)
			assert.WithinDuration(t, time.Now(), row.Time, 10*time.Second)
			assert.Equal(t, 1, spend.count(), "one row per request")
			assert.InDelta(t, charged.Cost, spend.budget.Spend().TodayUSD, 1e-12, "the budget counted it")
		})
	}
}

// TestRowWithoutUsageHasAnUnknownCost: an answer that says nothing of its
// cost is stored as unknown, never as free; an answer that cannot have
// cost anything (an error status, a GET) is stored as free.
func TestRowWithoutUsageHasAnUnknownCost(t *testing.T) {
	spend := newSpendRecorder(budget.Options{})
	h := newHarness(t, openrouter.Options{}, withSpending(spend))
	h.fake.SetFault(openrouter.Fault{OmitUsage: true})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	row := spend.row(t)
	assert.False(t, row.CostKnown)
	assert.Zero(t, row.CostUSD)
	assert.False(t, row.Error, "the stream reached [DONE]")
	assert.Equal(t, int64(1), spend.budget.Spend().UnknownCostToday)

	h.fake.SetFault(openrouter.Fault{Status: http.StatusTooManyRequests})
	resp, _ = h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, map[string]string{"User-Agent": "curl/8.5.0"})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	row = spend.row(t)
	assert.Equal(t, http.StatusTooManyRequests, row.Status)
	assert.True(t, row.CostKnown, "refused before a model ran: nothing billed")
	assert.Equal(t, "curl", row.Client)

	h.fake.SetFault(openrouter.Fault{})
	resp, _ = h.do(t, http.MethodGet, "/api/v1/models", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	row = spend.row(t)
	assert.Equal(t, "other", row.Endpoint)
	assert.True(t, row.CostKnown, "a catalogue read runs no model")
	assert.Equal(t, "other", row.Client)
	assert.Equal(t, int64(1), spend.budget.Spend().UnknownCostToday)
}

// TestBrokenAnswersAreErrorRows: a stream that ends with an error event,
// and one that is cut, count as errors.
func TestBrokenAnswersAreErrorRows(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault openrouter.Fault
	}{
		{"error event", openrouter.Fault{ErrorMidStream: 2}},
		{"cut", openrouter.Fault{CutAfterBytes: 300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spend := newSpendRecorder(budget.Options{})
			h := newHarness(t, openrouter.Options{}, withSpending(spend))
			h.fake.SetFault(tc.fault)
			req, err := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body) // a cut stream ends in an error
			resp.Body.Close()
			row := spend.row(t)
			assert.True(t, row.Error)
			assert.Equal(t, http.StatusOK, row.Status)
			assert.True(t, row.Streamed)
			assert.False(t, row.CostKnown, "the usage never came")
		})
	}
}

// TestRequestsWithoutAnAnswer: no headers in time (504) and a client that
// left before them (499) are rows with an unknown cost, since OpenRouter
// had the request, unless it ran no model for it; an unreachable
// OpenRouter (502) is no row.
func TestRequestsWithoutAnAnswer(t *testing.T) {
	t.Run("header timeout", func(t *testing.T) {
		spend := newSpendRecorder(budget.Options{})
		h := newHarness(t, openrouter.Options{}, withSpending(spend), func(o *Options) { o.HeaderTimeout = 100 * time.Millisecond })
		h.fake.SetFault(openrouter.Fault{HangBeforeHeaders: true})
		resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
		row := spend.row(t)
		assert.Equal(t, http.StatusGatewayTimeout, row.Status)
		assert.False(t, row.CostKnown)
		assert.True(t, row.Error)
		assert.Equal(t, "openai/gpt-4o-mini", row.Model)
	})
	t.Run("client gone before the headers", func(t *testing.T) {
		spend := newSpendRecorder(budget.Options{})
		h := newHarness(t, openrouter.Options{}, withSpending(spend))
		h.fake.SetFault(openrouter.Fault{HangBeforeHeaders: true})
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", strings.NewReader(chatBody))
		require.NoError(t, err)
		go func() {
			defer cancel()
			assert.Eventually(t, func() bool { return len(h.fake.Requests()) == 1 }, 10*time.Second, 5*time.Millisecond)
		}()
		_, err = client.Do(req)
		require.Error(t, err)
		row := spend.row(t)
		assert.Equal(t, 499, row.Status)
		assert.False(t, row.CostKnown)
		assert.True(t, row.Error)
	})
	t.Run("a GET without headers in time costs nothing", func(t *testing.T) {
		hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(hang.Close)
		spend := newSpendRecorder(budget.Options{})
		h := newHarness(t, openrouter.Options{}, withSpending(spend), func(o *Options) {
			o.HeaderTimeout = 100 * time.Millisecond
			o.Upstream, _ = url.Parse(hang.URL + "/api/v1")
		})
		resp, _ := h.do(t, http.MethodGet, "/api/v1/models", "", nil)
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
		row := spend.row(t)
		assert.Equal(t, http.StatusGatewayTimeout, row.Status)
		assert.True(t, row.CostKnown, "no model ran")
		assert.Zero(t, row.CostUSD)
		assert.True(t, row.Error)
	})
	t.Run("client gone while another key was awaited costs nothing", func(t *testing.T) {
		spend := newSpendRecorder(budget.Options{})
		// The fake knows another key: the stored one meets a 401.
		h := newHarness(t, openrouter.Options{Keys: []string{rotatedKey}}, withSpending(spend))
		h.keys.replaceWaits = true
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", strings.NewReader(chatBody))
		require.NoError(t, err)
		go func() {
			defer cancel()
			assert.Eventually(t, func() bool { return h.keys.replaced.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
		}()
		_, err = client.Do(req)
		require.Error(t, err)
		row := spend.row(t)
		assert.Equal(t, 499, row.Status)
		assert.True(t, row.CostKnown, "OpenRouter answered 401 and ran no model")
		assert.Zero(t, row.CostUSD)
		assert.True(t, row.Error)
		assert.Len(t, h.fake.Requests(), 1, "the retry was never sent")
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		dead := ln.Addr().String()
		require.NoError(t, ln.Close())
		spend := newSpendRecorder(budget.Options{})
		h := newHarness(t, openrouter.Options{}, withSpending(spend), func(o *Options) { o.Upstream, _ = url.Parse("http://" + dead + "/api/v1") })
		resp, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
		require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Zero(t, spend.count())
	})
}

// usedUp returns a Spending whose daily budget of $0.01 is used up.
func usedUp(t *testing.T) *spendRecorder {
	t.Helper()
	spend := newSpendRecorder(budget.Options{DailyUSD: 0.01, ConfigFile: "/home/u/.config/orproxy/config.yaml"})
	spend.budget.Add(time.Now(), 0.0125, true, 0)
	require.NotEmpty(t, spend.Admit())
	return spend
}

func TestUsedUpBudgetRefusesModelRequests(t *testing.T) {
	spend := usedUp(t)
	h := newHarness(t, openrouter.Options{}, withSpending(spend))
	for _, path := range []string{"/api/v1/chat/completions", "/v1/completions", "/api/v1/responses", "/v1/messages", "/api/v1/embeddings"} {
		resp, body := h.do(t, http.MethodPost, path, chatBody, nil)
		assert.Equal(t, http.StatusPaymentRequired, resp.StatusCode, path)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"error":{"code":402,"message":"orproxy's daily budget is used up: $0.01 spent today of $0.01. It resets at midnight (`+
			nextMidnight()+`), local time; to spend more now, raise budget.daily_usd in /home/u/.config/orproxy/config.yaml and restart orproxy."}}`, body, path)
	}
	assert.Empty(t, h.fake.Requests(), "nothing went upstream")
	assert.Zero(t, h.keys.asked.Load(), "no key was even asked for")
	assert.Zero(t, spend.count(), "a refused request is no row")
}

func nextMidnight() string {
	now := time.Now()
	return time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.Local).Format("Mon 2 Jan 15:04 MST")
}

// TestUsedUpBudgetLetsOtherRequestsPass: GETs (the catalogue, the key's
// limits) and POSTs that run no model are not spending.
func TestUsedUpBudgetLetsOtherRequestsPass(t *testing.T) {
	spend := usedUp(t)
	h := newHarness(t, openrouter.Options{}, withSpending(spend))
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/models"},
		{http.MethodGet, "/api/v1/key"},
		{http.MethodPost, "/v1/messages/count_tokens"},
	} {
		resp, body := h.do(t, tc.method, tc.path, `{"model":"anthropic/claude-sonnet-4","messages":[{"role":"user","content":"hi"}]}`, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", tc.method, tc.path, body)
	}
	assert.Len(t, h.fake.Requests(), 3)
}

// TestRunningStreamIsNotCutWhenTheBudgetIsUsedUp: a stream admitted before
// the budget ran out goes on to its end; only new requests are refused.
func TestRunningStreamIsNotCutWhenTheBudgetIsUsedUp(t *testing.T) {
	spend := newSpendRecorder(budget.Options{DailyUSD: 0.000001})
	h := newHarness(t, openrouter.Options{}, withSpending(spend))
	h.fake.SetFault(openrouter.Fault{Stepped: true})
	req, err := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = h.fake.Step(ctx)
	require.NoError(t, err)

	// Meanwhile, the stream's own cost is not known yet; spending elsewhere
	// uses the budget up.
	spend.budget.Add(time.Now(), 1, true, 0)
	refused, _ := h.do(t, http.MethodPost, "/api/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`, nil)
	assert.Equal(t, http.StatusPaymentRequired, refused.StatusCode)

	for {
		piece, err := h.fake.Step(ctx)
		require.NoError(t, err)
		if piece == "data: [DONE]\n\n" {
			break
		}
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream was not cut")
	assert.True(t, strings.HasSuffix(string(b), "data: [DONE]\n\n"))
	row := spend.row(t)
	assert.False(t, row.Error)
	assert.True(t, row.CostKnown)
}

// TestTapDelaysNothing: with the ledger on, each piece of a stream reaches
// the client before the fake sends the next one.
func TestTapDelaysNothing(t *testing.T) {
	spend := newSpendRecorder(budget.Options{})
	h := newHarness(t, openrouter.Options{}, withSpending(spend))
	h.fake.SetFault(openrouter.Fault{Stepped: true, KeepAlivesBetween: 1})
	req, err := http.NewRequest(http.MethodPost, h.proxy.URL+"/api/v1/chat/completions",
		strings.NewReader(`{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	pieces := testkit.ReadEachStep(t, br, h.fake.Step)
	require.Greater(t, pieces, 5)
	_, err = io.Copy(io.Discard, br)
	require.NoError(t, err)
	row := spend.row(t)
	assert.True(t, row.CostKnown && !row.Error, "%+v", row)
	assert.Equal(t, h.fake.Requests()[0].Usage.Cost, row.CostUSD)
}

func TestAttributionOnlyWhenTheClientSentNone(t *testing.T) {
	const referer, title = "https://github.com/orproxy/orproxy", "orproxy"
	for _, tc := range []struct {
		name        string
		attribution *Attribution
		sent        map[string]string
		want        map[string]string
	}{
		{"none sent", &Attribution{Referer: referer, Title: title}, nil,
			map[string]string{"HTTP-Referer": referer, "X-Title": title}},
		{"referer sent", &Attribution{Referer: referer, Title: title}, map[string]string{"HTTP-Referer": "https://my.app"},
			map[string]string{"HTTP-Referer": "https://my.app", "X-Title": ""}},
		{"title sent", &Attribution{Referer: referer, Title: title}, map[string]string{"X-Title": "My App"},
			map[string]string{"HTTP-Referer": "", "X-Title": "My App"}},
		{"OpenRouter's new title header sent", &Attribution{Referer: referer, Title: title}, map[string]string{"X-OpenRouter-Title": "My App"},
			map[string]string{"HTTP-Referer": "", "X-Title": "", "X-OpenRouter-Title": "My App"}},
		{"attribution off", nil, nil, map[string]string{"HTTP-Referer": "", "X-Title": ""}},
		{"title only configured", &Attribution{Title: title}, nil, map[string]string{"HTTP-Referer": "", "X-Title": title}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Attribution = tc.attribution })
			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, tc.sent)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			got := h.fake.Requests()[0].Header
			for name, want := range tc.want {
				assert.Equal(t, want, got.Get(name), name)
				assert.LessOrEqual(t, len(got.Values(name)), 1, name)
			}
		})
	}
}

// TestStatusSections: the daemon's sections reach /status.
func TestStatusSections(t *testing.T) {
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.StatusSections = func(doc *statusdoc.Document) {
			doc.Ledger = &statusdoc.Ledger{File: "/tmp/usage.db", Written: 3}
		}
	})
	resp, body := h.do(t, http.MethodGet, "/status", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `"file": "/tmp/usage.db"`)
	assert.Contains(t, body, `"rows_written": 3`)
}
