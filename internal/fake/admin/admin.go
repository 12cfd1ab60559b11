// Package admin is the JSON-over-HTTP client the fakes' admin APIs share,
// for tests and the demo that drive a fake running as a separate process.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls one fake's admin API.
type Client struct {
	// Name says which fake, in errors ("fake broker").
	Name string
	// BaseURL is the fake's base URL.
	BaseURL string
	// HTTP defaults to a client with a 10 s timeout.
	HTTP *http.Client
}

// Do sends in as JSON (nil: no body) and decodes the answer into out (nil:
// ignored). A status other than 200 is an error carrying the answer.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s admin %s %s: %w", c.Name, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s admin %s %s: %w", c.Name, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s admin %s %s: %s: %s", c.Name, method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// WriteJSON answers v as JSON with status: the one way both fakes write
// their answers, so their admin APIs and handlers cannot drift apart.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ReadJSON decodes an admin request's body (at most 1 MiB) into v; an empty
// body leaves v as it is, so "POST with no body" means "the defaults".
func ReadJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return json.Unmarshal(body, v)
}
