package login

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
)

// TestCallbackPageShowsTheOutcome: the login hands the browser's page its
// outcome and then ends, closing the callback server. However the two race,
// the page shows the outcome, not "the login ended".
func TestCallbackPageShowsTheOutcome(t *testing.T) {
	wrong := 0
	for range 300 {
		g := newGate()
		cs := &callbackServer{state: "S", gate: g, log: zap.NewNop(), finished: make(chan struct{})}
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1234/callback?state=S&code=C", nil)
		rec := httptest.NewRecorder()
		var wg sync.WaitGroup
		wg.Go(func() { cs.ServeHTTP(rec, req) })
		a := <-g.arrivals                                 // what browserFlow does: take the answer,
		a.outcome <- nil                                  // report the outcome,
		cs.finishedOnce.Do(func() { close(cs.finished) }) // and end
		wg.Wait()
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Logged in") {
			wrong++
		}
	}
	assert.Zero(t, wrong, "pages that did not show the outcome")
}
