package proxy

import (
	"net/http"
	"sync/atomic"

	"github.com/orproxy/orproxy/internal/statusdoc"
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

func (c *counters) count(status int, retried, forwarded bool) {
	c.total.Add(1)
	if class := status / 100; class >= 1 && class <= 5 {
		c.byClass[class].Add(1)
	}
	if retried {
		c.retried401.Add(1)
	}
	// orproxy never answers 429 itself, so a forwarded 429 is OpenRouter's.
	if status == http.StatusTooManyRequests && forwarded {
		c.rateLimited.Add(1)
	}
}

func (c *counters) snapshot() statusdoc.Requests {
	return statusdoc.Requests{
		Total:           c.total.Load(),
		InFlight:        c.inFlight.Load() - 1, // not counting the /status request itself
		RefusedByGuard:  c.refused.Load(),
		RetriedAfter401: c.retried401.Load(),
		UpstreamErrors:  c.upstreamErrors.Load(),
		ClientGone:      c.clientGone.Load(),
		RateLimited:     c.rateLimited.Load(),
		ByStatus: statusdoc.ByStatus{
			Informational: c.byClass[1].Load(), Success: c.byClass[2].Load(), Redirect: c.byClass[3].Load(),
			ClientError: c.byClass[4].Load(), ServerError: c.byClass[5].Load(),
		},
	}
}
