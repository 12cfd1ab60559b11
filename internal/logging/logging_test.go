package logging

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/secret"
)

const (
	key     = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef01234567a1b2"
	refresh = "brt_opaque_refresh_token_value_9z8y"
)

func TestEncoderScrubsEveryFieldKind(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			sc := &Scrubber{}
			sc.Set(secret.New(refresh), secret.New(key))
			log, err := New(Options{Level: "debug", Format: format, Output: &out, Scrubber: sc})
			require.NoError(t, err)
			h := http.Header{"Authorization": {"Bearer " + key}}
			log.Info("message with "+key,
				zap.String("s", key),
				zap.Error(errors.New("upstream said: token "+refresh+" is bad")),
				zap.Any("headers", h),
				zap.Strings("list", []string{"x", key}),
				zap.Stringer("typed", secret.New(key)),
			)
			log.With(zap.String("ctx", "Bearer "+refresh)).Warn("with context")
			log.Sugar().Infof("sugar %s %v", key, map[string]string{"k": refresh})
			require.NoError(t, log.Sync())
			text := out.String()
			assert.NotContains(t, text, key)
			assert.NotContains(t, text, refresh)
			assert.NotContains(t, text, key[9:40], "no long part of the key either")
			assert.Contains(t, text, "sk-or-v1-…a1b2")
			assert.Contains(t, text, "…9z8y")
		})
	}
}

func TestScrubWithoutScrubberCatchesKeysAndBearers(t *testing.T) {
	got := Scrub(fmt.Sprintf("key=%s auth=Bearer abcdefghijklmnop", key), nil)
	assert.Equal(t, "key=sk-or-v1-…a1b2 auth=Bearer …mnop", got)
	assert.Equal(t, "nothing here", Scrub("nothing here", nil))
}

func TestBadOptions(t *testing.T) {
	_, err := New(Options{Level: "loud", Format: "json"})
	assert.Error(t, err)
	_, err = New(Options{Level: "info", Format: "xml"})
	assert.Error(t, err)
}

func TestLevelFilters(t *testing.T) {
	var out bytes.Buffer
	log, err := New(Options{Level: "warn", Format: "json", Output: &out})
	require.NoError(t, err)
	log.Info("hidden")
	log.Warn("shown")
	assert.NotContains(t, out.String(), "hidden")
	assert.Contains(t, out.String(), "shown")
}
