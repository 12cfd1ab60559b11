package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

func healthURL(addr string) string { return "http://" + addr + "/healthz" }

// healthCallTimeout bounds one GET /healthz: an orproxy on this machine
// answers at once, and a person waits for the answer.
const healthCallTimeout = 2 * time.Second

// LocalClient returns a client for an orproxy on this machine, each request
// bounded by timeout. It never goes through HTTP_PROXY or HTTPS_PROXY: they
// lead to the internet, and a proxy there would answer for a daemon that
// is not running, or see the access token.
func LocalClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: timeout}
}

// AnswerError says something answers at the address, but not GET /healthz's
// 200 OK: another program, or an orproxy that is not well.
type AnswerError struct {
	URL string
	// Status is the answer's status line, as in "404 Not Found".
	Status string
}

func (e *AnswerError) Error() string { return fmt.Sprintf("GET %s answered %s", e.URL, e.Status) }

// CheckHealth asks the orproxy at addr (host:port) for GET /healthz once,
// within a couple of seconds or ctx, whichever ends first. It returns nil
// when orproxy answers, an *AnswerError when something else does, and the
// network's error when nothing does.
func CheckHealth(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, healthCallTimeout)
	defer cancel()
	client := LocalClient(healthCallTimeout)
	defer client.CloseIdleConnections()
	return checkHealth(ctx, client, healthURL(addr))
}

// checkHealth asks the proxy once. It sends no access token: orproxy answers
// /healthz without one, and whatever listens at the address, which may not
// be orproxy, must not see it.
func checkHealth(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return &AnswerError{URL: url, Status: resp.Status}
	}
	return nil
}

// waitHealthy polls until the proxy answers or the timeout passes.
func waitHealthy(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := checkHealth(ctx, client, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return ctx.Err()
			}
			return err
		case <-tick.C:
		}
	}
}

type portState int

const (
	portFree  portState = iota
	portOurs            // an orproxy already answers there
	portTaken           // something else listens there
)

// probePort tells whether the service will be able to listen. It connects
// instead of binding, so a privileged port or a port held with SO_REUSEPORT
// is judged by what answers, not by what this process may bind.
func probePort(ctx context.Context, client *http.Client, addr string) portState {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		// Refused or unreachable: nothing listens there.
		return portFree
	}
	conn.Close()
	if checkHealth(ctx, client, healthURL(addr)) == nil {
		return portOurs
	}
	return portTaken
}
