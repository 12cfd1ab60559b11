package proxy

import (
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/orproxy/orproxy/ledger"
	"github.com/orproxy/orproxy/usage"
)

// What a request cost, and whether it may go at all.
//
// A POST to a model endpoint is first admitted (admit): with a budget used
// up it is answered 402 before its body is read, and nothing goes
// upstream. Once upstream answers, tap wraps the answer's body in a
// usage.Tap, which reads the cost as the bytes pass and, when the body
// ends, hands a usage.Record to record; record makes the request's ledger
// row and gives it to Spending. The tap never holds a byte back: each Read
// returns what the body gave, and its closing work runs only after the last
// bytes were written out.
//
// One row per client request that reached OpenRouter:
//   - an answer (any status) is a row when its body ends, also when the
//     client left or the stream was cut midway (an error row);
//   - no response headers within the header timeout (504) and a client that
//     left before the headers came (499) are rows with an unknown cost:
//     OpenRouter had the request and may bill it (a non-streamed completion
//     is billed in full even when nobody reads it). Their cost is known to
//     be nothing when the request runs no model (a GET of the catalogue),
//     or when every attempt got an error answer and the client left while
//     orproxy waited for another key;
//   - OpenRouter unreachable (502) is not a row: nothing reached it. Nor are
//     requests orproxy answered itself (guard, budget, no key), nor the
//     daemon's own GET /key and GET /models.

// answer is what the ledger row needs from the upstream answer the client
// got.
type answer struct {
	status int
	ttfb   time.Duration
	client string
	tapped bool
}

// admit refuses a POST to a model endpoint while a budget is used up. It
// answers the request itself and returns false when it refuses.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, x *exchange, path string) bool {
	x.kind = usage.EndpointKind(path)
	x.model = r.Method == http.MethodPost && isModelEndpoint(x.kind, path)
	if h.opts.Spending == nil || !x.model {
		return true
	}
	msg := h.opts.Spending.Admit()
	if msg == "" {
		return true
	}
	x.outcome.problem = "refused: a budget is used up"
	writeError(w, http.StatusPaymentRequired, msg)
	return false
}

// isModelEndpoint reports whether a path with its kind is one of the APIs
// that run a model and bill for it: chat and legacy completions, Responses,
// Messages, embeddings.
func isModelEndpoint(kind usage.Kind, path string) bool {
	if kind != usage.Other {
		return true
	}
	return strings.HasSuffix(strings.TrimRight(path, "/"), "/embeddings")
}

// tap is ReverseProxy's ModifyResponse when Spending is set: it wraps the
// body of the answer the client will get in a usage.Tap.
func (h *Handler) tap(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil // ReverseProxy needs the connection itself as the body
	}
	x := exchangeOf(resp.Request.Context())
	x.answer = answer{
		status: resp.StatusCode,
		ttfb:   time.Since(x.start),
		client: usage.ClientFamily(resp.Request.Header.Get("User-Agent")),
		tapped: true,
	}
	resp.Body = usage.NewTap(resp.Body, usage.MetaFrom(x.kind, resp), func(rec usage.Record) { h.record(x, rec) })
	return nil
}

// record makes the ledger row of a request whose answer has ended.
func (h *Handler) record(x *exchange, rec usage.Record) {
	row := x.row(x.answer.status, x.answer.client)
	row.TTFB = x.answer.ttfb
	row.ModelServed, row.Provider, row.GenerationID = rec.ModelServed, rec.Provider, rec.GenerationID
	row.Streamed = rec.Streamed
	row.PromptTokens, row.CompletionTokens = rec.PromptTokens, rec.CompletionTokens
	row.CachedTokens, row.ReasoningTokens = rec.CachedTokens, rec.ReasoningTokens
	row.CostUSD, row.CostKnown = rec.Cost, rec.CostKnown
	row.WebSearches = rec.WebSearches
	// A cut or abandoned body, an error in the answer, a stream that never
	// reached its end marker (when it could be read at all).
	row.Error = rec.End != usage.EndEOF || rec.ErrorEvent ||
		(rec.Streamed && !rec.Complete && !rec.DecodeFailed)
	if !rec.Found && (!x.model || row.Status >= http.StatusBadRequest) {
		// Nothing to bill: OpenRouter charges for running a model, and an
		// error status means it refused before running one. Only a model's
		// answer that is silent about its cost is unknown.
		row.CostKnown = true
	}
	h.opts.Spending.Record(row)
}

// recordUnanswered makes the row of a request that reached OpenRouter but
// got no answer to pass on (see the top of this file).
func (h *Handler) recordUnanswered(x *exchange, r *http.Request, status int) {
	if h.opts.Spending == nil || x.answer.tapped {
		return
	}
	row := x.row(status, usage.ClientFamily(r.Header.Get("User-Agent")))
	row.Error = true
	row.CostKnown = !x.model || x.outcome.settled
	h.opts.Spending.Record(row)
}

// row is the part of a ledger row the request itself decides.
func (x *exchange) row(status int, client string) ledger.Row {
	p, out := &x.plan, &x.outcome
	return ledger.Row{
		Time:              x.start,
		Endpoint:          x.kind.String(),
		Model:             p.model,
		Status:            status,
		Retried:           out.retried || out.rotated,
		ResentWithoutTool: out.resent,
		ToolInjected:      p.patched,
		Duration:          time.Since(x.start),
		Client:            client,
	}
}

// attributionValues are the header values of a, built once and put in each
// request's header map as they are: a one-element slice is full, so an
// append elsewhere would copy it rather than write into it.
func attributionValues(a *Attribution) (referer, title []string) {
	if a == nil {
		return nil, nil
	}
	if a.Referer != "" {
		referer = []string{a.Referer}
	}
	if a.Title != "" {
		title = []string{a.Title}
	}
	return referer, title
}

// attribute names orproxy as the app to OpenRouter, unless the client named
// itself with any of the attribution headers.
func (h *Handler) attribute(pr *httputil.ProxyRequest) {
	if h.referer == nil && h.title == nil {
		return
	}
	in := pr.In.Header
	if len(in["Http-Referer"]) > 0 || len(in["X-Title"]) > 0 || len(in["X-Openrouter-Title"]) > 0 {
		return
	}
	if h.referer != nil {
		pr.Out.Header["Http-Referer"] = h.referer
	}
	if h.title != nil {
		pr.Out.Header["X-Title"] = h.title
	}
}
