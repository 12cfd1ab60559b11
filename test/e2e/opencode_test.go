package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/orproxy/orproxy/internal/fake/openrouter"
)

// opencodeBinary finds the CLI the opencode-ai package installed. npm 11
// skips its postinstall link, so the platform package's binary is the usual hit.
func opencodeBinary(t *testing.T) string {
	t.Helper()
	requireNode(t)
	candidates := []string{filepath.Join(nodeModules, "opencode-ai", "bin", "opencode.exe")}
	matches, _ := filepath.Glob(filepath.Join(nodeModules, "opencode-*", "bin", "opencode"))
	candidates = append(candidates, matches...)
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return c
		}
	}
	t.Fatalf("no OpenCode binary under %s; run `npm install` in test/e2e", nodeModules)
	return ""
}

// opencodeConfig is a config as a user would write it by hand.
func (s *stack) opencodeConfig() string {
	return `{
  "$schema": "https://opencode.ai/config.json",
  "autoupdate": false,
  "share": "disabled",
  "provider": {
    "orproxy": {
      "npm": "@ai-sdk/openai-compatible",
      "name": "orproxy",
      "options": { "baseURL": "` + s.proxyURL + `/api/v1", "apiKey": "dummy" },
      "models": { "openai/gpt-4o-mini": { "name": "GPT-4o mini via orproxy", "tool_call": true,
                  "limit": { "context": 128000, "output": 4096 } } }
    }
  },
  "model": "orproxy/openai/gpt-4o-mini",
  "small_model": "orproxy/openai/gpt-4o-mini"
}`
}

// opencodeRun runs `opencode run` offline and isolated from the user's own
// OpenCode state, with exactly the given config file.
func (s *stack) opencodeRun(configFile string) (string, string, error) {
	s.t.Helper()
	bin := opencodeBinary(s.t)
	project := filepath.Join(s.home, "project")
	require.NoError(s.t, os.MkdirAll(project, 0o700))
	env := append(s.env,
		"OPENCODE_CONFIG="+configFile,
		"OPENCODE_DISABLE_PROJECT_CONFIG=1",
		"OPENCODE_DISABLE_MODELS_FETCH=1",
		"OPENCODE_DISABLE_AUTOUPDATE=1",
		"OPENCODE_DISABLE_SHARE=1",
		"OPENCODE_DISABLE_LSP_DOWNLOAD=1",
		"OPENCODE_DISABLE_DEFAULT_PLUGINS=1",
		"OPENCODE_DISABLE_CLAUDE_CODE=1",
	)
	return run(s.t, env, project, bin, "run", "Say hi", "--model", "orproxy/openai/gpt-4o-mini")
}

func TestOpenCode(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	cfg := filepath.Join(s.home, "opencode.json")
	require.NoError(t, os.WriteFile(cfg, []byte(s.opencodeConfig()), 0o600))

	out, errOut, err := s.opencodeRun(cfg)
	require.NoError(t, err, "opencode run: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	reqs := s.assertChatsCarriedStoredKey(0)
	assert.True(t, gjson.GetBytes(reqs[0].Body, "stream").Bool(), "OpenCode streams its chats, so this went through the SSE path")

	// Revoked between two runs: the second run still succeeds, with one rotation.
	before := s.storedKey()
	_, err = s.broker.RevokeCurrentKey(s.ctx())
	require.NoError(t, err)
	from := len(s.chatRequests())
	out, errOut, err = s.opencodeRun(cfg)
	require.NoError(t, err, "opencode run after revocation: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	s.assertRecovered(from, before)
}

// TestOpenCodeWithGeneratedConfig runs OpenCode with the provider that
// `orproxy opencode --write` merged into an existing config.
func TestOpenCodeWithGeneratedConfig(t *testing.T) {
	s := newStack(t)
	s.login()
	s.startProxy()
	cfg := filepath.Join(s.home, "opencode.jsonc")
	existing := `{
  // the user's own settings stay
  "$schema": "https://opencode.ai/config.json",
  "autoupdate": false,
  "share": "disabled",
  "model": "orproxy/openai/gpt-4o-mini",
  "small_model": "orproxy/openai/gpt-4o-mini",
  "agent": { "build": { "temperature": 0.2 } },
}
`
	require.NoError(t, os.WriteFile(cfg, []byte(existing), 0o600))
	out, errOut, err := s.orproxy("", "opencode", "--write", cfg)
	require.NoError(t, err, "%s %s", out, errOut)
	merged, err := os.ReadFile(cfg)
	require.NoError(t, err)
	assert.Contains(t, string(merged), "// the user's own settings stay")
	assert.Contains(t, string(merged), `"temperature": 0.2`)
	assert.Contains(t, string(merged), s.proxyURL+"/api/v1")
	assert.Contains(t, string(merged), `"openai/gpt-4o-mini"`, "models come from the daemon's /models")
	baks, err := filepath.Glob(cfg + ".bak-*")
	require.NoError(t, err)
	assert.Len(t, baks, 1, "the old file is kept in a timestamped backup")

	out, errOut, err = s.opencodeRun(cfg)
	require.NoError(t, err, "opencode run: %s\n%s", out, errOut)
	assert.Contains(t, out, openrouter.DefaultReply)
	s.assertChatsCarriedStoredKey(0)
}
