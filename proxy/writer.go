package proxy

import (
	"net/http"
)

// recorder notes the status and size of a response for the log line. It
// passes Flush through and exposes Unwrap, without which ReverseProxy could not
// flush SSE events through it and streaming would silently buffer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recorder) Flush() { _ = w.FlushError() }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
