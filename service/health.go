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

// checkHealth asks the proxy once. The access token is sent because a proxy
// configured with one may guard every path.
func checkHealth(ctx context.Context, client *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	return nil
}

// waitHealthy polls until the proxy answers or the timeout passes.
func waitHealthy(ctx context.Context, client *http.Client, url, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := checkHealth(ctx, client, url, token)
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
func probePort(ctx context.Context, client *http.Client, addr, token string) portState {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		// Refused or unreachable: nothing listens there.
		return portFree
	}
	conn.Close()
	if checkHealth(ctx, client, healthURL(addr), token) == nil {
		return portOurs
	}
	return portTaken
}
