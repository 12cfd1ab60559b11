package openrouter

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// takeStatus returns the status a chat request must fail with under the
// current fault (0: none) and uses up one of StatusTimes.
func (s *Server) takeStatus() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	status := s.fault.Status
	if status != 0 && s.fault.StatusTimes > 0 {
		s.fault.StatusTimes--
		if s.fault.StatusTimes == 0 {
			s.fault.Status = 0
		}
	}
	return status
}

// writeStatusFault answers with status in the shape OpenRouter gives it.
func writeStatusFault(w http.ResponseWriter, f Fault, status int, model string, gz bool) {
	body := map[string]any{"error": map[string]any{"code": status, "message": http.StatusText(status)}}
	switch status {
	case http.StatusPaymentRequired:
		creditsRefusal(f).write(w, styleOpenRouter, gz)
		return
	case http.StatusTooManyRequests:
		limits := setRateLimitHeaders(w, f)
		body = map[string]any{
			"error": map[string]any{"code": status, "message": "Rate limit exceeded: free-models-per-min. ",
				"metadata": map[string]any{"headers": limits, "error_type": "rate_limit_exceeded", "provider_name": nil}},
			"user_id": "user_fake",
		}
	case http.StatusBadGateway:
		body = map[string]any{
			"error": map[string]any{"code": status, "message": "Provider returned error",
				"metadata": map[string]any{"error_type": "provider_unavailable", "provider_name": "FakeProvider",
					"raw": "upstream connect error or disconnect/reset before headers"}},
			"user_id": "user_fake",
		}
	case http.StatusServiceUnavailable:
		availability := map[string]any{"code": "temporarily_unavailable", "retryable": true, "requested_models": []string{model},
			"docs_url": "https://openrouter.ai/docs/api_reference/errors-and-debugging"}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			availability["retry_after"] = f.RetryAfter
		}
		body = map[string]any{
			"error": map[string]any{"code": status, "message": "No endpoints available for " + model + ": temporarily unavailable",
				"availability": availability},
			"user_id": "user_fake",
		}
	}
	data, _ := json.Marshal(body)
	writeErrorBody(w, status, data, gz)
}

// setRateLimitHeaders sets the headers of a 429 from OpenRouter's own
// limiter and returns the X-RateLimit-* ones, which its body repeats.
func setRateLimitHeaders(w http.ResponseWriter, f Fault) map[string]string {
	retry := f.RetryAfter
	if retry <= 0 {
		retry = 1
	}
	limits := map[string]string{
		"X-RateLimit-Limit":     "20",
		"X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset":     strconv.FormatInt(time.Now().Add(time.Duration(retry)*time.Second).UnixMilli(), 10),
	}
	for k, v := range limits {
		w.Header().Set(k, v)
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	return limits
}

func writeErrorBody(w http.ResponseWriter, status int, body []byte, gz bool) {
	w.Header().Set("Content-Type", "application/json")
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// streamError is the chunk OpenRouter sends when a stream fails after its
// first token: the status is 200 already, so the error travels in the body,
// at the top level, with a choice finished by "error".
func streamError(id string, created int64, model string, code int) map[string]any {
	if code == 0 {
		code = http.StatusBadGateway
	}
	message, errorType := http.StatusText(code), "server"
	switch code {
	case http.StatusTooManyRequests:
		message, errorType = "Rate limit exceeded", "rate_limit_exceeded"
	case http.StatusBadGateway:
		message, errorType = "Provider returned error", "provider_unavailable"
	}
	ev := chunk(id, created, model, map[string]any{"content": ""}, "error")
	ev["choices"].([]any)[0].(map[string]any)["native_finish_reason"] = "error"
	ev["error"] = map[string]any{"code": code, "message": message, "metadata": map[string]any{"error_type": errorType}}
	return ev
}

// Step lets the Stepped stream that waits for it send its next piece and
// returns that piece once it is written and flushed. It fails when no stream
// takes the step, or the stream ended, before ctx does.
func (s *Server) Step(ctx context.Context) (string, error) {
	sent := make(chan string, 1)
	select {
	case s.steps <- sent:
	case <-ctx.Done():
		return "", fmt.Errorf("no stream waited for a step: %w", ctx.Err())
	}
	select {
	case piece, ok := <-sent:
		if !ok {
			return "", errors.New("the stream ended before it could send its next piece")
		}
		return piece, nil
	case <-ctx.Done():
		return "", fmt.Errorf("the stream did not send its piece: %w", ctx.Err())
	}
}

// errCut is what writes get once a cutWriter has closed the connection.
var errCut = errors.New("fake OpenRouter cut the connection (Fault.CutAfterBytes)")

// cutWriter passes the first left body bytes on, then closes the connection
// under the response, so the client gets neither the rest of a promised
// Content-Length nor the last chunk of a chunked body.
type cutWriter struct {
	http.ResponseWriter
	left int
	cut  bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.cut {
		return 0, errCut
	}
	if len(p) < c.left {
		n, err := c.ResponseWriter.Write(p)
		c.left -= n
		return n, err
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left, c.cut = 0, true
	rc := http.NewResponseController(c.ResponseWriter)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		// HTTP/2 cannot hand over its connection: reset the stream instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
	return n, errCut
}

func (c *cutWriter) Flush() {
	if !c.cut {
		_ = http.NewResponseController(c.ResponseWriter).Flush()
	}
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
