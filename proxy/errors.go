package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeError answers in OpenRouter's error shape, so clients that already
// handle OpenRouter's errors show ours the same way.
func writeError(w http.ResponseWriter, status int, message string) {
	body := errorBody(status, message)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func errorBody(status int, message string) []byte {
	type inner struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{inner{status, message}})
	return b
}
