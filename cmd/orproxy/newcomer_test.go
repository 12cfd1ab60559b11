package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/testenv"
)

// Durations read as words: a broker key that lives 30 days expires "in 30
// days", not "in 719h59m0s".
func TestStatusSaysDurationsInWords(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	env.LoginBroker(t)
	cfg := configFor(t, env, "")
	code, out, errOut := runWithStdin(t, "", "--config", cfg, "status")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `expires\s+\S+ \(in 30 days\)`, out)
	assert.Regexp(t, `updated\s+\S+ \((now|\d+ seconds ago)\)`, out)
	assert.NotRegexp(t, `\d+h\d+m`, out)
}
