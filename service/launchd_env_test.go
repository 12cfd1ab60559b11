package service

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMacOSDoesNotCarrySSLCertDir(t *testing.T) {
	lookup := func(name string) (string, bool) { return "/etc/" + name, true }
	names := func(goos string) []string { return envNames(carriedEnvOn(goos, lookup)) }
	assert.Contains(t, names("linux"), "SSL_CERT_DIR")
	assert.NotContains(t, names("darwin"), "SSL_CERT_DIR", "Go does not read it on macOS")
	assert.Contains(t, names("darwin"), "SSL_CERT_FILE", "orproxy reads it itself")
}
