// Command load drives the benchmark targets and prints one JSON line per run
// on stdout for bench/run.sh to aggregate.
//
//	load json -url U -c 64 -d 3s [-pid P [-children]]   small JSON requests: throughput, p50/p99, CPU per request
//	load wrk  -url U -c 64 -d 3s [-pid P [-children]]   the same as json, with wrk as the client
//	load sse  -url U -c 16 -d 3s -events 25 -interval 20ms   time to first event, per-event latency
//	load hold -url U -n 1000 -events 10 -interval 1s [-pid P]   N open streams: completed, RSS while open
//	load freeport -n 4                                   free loopback ports
//	load wait -url U -timeout 10s                        wait until U answers
//
// Every run is bounded: a deadline on the whole run and a timeout on every
// request. -pid names the measured process; with -children its direct
// children (nginx's workers) count too.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orproxy/orproxy/bench/internal/loadstat"
)

// smallBody is a small chat request, as a client sends for a short question.
const smallBody = `{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"temperature":0.2}`

// streamBody asks for a streamed answer.
const streamBody = `{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Count slowly to twenty."}],"stream":true}`

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "json":
		err = cmdJSON(args)
	case "wrk":
		err = cmdWrk(args)
	case "sse":
		err = cmdSSE(args)
	case "hold":
		err = cmdHold(args)
	case "freeport":
		err = cmdFreePort(args)
	case "wait":
		err = cmdWait(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: load json|wrk|sse|hold|freeport|wait [flags]; see the package comment")
	os.Exit(2)
}

// common are the flags every load mode shares.
type common struct {
	url      string
	target   string
	round    int
	pid      int
	children bool
	timeout  time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "request URL, e.g. http://127.0.0.1:8765/api/v1/chat/completions")
	fs.StringVar(&c.target, "target", "", "target name, copied into the output")
	fs.IntVar(&c.round, "round", 0, "round number, copied into the output")
	fs.IntVar(&c.pid, "pid", 0, "process to measure (CPU, RSS); 0 = none")
	fs.BoolVar(&c.children, "children", false, "count the direct children of -pid too (nginx workers)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of one request or stream")
}

func (c *common) check() error {
	u, err := url.Parse(c.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q is not a URL", c.url)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: only loopback targets are allowed", c.url)
	}
	return nil
}

func (c *common) proc() *loadstat.Proc {
	if c.pid == 0 {
		return nil
	}
	return &loadstat.Proc{Root: "/proc", PID: c.pid, Children: c.children}
}

// newClient returns a client with room for conns connections to one host.
// HTTP/1.1 only, as clients of a plain-http local proxy talk.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     4 << 10,
		ReadBufferSize:      4 << 10,
	}}
}

func emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// errorTally counts failures by message, keeping a few kinds.
type errorTally map[string]int

func (t errorTally) add(err error) {
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	if _, ok := t[msg]; ok || len(t) < 8 {
		t[msg]++
	} else {
		t["(other)"]++
	}
}

func post(ctx context.Context, c *http.Client, u, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return resp, nil
}

func cmdFreePort(args []string) error {
	fs := flag.NewFlagSet("freeport", flag.ExitOnError)
	n := fs.Int("n", 1, "how many ports")
	_ = fs.Parse(args)
	var ports []string
	for range *n {
		// All stay open until every port is known, so they differ.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return nil
}

func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	var c common
	c.register(fs)
	_ = fs.Parse(args)
	if err := c.check(); err != nil {
		return err
	}
	deadline := time.Now().Add(c.timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(c.url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", c.url, c.timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errStreamIncomplete = errors.New("stream ended before [DONE]")
