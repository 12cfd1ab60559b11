package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldUpstream streams a few SSE events per chat request, but holds a
// request that carries X-Test-Hold after its first event until release is
// closed, so a test can keep many streams open at once.
type heldUpstream struct {
	release  chan struct{}
	opened   atomic.Int64
	wrongKey atomic.Int64
	key      string
}

func (u *heldUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get("Authorization") != "Bearer "+u.key {
		u.wrongKey.Add(1)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	event := func(i int) {
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d \"}}]}\n\n", i)
		f.Flush()
	}
	_, _ = io.WriteString(w, ": OPENROUTER PROCESSING\n\n")
	event(0)
	if r.Header.Get("X-Test-Hold") != "" {
		u.opened.Add(1)
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
	}
	for i := 1; i < 4; i++ {
		event(i)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// TestThousandOpenStreams holds 1,000 SSE streams open through one orproxy
// process at the same moment, then lets them finish: every one must complete.
// The daemon's memory per open stream is reported, not asserted.
func TestThousandOpenStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("opens a thousand streams")
	}
	const streams = 1000
	const key = "sk-or-v1-thousandstreams0000000000000000000000000000000000000000000000"
	up := &heldUpstream{release: make(chan struct{}), key: key}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(up.release) }) }
	t.Cleanup(release)

	home := t.TempDir()
	credFile := filepath.Join(home, ".config", "orproxy", "credentials.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(credFile), 0o700))
	require.NoError(t, os.WriteFile(credFile, []byte(`{"source":"manual","openrouter_api_key":"`+key+`"}`), 0o600))
	cfgFile := filepath.Join(home, "orproxy.yaml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil,
		"listen: 127.0.0.1:0\nupstream: %s/api/v1\ncredentials: {file: %s, validate_on_start: false}\nweb_search: {enabled: false}\nlog: {level: info, format: json}\n",
		upSrv.URL, credFile), 0o600))
	p, base := serve(t, isolatedEnv(home), "--config", cfgFile)
	api := base + "/api/v1"

	tr := &http.Transport{MaxIdleConnsPerHost: streams, MaxConnsPerHost: 0}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	post := func(ctx context.Context, hold bool) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/chat/completions",
			strings.NewReader(`{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if hold {
			req.Header.Set("X-Test-Hold", "1")
		}
		return client.Do(req)
	}
	// Warm up, so the idle figure includes what any serving daemon has.
	for range 20 {
		resp, err := post(context.Background(), false)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	idleRSS := processRSS(t, p.cmd.Process.Pid)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var firstEvents, completed, failed atomic.Int64
	failures := make(chan string, streams)
	allOpen := make(chan struct{})
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			fail := func(format string, args ...any) {
				failed.Add(1)
				failures <- fmt.Sprintf(format, args...)
			}
			resp, err := post(ctx, true)
			if err != nil {
				fail("request: %v", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail("status %d", resp.StatusCode)
				return
			}
			br := bufio.NewReader(resp.Body)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					fail("before the first event: %v", err)
					return
				}
				if strings.HasPrefix(l, "data: ") {
					break
				}
			}
			if firstEvents.Add(1) == streams {
				close(allOpen)
			}
			rest, err := io.ReadAll(br)
			if err != nil {
				fail("reading the stream: %v", err)
				return
			}
			if !bytes.HasSuffix(rest, []byte("data: [DONE]\n\n")) || bytes.Count(rest, []byte("data: {")) != 3 {
				fail("stream incomplete: %q", rest)
				return
			}
			completed.Add(1)
		})
	}
	select {
	case <-allOpen:
	case <-ctx.Done():
		release()
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Log(f)
			break
		}
		t.Fatalf("only %d of %d streams got their first event", firstEvents.Load(), streams)
	}
	openRSS := processRSS(t, p.cmd.Process.Pid)
	inFlight := daemonInFlight(t, strings.TrimSuffix(api, "/api/v1"))
	release()
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}

	assert.EqualValues(t, streams, completed.Load(), "every stream completed")
	assert.Zero(t, failed.Load())
	assert.EqualValues(t, streams, up.opened.Load())
	assert.Zero(t, up.wrongKey.Load(), "every stream carried the stored key")
	assert.EqualValues(t, streams, inFlight, "all streams were open at once")
	perStream := float64(openRSS-idleRSS) / streams / 1024
	t.Logf("%d streams open at once: daemon RSS %.1f MiB idle, %.1f MiB with the streams open, %.1f KiB per open stream",
		streams, float64(idleRSS)/(1<<20), float64(openRSS)/(1<<20), perStream)
}

// processRSS is the resident set size of a process, from /proc.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here to read the daemon's memory: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

func daemonInFlight(t *testing.T, base string) int64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Requests struct {
			InFlight int64 `json:"in_flight"`
		} `json:"requests"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Requests.InFlight
}
