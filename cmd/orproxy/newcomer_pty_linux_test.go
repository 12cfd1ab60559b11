package main

import (
	"io"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/testenv"
)

// On a terminal, the address pasted while the login waits completes it;
// no --paste needed.
func TestLoginPastedOnATerminal(t *testing.T) {
	master, slave := openPTY(t)
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	run := startCommand(t, slave, "--config", cfg, "login", "--no-browser", "--timeout", "20s")
	final := finalAddress(t, run.line(t, loginURLLine))
	_, err := io.WriteString(master, final+"\n")
	require.NoError(t, err)
	require.Equal(t, exitOK, run.wait(t), run.err.String())
	assert.Regexp(t, regexp.MustCompile(`paste the address it ends on`), run.err.String())
	assert.Equal(t, auth.SourceBroker, env.Stored(t).Source)
}
