package proxy

import (
	"net/http"
	"strings"
)

// recorder notes the status and size of a response for the log line. It
// passes Flush through and exposes Unwrap, without which ReverseProxy could not
// flush SSE events through it and streaming would silently buffer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader also sends the headers of an event stream at once, from a
// shallow stack. ReverseProxy would otherwise send them from inside its copy
// loop, where net/http's header writer (a large frame) can push the
// goroutine past its first stack size, and every open stream would then keep
// a stack twice as large.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
	if code >= 200 && isEventStream(w.Header().Get("Content-Type")) {
		_ = w.FlushError()
	}
}

func isEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
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
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recorder) Flush() { _ = w.FlushError() }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
