// Package loopserve runs the project's helper servers (the fakes, the
// benchmark stub and baseline) the one way they all need: on loopback only,
// until their context ends, then shut down promptly.
package loopserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/orproxy/orproxy/internal/netaddr"
)

// Listen listens on addr and refuses an address beyond loopback: these
// servers answer with fake keys and admin endpoints nobody else may reach.
// The address is checked before anything listens on it.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !netaddr.IsLoopbackHost(host) {
		return nil, fmt.Errorf("%s is not a loopback address: these servers listen on loopback only", addr)
	}
	return net.Listen("tcp", addr)
}

// Serve runs serve (srv.Serve or srv.ServeTLS on a listener) until it fails
// or ctx ends; then it gives open requests two seconds before closing them.
func Serve(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
