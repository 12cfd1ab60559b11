package opencode

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modelsJSON is an OpenRouter-shaped /models answer: tool and non-tool
// models, a null max_completion_tokens, a missing context_length.
const modelsJSON = `{"data":[
 {"id":"anthropic/claude-sonnet-4.6","name":"Anthropic: Claude Sonnet 4.6","context_length":1000000,
  "top_provider":{"context_length":1000000,"max_completion_tokens":64000,"is_moderated":false},
  "supported_parameters":["max_tokens","temperature","tools","tool_choice"],"pricing":{"prompt":"0.000003"}},
 {"id":"openai/gpt-5.4-mini","name":"OpenAI: GPT-5.4 Mini & more","context_length":400000,
  "top_provider":{"max_completion_tokens":null},"supported_parameters":["tools"]},
 {"id":"some/image-model","name":"Images","context_length":8000,"supported_parameters":["temperature"]},
 {"id":"mystery/model","supported_parameters":["tools"]}
]}`

func fakeDaemon(t *testing.T, status int, body string, gotAuth *string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/models" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if gotAuth != nil {
			*gotAuth = r.Header.Get("Authorization")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestFragmentFromDaemon(t *testing.T) {
	addr := fakeDaemon(t, http.StatusOK, modelsJSON, nil)
	res, err := Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.True(t, res.FromDaemon)
	assert.NoError(t, res.FetchError)
	assert.Empty(t, res.Note())

	var doc map[string]any
	require.NoError(t, json.Unmarshal(res.JSON(), &doc), "%s", res.JSON())
	assert.Equal(t, SchemaURL, doc["$schema"])
	p := doc["provider"].(map[string]any)["orproxy"].(map[string]any)
	assert.Equal(t, "@ai-sdk/openai-compatible", p["npm"])
	assert.Equal(t, "orproxy", p["name"])
	assert.Equal(t, map[string]any{"baseURL": "http://" + addr + "/api/v1", "apiKey": "orproxy"}, p["options"])
	assert.Equal(t, map[string]any{
		"anthropic/claude-sonnet-4.6": map[string]any{"name": "Anthropic: Claude Sonnet 4.6", "tool_call": true,
			"limit": map[string]any{"context": 1e6, "output": 64000.0}},
		"openai/gpt-5.4-mini": map[string]any{"name": "OpenAI: GPT-5.4 Mini & more", "tool_call": true,
			"limit": map[string]any{"context": 400000.0, "output": 0.0}},
		"mystery/model": map[string]any{"name": "mystery/model", "tool_call": true},
	}, p["models"], "tool-capable models only, limits when known")
	assert.Contains(t, string(res.JSON()), "Mini & more", "no HTML escaping")
	assert.True(t, strings.HasSuffix(string(res.JSON()), "}\n"))
}

func TestFragmentFallsBackWhenTheDaemonIsDown(t *testing.T) {
	res, err := Fragment(context.Background(), Options{Listen: freeAddr(t)})
	require.NoError(t, err)
	assert.False(t, res.FromDaemon)
	assert.Error(t, res.FetchError)
	assert.Equal(t, builtinModels(), res.Provider.Models)
	assert.NotEmpty(t, res.Provider.Models)
	for id, m := range res.Provider.Models {
		assert.True(t, m.ToolCall, id)
		assert.Contains(t, id, "/")
	}
	assert.Contains(t, res.Note(), "not reachable")
	assert.Contains(t, res.Note(), "built-in list")
	assert.True(t, json.Valid(res.JSON()))
}

func TestFragmentFallsBackOnAnErrorAnswer(t *testing.T) {
	addr := fakeDaemon(t, http.StatusUnauthorized, `{"error":{"message":"no credential: run orproxy login"}}`, nil)
	res, err := Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.False(t, res.FromDaemon)
	assert.Contains(t, res.Note(), "401")
	assert.Contains(t, res.Note(), "run orproxy login")

	addr = fakeDaemon(t, http.StatusOK, `{"data":[{"id":"x/y","supported_parameters":["temperature"]}]}`, nil)
	res, err = Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.False(t, res.FromDaemon)
	assert.Contains(t, res.Note(), "no models with tool support")

	addr = fakeDaemon(t, http.StatusOK, `<html>`, nil)
	res, err = Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.False(t, res.FromDaemon)
}

func TestAPIKeyIsThePlaceholderOrTheAccessToken(t *testing.T) {
	var auth string
	addr := fakeDaemon(t, http.StatusOK, modelsJSON, &auth)

	res, err := Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.Equal(t, PlaceholderAPIKey, res.Provider.Options.APIKey)
	assert.False(t, res.TokenIncluded)
	assert.Empty(t, auth)

	res, err = Fragment(context.Background(), Options{Listen: addr, AccessToken: "local-token-123"})
	require.NoError(t, err)
	assert.Equal(t, "local-token-123", res.Provider.Options.APIKey)
	assert.True(t, res.TokenIncluded)
	assert.Equal(t, "Bearer local-token-123", auth, "the proxy guards its port with the token")

	_, err = Fragment(context.Background(), Options{Listen: addr, AccessToken: "sk-or-v1-0123456789abcdef"})
	assert.ErrorContains(t, err, "OpenRouter API key")
}

func TestModelListIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"v/m%04d","name":"M%d","supported_parameters":["tools"]}`, i, i)
	}
	b.WriteString(`]}`)
	addr := fakeDaemon(t, http.StatusOK, b.String(), nil)
	res, err := Fragment(context.Background(), Options{Listen: addr})
	require.NoError(t, err)
	assert.Len(t, res.Provider.Models, MaxModels)
	assert.Contains(t, res.Provider.Models, "v/m0000", "OpenRouter's order (newest first) decides what is kept")
	assert.NotContains(t, res.Provider.Models, fmt.Sprintf("v/m%04d", MaxModels))
}

func TestBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		"0.0.0.0:9000": "http://127.0.0.1:9000/api/v1",
		"[::]:9002":    "http://[::1]:9002/api/v1",
	} {
		got, err := baseURL(listen)
		require.NoError(t, err, listen)
		assert.Equal(t, want, got, listen)
	}
	_, err := baseURL("8765")
	assert.Error(t, err)

	res, err := Fragment(context.Background(), Options{Listen: "", HTTPClient: &http.Client{Transport: failing{}}})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8765/api/v1", res.Provider.Options.BaseURL, "empty listen is the default")
}

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("connection refused")
}

func TestSnippetCutsOnACharacterBoundary(t *testing.T) {
	got := snippet([]byte(strings.Repeat("é", 150)))
	assert.True(t, utf8.ValidString(got), got)
	assert.True(t, strings.HasSuffix(got, "…"))
	assert.LessOrEqual(t, len(got), 200+len("…"))
}
