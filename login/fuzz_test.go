package login

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzParseCallback(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		p, err := parsePastedCallback(line)
		if err == nil {
			assert.True(t, !p.Code.IsZero() || p.Error != "")
			// Accepted input reads back the same from its canonical form,
			// as a query and as a full callback address, unless that form
			// outgrows the limit on what a pasted address may be (escaping
			// can triple a value's length).
			if len(p.encode())+len("http://127.0.0.1:8080/callback?") > 2*maxCodeLen {
				return
			}
			again, err := parseCallbackQuery(p.encode())
			require.NoError(t, err)
			assert.Equal(t, p, again)
			again, err = parsePastedCallback("http://127.0.0.1:8080/callback?" + p.encode())
			require.NoError(t, err)
			assert.Equal(t, p, again)
		}
		if q, err := parseCallbackQuery(line); err == nil && len(q.encode()) <= 2*maxCodeLen {
			again, err := parseCallbackQuery(q.encode())
			require.NoError(t, err)
			assert.Equal(t, q, again)
		}
		_, _ = parsePastedCode(line)
	})
}

// encode is the canonical query for p; parseCallbackQuery reads it back.
func (p callbackParams) encode() string {
	q := url.Values{}
	q.Set("state", p.State)
	if !p.Code.IsZero() {
		q.Set("code", p.Code.Reveal())
	}
	if p.Error != "" {
		q.Set("error", p.Error)
	}
	if p.ErrorDescription != "" {
		q.Set("error_description", p.ErrorDescription)
	}
	return q.Encode()
}
