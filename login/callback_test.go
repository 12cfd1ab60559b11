package login

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCallback(t *testing.T) {
	for _, tc := range []struct {
		in, state, code, err string
	}{
		{in: "http://127.0.0.1:5000/callback?state=S1&code=C1", state: "S1", code: "C1"},
		{in: "http://127.0.0.1:5000/callback?code=C1&state=S1", state: "S1", code: "C1"},
		{in: "http://127.0.0.1:5000/callback?state=S1?code=C1", state: "S1", code: "C1"}, // naive append
		{in: "  <http://localhost:5000/callback?state=S1&code=C%2B1>  ", state: "S1", code: "C+1"},
		{in: `"?state=S1&code=C1"`, state: "S1", code: "C1"},
		{in: "state=S1&code=C1#frag", state: "S1", code: "C1"},
		{in: "state=S1&code=C%231", state: "S1", code: "C#1"},
		{in: "http://127.0.0.1:5000/callback?state=S1&code=C1#frag", state: "S1", code: "C1"},
		{in: "state=S1&state=S1&code=C1", state: "S1", code: "C1"},
		{in: "state=S1&error=access_denied", state: "S1"},
		{in: "", err: "nothing was pasted"},
		{in: "http://127.0.0.1:5000/callback?code=C1", code: "C1"}, // the state is checked apart
		{in: "http://127.0.0.1:5000/callback?state=S1", err: "no code"},
		{in: "state=S1&state=S2&code=C1", err: `two different "state" values`},
		{in: "state=S1&code=C1&code=C2", err: `two different "code" values`},
		{in: "state=S1&code=%zz", err: "malformed"},
		{in: "state=S1&code=C%0A1", err: "control characters"},
		{in: "state=S1&code=C1\x1b[2J", err: "control characters"},
		{in: "http://[::1/callback?state=S&code=C", err: "not an address"},
	} {
		p, err := parsePastedCallback(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.state, p.State, tc.in)
		assert.Equal(t, tc.code, p.Code.Reveal(), tc.in)
	}
}

func TestCheckState(t *testing.T) {
	with := callbackParams{State: "S1"}
	assert.NoError(t, with.checkState("S1"))
	assert.ErrorIs(t, with.checkState("S2"), errWrongState)
	assert.ErrorIs(t, callbackParams{}.checkState("S1"), errNoState)
	// A login that sent no state has none to check: a state that comes
	// anyway is the broker's own.
	assert.NoError(t, callbackParams{}.checkState(""))
	assert.NoError(t, with.checkState(""))
}

func TestParsePastedCode(t *testing.T) {
	for in, want := range map[string]string{
		"code-abc":                        "code-abc",
		"  code-abc \r":                   "code-abc",
		"http://x/cb?code=code-abc&a=b":   "code-abc",
		"http://x/cb?state=s?code=abc%2B": "abc+",
		"code=abc":                        "abc",
	} {
		got, err := parsePastedCode(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got.Reveal(), in)
	}
	for _, in := range []string{"", "  ", "two words", "a\x00b"} {
		_, err := parsePastedCode(in)
		assert.Error(t, err, in)
	}
}

func TestRandomTokensDiffer(t *testing.T) {
	a, err := randomToken()
	require.NoError(t, err)
	b, err := randomToken()
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
	assert.Len(t, a, 43)
	p, err := newPKCE()
	require.NoError(t, err)
	assert.Equal(t, s256(p.verifier.Reveal()), p.challenge)
	// RFC 7636 appendix B.
	assert.Equal(t, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
}
