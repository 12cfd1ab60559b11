// Command warmbench measures what orproxy's warm upstream connection
// (keepalive) saves a one-shot client, over a link with a real round trip.
//
// It starts the HTTPS, HTTP/2 bench stub behind a relay that delays each
// direction (bench/internal/relay), and two orproxy daemons in front of
// the relay, one with keepalive on and one with it off. It then times one
// small chat completion of each kind, right after a request and after
// each -idle wait with no request at all:
//
//   - direct, by a client that keeps one connection, to a second stub that
//     never closes it: the control, what a request costs on a warm
//     connection after the same pause, asked first, so that it also meets
//     whatever the pause left cold on the machine;
//   - through each orproxy, by a new client on a new connection;
//   - direct, by a new client on a new connection (TCP, TLS, request).
//
// The stub closes connections idle for -server-idle, as OpenRouter's edge
// does after 400 s, so without keepalive the connection is gone after a
// long pause. It prints one table. Run from the repository root:
//
//	go run ./bench/cmd/warmbench          # 2 and 10 minutes idle, about 13 minutes
//	go run ./bench/cmd/warmbench -quick   # 5 and 40 seconds idle, the stub closing at 15 s
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/orproxy/orproxy/bench/internal/relay"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

const (
	dummyKey = "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000"
	body     = `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	// requestTimeout bounds each timed request.
	requestTimeout = 30 * time.Second
)

type settings struct {
	rtt        time.Duration
	handshake  bool
	idle       []time.Duration
	serverIdle time.Duration
	samples    int
	recentUse  time.Duration
	orproxy    string
	stub       string
}

func main() {
	var s settings
	var idle string
	quick := flag.Bool("quick", false, "short waits: -idle 5s,40s -server-idle 15s")
	flag.DurationVar(&s.rtt, "rtt", 50*time.Millisecond, "round trip of the link to the upstream (half each way)")
	flag.BoolVar(&s.handshake, "handshake", true, "a new connection's first bytes wait a round trip more, as behind a TCP handshake")
	flag.StringVar(&idle, "idle", "2m,10m", "comma-separated idle waits before a request")
	flag.DurationVar(&s.serverIdle, "server-idle", 400*time.Second, "the stub closes connections idle this long (OpenRouter's edge: 400s)")
	flag.IntVar(&s.samples, "n", 5, "timed requests for the direct and warm rows (the median is shown)")
	flag.DurationVar(&s.recentUse, "recent-use", time.Hour, "keepalive.recent_use of the daemon with keepalive on")
	flag.StringVar(&s.orproxy, "orproxy", "", "orproxy binary (default: built from ./cmd/orproxy)")
	flag.StringVar(&s.stub, "stub", "", "stub binary (default: built from ./bench/cmd/stub)")
	flag.Parse()
	if *quick {
		idle = "5s,40s"
		s.serverIdle = 15 * time.Second
	}
	for _, f := range strings.Split(idle, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "warmbench: -idle: %q is not a positive duration\n", f)
			os.Exit(2)
		}
		s.idle = append(s.idle, d)
	}
	if s.samples < 1 || s.rtt < 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, s); err != nil {
		fmt.Fprintln(os.Stderr, "warmbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// daemon is one orproxy under test.
type daemon struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan error
}

func run(ctx context.Context, s settings) error {
	work, err := os.MkdirTemp("", "orproxy-warmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if s.orproxy == "" || s.stub == "" {
		logf("building")
		if s.orproxy == "" {
			s.orproxy = filepath.Join(work, "orproxy")
			if err := build(ctx, s.orproxy, "./cmd/orproxy"); err != nil {
				return err
			}
		}
		if s.stub == "" {
			s.stub = filepath.Join(work, "stub")
			if err := build(ctx, s.stub, "./bench/cmd/stub"); err != nil {
				return err
			}
		}
	}

	// The stub, over HTTPS and HTTP/2 with a throwaway certificate, behind
	// the relay; and a second one that never closes an idle connection,
	// for the control: a client that keeps its own connection.
	upstream, cert, pool, stopUp, err := startUpstream(ctx, s, work, "stub", s.serverIdle)
	if err != nil {
		return err
	}
	defer stopUp()
	control, _, controlPool, stopControl, err := startUpstream(ctx, s, work, "control", 24*time.Hour)
	if err != nil {
		return err
	}
	defer stopControl()

	on, err := startDaemon(ctx, s, work, "on", upstream, cert, true)
	if err != nil {
		return err
	}
	defer halt(on.cmd, on.done)
	off, err := startDaemon(ctx, s, work, "off", upstream, cert, false)
	if err != nil {
		return err
	}
	defer halt(off.cmd, off.done)
	daemons := []*daemon{on, off}
	kept := directTransport(controlPool)
	defer kept.CloseIdleConnections()

	// One request each, not counted: orproxy's first after its start, and
	// the one that opens the kept connection.
	for _, d := range daemons {
		if _, err := timeProxy(ctx, d.url); err != nil {
			return fmt.Errorf("orproxy (keepalive %s): %w", d.name, err)
		}
	}
	if _, err := timeOne(ctx, kept, control+"/chat/completions", dummyKey); err != nil {
		return fmt.Errorf("direct, kept connection: %w", err)
	}
	// measure times one request of each kind. The control goes first:
	// after a pause, the first request also wakes the machine (the relay,
	// the client), and the control's connection is warm by construction,
	// so what orproxy's requests then show is orproxy's own.
	measure := func() (map[string]time.Duration, error) {
		got := map[string]time.Duration{}
		took, err := timeOne(ctx, kept, control+"/chat/completions", dummyKey)
		if err != nil {
			return nil, fmt.Errorf("direct, kept connection: %w", err)
		}
		got["kept"] = took
		for _, d := range daemons {
			took, err := timeProxy(ctx, d.url)
			if err != nil {
				return nil, fmt.Errorf("orproxy (keepalive %s): %w", d.name, err)
			}
			got[d.name] = took
		}
		if got["new"], err = timeDirect(ctx, upstream, pool); err != nil {
			return nil, fmt.Errorf("direct, new connection: %w", err)
		}
		return got, nil
	}
	logf("measuring: %d rounds of one request each, right after the last", s.samples)
	warm := map[string][]time.Duration{}
	for range s.samples {
		pause(ctx, 200*time.Millisecond)
		got, err := measure()
		if err != nil {
			return err
		}
		for k, v := range got {
			warm[k] = append(warm[k], v)
		}
	}
	after := make([]map[string]time.Duration, len(s.idle))
	for i, wait := range s.idle {
		logf("idle for %s, then one request of each kind", wait)
		if !pause(ctx, wait) {
			return ctx.Err()
		}
		if after[i], err = measure(); err != nil {
			return fmt.Errorf("after %s idle: %w", wait, err)
		}
	}
	st, err := warmStatus(ctx, on.url)
	if err != nil {
		return err
	}

	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %d CPUs, %s %s/%s\n", host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	tcp := "TCP handshake modelled as one more round trip"
	if !s.handshake {
		tcp = "TCP handshake free, as on loopback"
	}
	fmt.Printf("link: %s round trip (%s each way, relay on loopback; %s); upstream: bench stub over HTTPS and HTTP/2, closing connections idle %s\n",
		s.rtt, s.rtt/2, tcp, s.serverIdle)
	fmt.Printf("each request: one small chat completion, timed to the end of the answer; through orproxy and direct-new by a new client on a new connection,\n")
	fmt.Printf("direct-kept (the control, asked first) by one client on one connection that its upstream never closes\n\n")
	row := func(name string, cells ...string) {
		fmt.Printf("| %-32s |", name)
		for _, c := range cells {
			fmt.Printf(" %-23s |", c)
		}
		fmt.Println()
	}
	row("", "direct, kept connection", "orproxy, keepalive on", "orproxy, keepalive off", "direct, new connection")
	fmt.Printf("|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 34), strings.Repeat("-", 25), strings.Repeat("-", 25), strings.Repeat("-", 25), strings.Repeat("-", 25))
	cols := []string{"kept", "on", "off", "new"}
	cells := func(get func(string) time.Duration) []string {
		var out []string
		for _, c := range cols {
			out = append(out, ms(get(c)))
		}
		return out
	}
	row(fmt.Sprintf("right after a request (median of %d)", s.samples), cells(func(c string) time.Duration { return median(warm[c]) })...)
	for i, wait := range s.idle {
		row("after "+wait.String()+" idle", cells(func(c string) time.Duration { return after[i][c] })...)
	}
	// The link's round trip as a request sees it: the relay's timers and
	// the stub's answer add a little to the nominal one.
	worst := time.Duration(0)
	for i := range s.idle {
		worst = max(worst, after[i]["on"])
	}
	verdict := func(target time.Duration) string {
		if worst <= target {
			return "met"
		}
		return "NOT met"
	}
	floor := median(warm["kept"])
	nominal, measured := s.rtt+5*time.Millisecond, floor+5*time.Millisecond
	fmt.Printf("\ntarget: with keepalive on, every request after a pause within one round trip + 5 ms (slowest: %s):\n", ms(worst))
	fmt.Printf("  nominal round trip %s + 5 ms = %s: %s\n", ms(s.rtt), ms(nominal), verdict(nominal))
	fmt.Printf("  measured round trip (kept connection, direct) %s + 5 ms = %s: %s\n", ms(floor), ms(measured), verdict(measured))
	fmt.Printf("keepalive on, /status: held %v, %d connection(s), %d warm-up(s) (GET /key)", st.Held, st.Connections, st.Warmups)
	if st.LastError != "" {
		fmt.Printf(", last error: %s", st.LastError)
	}
	fmt.Println()
	return nil
}

// startUpstream starts a stub closing connections idle for idle, with its
// certificate in work, behind a relay; it returns the API base through the
// relay, the certificate file, a pool trusting it, and a stop function.
func startUpstream(ctx context.Context, s settings, work, name string, idle time.Duration) (string, string, *x509.CertPool, func(), error) {
	cert := filepath.Join(work, name+"-cert.pem")
	addr, err := freeAddr()
	if err != nil {
		return "", "", nil, nil, err
	}
	cmd := exec.CommandContext(ctx, s.stub, "-addr", addr, "-tls-cert", cert, "-idle-timeout", idle.String())
	cmd.Stderr = os.Stderr
	done, err := start(cmd)
	if err != nil {
		return "", "", nil, nil, err
	}
	pool, err := waitForCert(ctx, cert, addr, done)
	if err != nil {
		halt(cmd, done)
		return "", "", nil, nil, err
	}
	link, err := relay.Start(relay.Options{Listen: "127.0.0.1:0", Target: addr, OneWay: s.rtt / 2, Handshake: s.handshake})
	if err != nil {
		halt(cmd, done)
		return "", "", nil, nil, err
	}
	stop := func() {
		_ = link.Close()
		halt(cmd, done)
	}
	return "https://" + link.Addr() + "/api/v1", cert, pool, stop, nil
}

func build(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s (run warmbench from the repository root): %w", pkg, err)
	}
	return nil
}

// freeAddr is a loopback address free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func start(cmd *exec.Cmd) (chan error, error) {
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, nil
}

// halt stops a process this command started and waits for it.
func halt(cmd *exec.Cmd, done chan error) {
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitForCert waits for the stub's certificate and its port, and returns
// a pool that trusts it.
func waitForCert(ctx context.Context, cert, addr string, exited chan error) (*x509.CertPool, error) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the stub exited: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		pem, err := os.ReadFile(cert)
		if err != nil || len(pem) == 0 {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			continue
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			continue
		}
		c.Close()
		return pool, nil
	}
	return nil, errors.New("the stub did not start within 15 s")
}

func startDaemon(ctx context.Context, s settings, work, name, upstream, cert string, keepalive bool) (*daemon, error) {
	dir := filepath.Join(work, "orproxy-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cred := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(cred, []byte(`{"source":"manual","openrouter_api_key":"`+dummyKey+`"}`+"\n"), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`listen: %s
upstream: %s
credentials:
  file: %s
  validate_on_start: false
usage:
  file: %s
keepalive:
  enabled: %v
  recent_use: %s
log:
  level: warn
  format: json
`, addr, upstream, cred, filepath.Join(dir, "usage.db"), keepalive, s.recentUse)
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, s.orproxy, "serve", "--config", cfgFile)
	// Nothing of the user's: no proxy settings, no ORPROXY_*, no home.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir, "SSL_CERT_FILE=" + cert}
	cmd.Stderr = os.Stderr
	done, err := start(cmd)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, url: "http://" + addr, cmd: cmd, done: done}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := warmStatus(ctx, d.url); err == nil {
			return d, nil
		}
		select {
		case err := <-done:
			return nil, fmt.Errorf("orproxy (keepalive %s) exited: %v", name, err)
		case <-ctx.Done():
			halt(cmd, done)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	halt(cmd, done)
	return nil, fmt.Errorf("orproxy (keepalive %s) did not answer within 15 s", name)
}

// timeDirect is a new client's request straight to the upstream: a TCP
// connection, a TLS handshake and the request.
func timeDirect(ctx context.Context, upstream string, pool *x509.CertPool) (time.Duration, error) {
	tr := directTransport(pool)
	defer tr.CloseIdleConnections()
	return timeOne(ctx, tr, upstream+"/chat/completions", dummyKey)
}

func directTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
}

// timeProxy is a new client's request through orproxy on loopback.
func timeProxy(ctx context.Context, base string) (time.Duration, error) {
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	return timeOne(ctx, tr, base+"/api/v1/chat/completions", "")
}

func timeOne(ctx context.Context, tr *http.Transport, url, key string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	began := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"choices"`)) {
		return 0, fmt.Errorf("%s: %.200s", resp.Status, answer)
	}
	return took, nil
}

// warmStatus reads the daemon's warm_connection from /status.
func warmStatus(ctx context.Context, base string) (statusdoc.WarmConnection, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/status", nil)
	if err != nil {
		return statusdoc.WarmConnection{}, err
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return statusdoc.WarmConnection{}, err
	}
	defer resp.Body.Close()
	var doc statusdoc.Document
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return statusdoc.WarmConnection{}, err
	}
	if doc.WarmConnection == nil {
		return statusdoc.WarmConnection{}, errors.New("/status has no warm_connection: an orproxy without keepalive?")
	}
	return *doc.WarmConnection, nil
}

// pause waits d unless ctx ends first; it reports whether it waited.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
