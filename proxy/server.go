package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ServerOptions configure NewServer and Serve. Zero values take the defaults noted.
type ServerOptions struct {
	// DrainTimeout is how long in-flight requests (open streams included)
	// may run on after shutdown begins; default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ReadHeaderTimeout is how long a client may take to send its request
	// headers before the connection is closed (slow-loris clients); default
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	Logger            *zap.Logger
}

const (
	// DefaultDrainTimeout is ServerOptions.DrainTimeout's default. A service
	// manager's stop timeout must be longer (see package service).
	DefaultDrainTimeout = 30 * time.Second
	// DefaultReadHeaderTimeout is ServerOptions.ReadHeaderTimeout's default.
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Listen opens the listening socket, turning "address in use" into advice.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s is already in use: is orproxy already running? check with `orproxy status`, or set listen/ORPROXY_LISTEN to another address", addr)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// NewServer returns the http.Server for h. No WriteTimeout: it would cut SSE
// streams. ReadHeaderTimeout stops slow-loris clients; the general OPTIONS *
// handler is off so the guard answers it.
func NewServer(h http.Handler, opts ServerOptions) *http.Server {
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	return &http.Server{
		Handler:                      h,
		ReadHeaderTimeout:            opts.ReadHeaderTimeout,
		IdleTimeout:                  2 * time.Minute,
		MaxHeaderBytes:               64 << 10,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     mustStdLog(logger),
	}
}

// Serve runs srv on ln until ctx is done, then stops accepting, lets
// in-flight requests finish for up to DrainTimeout, and closes what is left.
// It returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, opts ServerOptions) error {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; waiting for in-flight requests", zap.Duration("drain_timeout", opts.DrainTimeout))
	// The deadline starts now, at the signal, not at start-up.
	drainCtx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(drainCtx)
	if err != nil {
		log.Warn("drain timeout reached; closing open connections", zap.Error(err))
		_ = srv.Close()
	}
	if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}
