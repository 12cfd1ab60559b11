package auth

import (
	"encoding/json"
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
