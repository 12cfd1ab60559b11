// Command stub is a fast OpenRouter stand-in for the benchmarks. It answers
// POST /api/v1/chat/completions with a small JSON completion, or, when the
// body asks for "stream":true, with an SSE stream whose events carry the
// time they were sent (sent_ns, Unix nanoseconds) so the load client can
// measure per-event latency. Everything it sends is encoded once at start;
// an event costs only the timestamp.
//
//	stub -addr 127.0.0.1:8766
//
// With -tls-cert FILE it serves HTTPS (HTTP/2 and HTTP/1.1), as OpenRouter
// does, with a fresh self-signed certificate for 127.0.0.1 written to FILE
// for clients to trust. -idle-timeout sets how long an idle connection
// stays open (2 minutes by default; OpenRouter's edge closes idle HTTP/2
// connections after 400 s).
//
// The stream's shape comes from the query, which every proxy passes on:
// events=N (default 20) and interval=DURATION (default 10ms). The first
// event goes out with the headers, the others at the interval, then
// "data: [DONE]".
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/internal/loopserve"
)

const (
	jsonAnswer = `{"id":"gen-bench","object":"chat.completion","created":1700000000,"model":"openai/gpt-4o-mini","provider":"Stub","choices":[{"index":0,"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop","message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null}}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}`
	// An event is eventHead + sent_ns + eventTail.
	eventHead = `data: {"id":"gen-bench","object":"chat.completion.chunk","created":1700000000,"model":"openai/gpt-4o-mini","provider":"Stub","sent_ns":`
	eventTail = `,"choices":[{"index":0,"delta":{"role":"assistant","content":"token "},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}` + "\n\n"
	done      = "data: [DONE]\n\n"
	keyInfo   = `{"data":{"label":"sk-or-v1-000...000","limit":null,"usage":0,"is_free_tier":false}}`
	models    = `{"data":[{"id":"openai/gpt-4o-mini","name":"GPT-4o-mini","supported_parameters":["tools","tool_choice","max_tokens","temperature","stream"]}]}`

	maxBody         = 64 << 20
	maxEvents       = 100000
	defaultEvents   = 20
	defaultInterval = 10 * time.Millisecond
)

var (
	jsonBytes      = []byte(jsonAnswer)
	jsonLength     = []string{strconv.Itoa(len(jsonAnswer))}
	modelsBytes    = []byte(models)
	modelsLength   = []string{strconv.Itoa(len(models))}
	keyBytes       = []byte(keyInfo)
	keyLength      = []string{strconv.Itoa(len(keyInfo))}
	contentJSON    = []string{"application/json"}
	contentSSE     = []string{"text/event-stream"}
	noCache        = []string{"no-cache"}
	streamTrue     = []byte(`"stream":true`)
	streamTrueSpc  = []byte(`"stream": true`)
	bodyBuffers    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	eventBuffers   = sync.Pool{New: func() any { b := make([]byte, 0, len(eventHead)+20+len(eventTail)); return &b }}
	errBadInterval = errors.New("interval must be a duration between 0 and 1m")
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	certFile := flag.String("tls-cert", "", "serve HTTPS with a self-signed certificate written to this PEM file")
	idle := flag.Duration("idle-timeout", 2*time.Minute, "close a connection idle for this long")
	flag.Parse()
	if err := run(*addr, *certFile, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "stub:", err)
		os.Exit(1)
	}
}

func run(addr, certFile string, idle time.Duration) error {
	ln, err := loopserve.Listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if certFile == "" {
		return loopserve.Serve(ctx, srv, func() error { return srv.Serve(ln) })
	}
	cert, err := selfSigned(certFile)
	if err != nil {
		ln.Close()
		return err
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return loopserve.Serve(ctx, srv, func() error { return srv.ServeTLS(ln, "", "") })
}

// selfSigned makes a certificate for 127.0.0.1 and writes it to certFile.
func selfSigned(certFile string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "orproxy bench stub"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, pemBytes, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v1/chat/completions":
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		completion(w, r)
	case "/api/v1/models":
		h := w.Header()
		h["Content-Type"] = contentJSON
		h["Content-Length"] = modelsLength
		_, _ = w.Write(modelsBytes)
	case "/api/v1/key":
		h := w.Header()
		h["Content-Type"] = contentJSON
		h["Content-Length"] = keyLength
		_, _ = w.Write(keyBytes)
	default:
		http.NotFound(w, r)
	}
}

func completion(w http.ResponseWriter, r *http.Request) {
	// Read the whole body first, as OpenRouter does before it answers.
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxBody))
	stream := bytes.Contains(buf.Bytes(), streamTrue) || bytes.Contains(buf.Bytes(), streamTrueSpc)
	if buf.Cap() <= 1<<20 {
		bodyBuffers.Put(buf)
	}
	if err != nil {
		return // the client went away
	}
	if !stream {
		h := w.Header()
		h["Content-Type"] = contentJSON
		h["Content-Length"] = jsonLength
		_, _ = w.Write(jsonBytes)
		return
	}
	events, interval, err := streamShape(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sse(w, r, events, interval)
}

func streamShape(r *http.Request) (int, time.Duration, error) {
	q := r.URL.Query()
	events, interval := defaultEvents, defaultInterval
	if s := q.Get("events"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxEvents {
			return 0, 0, fmt.Errorf("events must be a number from 1 to %d", maxEvents)
		}
		events = n
	}
	if s := q.Get("interval"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > time.Minute {
			return 0, 0, errBadInterval
		}
		interval = d
	}
	return events, interval, nil
}

func sse(w http.ResponseWriter, r *http.Request, events int, interval time.Duration) {
	h := w.Header()
	h["Content-Type"] = contentSSE
	h["Cache-Control"] = noCache
	rc := http.NewResponseController(w)
	bp := eventBuffers.Get().(*[]byte)
	defer eventBuffers.Put(bp)
	// Since Go 1.23 a Reset timer never delivers a stale tick.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := time.Now()
	for i := range events {
		if i > 0 {
			next = next.Add(interval)
			timer.Reset(time.Until(next))
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
		}
		b := append((*bp)[:0], eventHead...)
		b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
		b = append(b, eventTail...)
		*bp = b
		if _, err := w.Write(b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, done)
}
