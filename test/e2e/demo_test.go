package e2e

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs `make demo`'s script with the binaries built for these tests
// and checks that it shows the login, the stream and the one rotation.
func TestDemo(t *testing.T) {
	env := append(isolatedEnv(t.TempDir()), "BIN="+binDir, "TMPDIR="+t.TempDir())
	out, errOut, err := run(t, env, "../..", "bash", "scripts/demo.sh")
	require.NoError(t, err, "demo failed:\n%s\n%s", out, errOut)
	assert.Contains(t, out, "Logged in through the broker")
	assert.Contains(t, out, "data: [DONE]")
	assert.Regexp(t, regexp.MustCompile(`"rotation_count": 1,`), out)
	assert.NotRegexp(t, regexp.MustCompile(`sk-or-v1-[0-9a-f]{20}`), out+errOut, "no key printed whole")
}
