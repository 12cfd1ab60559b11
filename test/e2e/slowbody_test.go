package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStalledBodiesCostLittleAndAreCut: 100 connections that each announce a
// 32 MiB body and send one byte raise the daemon's memory by less than
// 50 MiB, and every one is answered 408 and closed within
// limits.body_read_timeout and a margin. The announced length is only a
// promise; the daemon must not reserve it, nor hold the connection for it.
func TestStalledBodiesCostLittleAndAreCut(t *testing.T) {
	const (
		conns       = 100
		declared    = 32 << 20
		timeout     = 2 * time.Second
		margin      = 3 * time.Second
		maxIncrease = 50 << 20
	)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[]}`)
	}))
	t.Cleanup(upstream.Close)

	home := t.TempDir()
	cfgFile := filepath.Join(home, "orproxy.yaml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil,
		"listen: 127.0.0.1:0\nupstream: %s/api/v1\ncredentials: {file: %s, validate_on_start: false}\n"+
			"web_search: {enabled: false}\nlimits: {max_request_body: 32MiB, body_read_timeout: %s}\nlog: {level: info, format: json}\n",
		upstream.URL, filepath.Join(home, "credentials.json"), timeout), 0o600))
	p, base := serve(t, isolatedEnv(home), "--config", cfgFile)
	addr := strings.TrimPrefix(base, "http://")
	pid := p.cmd.Process.Pid

	// A few ordinary requests first, so the idle figure is a serving daemon's.
	for range 5 {
		resp, err := httpClient.Get(base + "/healthz")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	idleRSS := processRSS(t, pid)

	type result struct {
		status  int
		body    string
		closed  bool // the connection ended after the answer
		elapsed time.Duration
		err     error
	}
	results := make([]result, conns)
	sent := make(chan struct{}, conns)
	var wg sync.WaitGroup
	head := "POST /api/v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(declared) + "\r\n\r\n{"
	for i := range conns {
		wg.Go(func() {
			res := &results[i]
			// Signalled once the byte is sent (or sending failed).
			signal := sync.OnceFunc(func() { sent <- struct{}{} })
			defer signal()
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				res.err = err
				return
			}
			defer conn.Close()
			// Every read is bounded: a connection the daemon holds past the
			// timeout and margin fails the test instead of hanging it.
			if err := conn.SetDeadline(time.Now().Add(timeout + margin)); err != nil {
				res.err = err
				return
			}
			if _, err := io.WriteString(conn, head); err != nil {
				res.err = err
				return
			}
			start := time.Now()
			signal()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				res.err, res.elapsed = fmt.Errorf("no answer: %w", err), time.Since(start)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			res.status, res.body = resp.StatusCode, string(body)
			_, err = br.ReadByte()
			res.closed, res.elapsed = err == io.EOF, time.Since(start)
		})
	}
	for range conns {
		<-sent
	}

	// Measure while every connection is inside the handler, reading its body.
	deadline := time.Now().Add(timeout / 2)
	inFlight := int64(-1)
	for time.Now().Before(deadline) {
		if inFlight = statusInFlight(base); inFlight >= conns {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by deadline
	}
	openRSS := processRSS(t, pid)
	wg.Wait()
	peakRSS := processPeakRSS(t, pid)

	assert.EqualValues(t, conns, inFlight, "all stalled requests were being read at once when memory was measured")
	increase := max(openRSS, peakRSS) - idleRSS
	t.Logf("%d stalled bodies of %d MiB announced: daemon RSS %.1f MiB idle, %.1f MiB with them open, peak %.1f MiB",
		conns, declared>>20, float64(idleRSS)/(1<<20), float64(openRSS)/(1<<20), float64(peakRSS)/(1<<20))
	assert.Less(t, increase, int64(maxIncrease), "memory rose by %.1f MiB", float64(increase)/(1<<20))

	var slowest time.Duration
	for i, res := range results {
		if !assert.NoError(t, res.err, "connection %d after %v", i, res.elapsed) {
			continue
		}
		assert.Equal(t, http.StatusRequestTimeout, res.status, "connection %d: %s", i, res.body)
		assert.Contains(t, res.body, "(limits.body_read_timeout)", "connection %d", i)
		assert.True(t, res.closed, "connection %d stayed open after its 408", i)
		assert.GreaterOrEqual(t, res.elapsed, timeout-200*time.Millisecond, "connection %d was cut before the timeout", i)
		slowest = max(slowest, res.elapsed)
	}
	t.Logf("slowest connection answered and closed after %v (timeout %v)", slowest, timeout)

	resp, err := httpClient.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the daemon keeps serving")
}

// statusInFlight reads requests.in_flight from /status, or -1.
func statusInFlight(base string) int64 {
	resp, err := httpClient.Get(base + "/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		Requests struct {
			InFlight int64 `json:"in_flight"`
		} `json:"requests"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	return st.Requests.InFlight
}

// processPeakRSS is the highest resident set size the process has had (VmHWM).
func processPeakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
