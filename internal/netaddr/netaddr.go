// Package netaddr holds the few network rules orproxy applies to what it is
// given: whether a host names this machine only, where a client on this
// machine dials a listen address, and whether a configured header line is
// one plain header. They live apart from the config so that the proxy, the
// login flows, the service and the fakes share one definition without
// depending on the config loader.
package netaddr

import (
	"fmt"
	"net"
	"strings"
)

// IsLoopbackHost reports whether host (without port) names this machine only:
// localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// DialAddress is the host:port where a client on this machine reaches a
// proxy that listens on listen. An unspecified host (":8765", "0.0.0.0:8765",
// "[::]:8765") accepts loopback connections, so that is where to dial.
func DialAddress(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if port == "0" {
		// Fine for serve (tests, a one-off run), but nobody can find it.
		return "", fmt.Errorf("listen address %q has port 0 (any free port), so there is no fixed address to reach the proxy at; set a port in listen", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
