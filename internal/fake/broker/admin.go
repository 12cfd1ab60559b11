package broker

import (
	"context"
	"net/http"

	"github.com/orproxy/orproxy/internal/fake/admin"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// The admin API drives a fake broker that runs as a process. The real
// broker has nothing like it.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_fake/stats", func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /_fake/fault", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := admin.ReadJSON(r, &f); err != nil {
			writeDetail(w, http.StatusBadRequest, "bad fault: "+err.Error())
			return
		}
		s.SetFault(f)
		admin.WriteJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("POST /_fake/revoke-current-key", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.RevokeCurrentKey(r.Context())
		if err != nil {
			writeDetail(w, http.StatusConflict, err.Error())
			return
		}
		admin.WriteJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("POST /_fake/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		admin.WriteJSON(w, http.StatusOK, map[string]bool{"reset": true})
	})
}

// AdminClient drives a fake broker running in another process.
type AdminClient struct {
	// BaseURL is the broker's base URL, as the process printed it.
	BaseURL string
	// HTTP defaults to a client with a 10 s timeout.
	HTTP *http.Client
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	cl := admin.Client{Name: "fake broker", BaseURL: c.BaseURL, HTTP: c.HTTP}
	return cl.Do(ctx, method, path, in, out)
}

// SetFault replaces the broker's fault.
func (c *AdminClient) SetFault(ctx context.Context, f Fault) error {
	return c.do(ctx, http.MethodPost, "/_fake/fault", f, nil)
}

// Stats returns the broker's counters and request log.
func (c *AdminClient) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.do(ctx, http.MethodGet, "/_fake/stats", nil, &st)
	return st, err
}

// RevokeCurrentKey revokes the key issued last at the fake OpenRouter.
func (c *AdminClient) RevokeCurrentKey(ctx context.Context) (openrouter.KeyInfo, error) {
	var info openrouter.KeyInfo
	err := c.do(ctx, http.MethodPost, "/_fake/revoke-current-key", nil, &info)
	return info, err
}

// Reset forgets counters, requests and the fault.
func (c *AdminClient) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/_fake/reset", nil, nil)
}
