package openrouter

import (
	"context"
	"net/http"
	"time"

	"github.com/orproxy/orproxy/internal/fake/admin"
)

// The admin API lets tests and the demo drive a fake that runs as a separate
// process. It exists only on the fake: OpenRouter has nothing like it.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_fake/keys", func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, s.Keys())
	})
	mux.HandleFunc("POST /_fake/keys", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Key       string     `json:"key"`
			Label     string     `json:"label"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		if in.Key == "" {
			admin.WriteJSON(w, http.StatusOK, s.IssueKey(in.Label, in.ExpiresAt))
			return
		}
		admin.WriteJSON(w, http.StatusOK, s.AddKey(in.Key, in.Label, in.ExpiresAt))
	})
	mux.HandleFunc("POST /_fake/revoke", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Key string `json:"key"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		if !s.Revoke(in.Key) {
			WriteError(w, http.StatusNotFound, "no such key")
			return
		}
		admin.WriteJSON(w, http.StatusOK, map[string]bool{"revoked": true})
	})
	mux.HandleFunc("POST /_fake/limit", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Key string `json:"key"`
			KeyLimit
		}
		if !readJSON(w, r, &in) {
			return
		}
		info, err := s.SetKeyLimit(in.Key, in.KeyLimit)
		if err != nil {
			WriteError(w, http.StatusBadRequest, "set limit: "+err.Error())
			return
		}
		admin.WriteJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("POST /_fake/spend", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Key string  `json:"key"`
			USD float64 `json:"usd"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		if err := s.Spend(in.Key, in.USD); err != nil {
			WriteError(w, http.StatusNotFound, "spend: "+err.Error())
			return
		}
		st, _ := s.KeyStatus(in.Key)
		admin.WriteJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /_fake/requests", func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, s.Requests())
	})
	mux.HandleFunc("POST /_fake/fault", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !readJSON(w, r, &f) {
			return
		}
		s.SetFault(f)
		admin.WriteJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("POST /_fake/step", func(w http.ResponseWriter, r *http.Request) {
		// Within the admin client's own timeout, so the caller hears why.
		ctx, cancel := context.WithTimeout(r.Context(), stepTimeout)
		defer cancel()
		piece, err := s.Step(ctx)
		if err != nil {
			WriteError(w, http.StatusConflict, "step: "+err.Error()+" (is a request streaming under a Stepped fault?)")
			return
		}
		admin.WriteJSON(w, http.StatusOK, map[string]string{"sent": piece})
	})
}

// stepTimeout bounds how long POST /_fake/step waits for a stream.
const stepTimeout = 5 * time.Second

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := admin.ReadJSON(r, v); err != nil {
		WriteError(w, http.StatusBadRequest, "bad admin request: "+err.Error())
		return false
	}
	return true
}

// AdminClient drives a fake running in another process through its admin API.
type AdminClient struct {
	// BaseURL is the fake's origin, e.g. http://127.0.0.1:5000.
	BaseURL string
	// HTTP defaults to a client with a 10 s timeout.
	HTTP *http.Client
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	cl := admin.Client{Name: "fake OpenRouter", BaseURL: c.BaseURL, HTTP: c.HTTP}
	return cl.Do(ctx, method, path, in, out)
}

// IssueKey mints a valid key.
func (c *AdminClient) IssueKey(ctx context.Context, label string, expiresAt *time.Time) (KeyInfo, error) {
	var info KeyInfo
	err := c.do(ctx, http.MethodPost, "/_fake/keys", map[string]any{"label": label, "expires_at": expiresAt}, &info)
	return info, err
}

// Revoke makes a key invalid.
func (c *AdminClient) Revoke(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodPost, "/_fake/revoke", map[string]any{"key": key}, nil)
}

// Keys lists the fake's keys.
func (c *AdminClient) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := c.do(ctx, http.MethodGet, "/_fake/keys", nil, &out)
	return out, err
}

// SetKeyLimit sets a key's credit limit; see Server.SetKeyLimit.
func (c *AdminClient) SetKeyLimit(ctx context.Context, key string, l KeyLimit) (KeyInfo, error) {
	var info KeyInfo
	err := c.do(ctx, http.MethodPost, "/_fake/limit", map[string]any{"key": key, "limit": l.Limit, "limit_reset": l.Reset, "is_free_tier": l.IsFreeTier}, &info)
	return info, err
}

// Spend charges usd to a key and returns its GET /key data after.
func (c *AdminClient) Spend(ctx context.Context, key string, usd float64) (KeyStatus, error) {
	var st KeyStatus
	err := c.do(ctx, http.MethodPost, "/_fake/spend", map[string]any{"key": key, "usd": usd}, &st)
	return st, err
}

// Requests returns what the fake received.
func (c *AdminClient) Requests(ctx context.Context) ([]Request, error) {
	var out []Request
	err := c.do(ctx, http.MethodGet, "/_fake/requests", nil, &out)
	return out, err
}

// SetFault replaces the fake's fault.
func (c *AdminClient) SetFault(ctx context.Context, f Fault) error {
	return c.do(ctx, http.MethodPost, "/_fake/fault", f, nil)
}

// Step lets the next piece of a stream under a Stepped fault go and returns
// it, once sent; see Server.Step.
func (c *AdminClient) Step(ctx context.Context) (string, error) {
	var out struct {
		Sent string `json:"sent"`
	}
	err := c.do(ctx, http.MethodPost, "/_fake/step", nil, &out)
	return out.Sent, err
}
