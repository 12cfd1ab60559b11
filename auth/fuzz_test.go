package auth

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

func FuzzDecodeCredential(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCredential(data)
		if err != nil {
			assert.Nil(t, c)
			return
		}
		// What Load accepts, Save writes back and Load reads the same.
		out, err := encodeCredential(c)
		require.NoError(t, err)
		again, err := decodeCredential(out)
		require.NoError(t, err)
		assert.Equal(t, c, again)
	})
}

// encodeBrokerAnswer writes an answer the way the contract shows it, so the
// fuzz target can check that what the decoder accepts survives a round trip.
func encodeBrokerAnswer(bc *BrokerCredential) ([]byte, error) {
	w := map[string]any{
		"openrouter_api_key":   bc.APIKey.Reveal(),
		"broker_refresh_token": bc.RefreshToken.Reveal(),
		"openrouter_key_hash":  bc.KeyHash,
		"openrouter_key_label": bc.KeyLabel,
	}
	if !bc.KeyExpiresAt.IsZero() {
		w["openrouter_key_expires_at"] = bc.KeyExpiresAt.Format(time.RFC3339Nano)
	}
	return json.Marshal(w)
}

func FuzzDecodeBrokerAnswer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		bc, err := decodeBrokerAnswer(data)
		if err != nil {
			assert.Nil(t, bc)
			return
		}
		assert.False(t, bc.APIKey.IsZero())
		out, err := encodeBrokerAnswer(bc)
		require.NoError(t, err)
		again, err := decodeBrokerAnswer(out)
		require.NoError(t, err)
		assert.Equal(t, bc, again)
		_ = errorMessage(data) // any body can be an error body; it must not panic
		assert.LessOrEqual(t, len([]rune(errorMessage(data))), maxMessageLen+1)
	})
}

func FuzzParseCallback(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		p, err := parsePastedCallback(line)
		if err == nil {
			assert.NotEmpty(t, p.State)
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
