package proxy

import (
	"net/http"
	"sync/atomic"
)

// counters are the request figures of /status. Atomics, so counting costs
// the hot path no lock. Resends without the web search tool are counted by
// the patcher, under web_search.
type counters struct {
	total          atomic.Int64
	inFlight       atomic.Int64
	refused        atomic.Int64
	retried401     atomic.Int64
	upstreamErrors atomic.Int64
	clientGone     atomic.Int64
	rateLimited    atomic.Int64
	byClass        [6]atomic.Int64 // index status/100; 0 unused
}

func (c *counters) count(status int, st *requestState) {
	c.total.Add(1)
	if class := status / 100; class >= 1 && class <= 5 {
		c.byClass[class].Add(1)
	}
	if st.retried {
		c.retried401.Add(1)
	}
	// orproxy never answers 429 itself, so a forwarded 429 is OpenRouter's.
	if status == http.StatusTooManyRequests && st.forwarded {
		c.rateLimited.Add(1)
	}
}

func (c *counters) snapshot() map[string]any {
	return map[string]any{
		"total":             c.total.Load(),
		"in_flight":         c.inFlight.Load() - 1, // not counting the /status request itself
		"refused_by_guard":  c.refused.Load(),
		"retried_after_401": c.retried401.Load(),
		"upstream_errors":   c.upstreamErrors.Load(),
		"client_gone":       c.clientGone.Load(),
		"rate_limited":      c.rateLimited.Load(),
		"by_status": map[string]int64{
			"1xx": c.byClass[1].Load(), "2xx": c.byClass[2].Load(), "3xx": c.byClass[3].Load(),
			"4xx": c.byClass[4].Load(), "5xx": c.byClass[5].Load(),
		},
	}
}
