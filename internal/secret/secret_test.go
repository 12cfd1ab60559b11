package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"empty", "", "(none)"},
		{"openrouter key", "sk-or-v1-0123456789abcdef0123456789abcdefa1b2", "sk-or-v1-…a1b2"},
		{"opaque token", "rt_9f8e7d6c5b4a39281706f5e4", "…f5e4"},
		{"short value", "abc", "…"},
		{"prefix only", "sk-or-v1-", "sk-or-v1-…"},
		{"short after prefix", "sk-or-v1-1234", "sk-or-v1-…"},
		{"fifteen chars", "123456789012345", "…"},
		{"multibyte tail", "ééééééééééééééééé€€€€", "…€€€€"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Redact(tt.raw))
		})
	}
}

const raw = "sk-or-v1-supersecretvalue0123456789abcdefa1b2"

func TestSecretNeverPrintsWhole(t *testing.T) {
	s := New(raw)
	type holder struct {
		Key  Secret
		Name string
	}
	h := holder{Key: s, Name: "n"}
	outputs := map[string]string{
		"%s":   fmt.Sprintf("%s", s),
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", h),
		"%#v":  fmt.Sprintf("%#v", h),
		"%q":   fmt.Sprintf("%q", s),
		"%x":   fmt.Sprintf("%x", s),
		"%d":   fmt.Sprintf("%d", s),
		"ptr":  fmt.Sprintf("%v", &h),
		"err":  fmt.Errorf("wrap: %v", s).Error(),
		"join": "k=" + s.String(),
	}
	js, err := json.Marshal(h)
	require.NoError(t, err)
	outputs["json"] = string(js)
	text, err := s.MarshalText()
	require.NoError(t, err)
	outputs["text"] = string(text)

	for name, out := range outputs {
		assert.NotContains(t, out, "supersecret", name)
		assert.Contains(t, out, "a1b2", name)
	}
	assert.Equal(t, raw, s.Reveal())
}

func TestField(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("key loaded", Field("key", New(raw)))
	entries := logs.All()
	require.Len(t, entries, 1)
	got := entries[0].ContextMap()["key"]
	assert.Equal(t, "sk-or-v1-…a1b2", got)
	assert.False(t, strings.Contains(fmt.Sprint(entries[0].ContextMap()), "supersecret"))
}

func TestZeroAndEqual(t *testing.T) {
	assert.True(t, Secret{}.IsZero())
	assert.False(t, New("x").IsZero())
	assert.Equal(t, New("a"), New("a"))
	assert.NotEqual(t, New("a"), New("b"))
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://broker.example/x":            "https://broker.example/x",
		"https://u:hunter2@broker.example/x":  "https://u:xxxxx@broker.example/x",
		"https://TOKEN123@broker.example":     "https://xxxxx@broker.example",
		"//u:hunter2@broker.example":          "//u:xxxxx@broker.example",
		"https://u:hunter2%zz@broker.example": "…@broker.example",
		"info":                                "info",
	} {
		assert.Equal(t, want, RedactURL(in), in)
	}
}
