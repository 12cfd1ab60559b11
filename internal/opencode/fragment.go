// Package opencode writes the OpenCode configuration that points OpenCode at
// orproxy: a provider "orproxy" using OpenCode's built-in OpenAI-compatible
// SDK, with the proxy's base URL, a placeholder key (or the proxy's access
// token) and the models OpenRouter offers with tool support.
package opencode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/netaddr"
)

const (
	// ProviderID is the key under "provider"; models are "orproxy/<id>".
	ProviderID = "orproxy"
	// SchemaURL is OpenCode's config schema.
	SchemaURL = "https://opencode.ai/config.json"
	// PlaceholderAPIKey is the apiKey when the proxy has no access token:
	// the SDK wants some key, and the proxy replaces whatever it gets.
	PlaceholderAPIKey = "orproxy"
	// MaxModels bounds the model list. OpenRouter lists 300+ models; only
	// those that support tool calls are kept (OpenCode is an agent and calls
	// tools on every turn), which is about 200 today.
	MaxModels = 400

	maxModelsBody = 32 << 20
)

// Options are the inputs of Fragment.
type Options struct {
	// Listen is the proxy's listen address; empty means the default.
	Listen string
	// AccessToken is the proxy's configured access_token. When set it becomes
	// the provider's apiKey (the proxy requires it); otherwise the apiKey is
	// PlaceholderAPIKey. It is never an OpenRouter key.
	AccessToken string
	// HTTPClient fetches the model list from the proxy; nil means a client
	// with a 5-second timeout.
	HTTPClient *http.Client
}

// Provider is OpenCode's provider entry.
type Provider struct {
	NPM     string           `json:"npm"`
	Name    string           `json:"name"`
	Options ProviderOptions  `json:"options"`
	Models  map[string]Model `json:"models"`
}

// ProviderOptions are the provider's SDK options.
type ProviderOptions struct {
	BaseURL string `json:"baseURL"`
	APIKey  string `json:"apiKey"`
}

// Model is OpenCode's per-model entry.
type Model struct {
	Name     string `json:"name"`
	ToolCall bool   `json:"tool_call"`
	Limit    *Limit `json:"limit,omitempty"`
}

// Limit is a model's token limits. OpenCode requires both numbers when limit
// is present and treats 0 as unknown, which is what an unknown output limit
// is written as.
type Limit struct {
	Context int `json:"context"`
	Output  int `json:"output"`
}

// Result is a generated provider entry and where its models came from.
type Result struct {
	Provider Provider
	// FromDaemon says the models came from the running proxy's
	// GET /api/v1/models; otherwise they are a built-in list.
	FromDaemon bool
	// FetchError says why the proxy's list was not used.
	FetchError error
	// TokenIncluded says apiKey is the proxy's access token, so the
	// fragment is not for sharing.
	TokenIncluded bool
}

// Note is the line to show the user about the model list, or "" when the
// list came from the proxy.
func (r *Result) Note() string {
	if r.FromDaemon {
		return ""
	}
	return fmt.Sprintf("the orproxy daemon is not reachable (%v): using a built-in list of %d models; start it (`orproxy serve` or `orproxy service start`) and run this again for the full list",
		r.FetchError, len(r.Provider.Models))
}

// JSON is the complete fragment, a config file of its own:
// {"$schema": …, "provider": {"orproxy": …}}, indented, ending in a newline.
func (r *Result) JSON() []byte {
	doc := struct {
		Schema   string              `json:"$schema"`
		Provider map[string]Provider `json:"provider"`
	}{SchemaURL, map[string]Provider{ProviderID: r.Provider}}
	out, err := marshal(doc, "", "  ")
	if err != nil {
		// Cannot happen: the document holds only strings, ints and bools.
		panic(err)
	}
	return []byte(out + "\n")
}

// Fragment builds the provider entry. The models come from the proxy's
// GET /api/v1/models when it answers, else from a built-in list.
func Fragment(ctx context.Context, opts Options) (*Result, error) {
	if strings.HasPrefix(opts.AccessToken, "sk-or-") {
		return nil, errors.New("access_token looks like an OpenRouter API key; it would be written into the OpenCode config, so choose a different access_token")
	}
	listen := opts.Listen
	if listen == "" {
		listen = config.Default().Listen
	}
	base, err := baseURL(listen)
	if err != nil {
		return nil, err
	}
	res := &Result{Provider: Provider{
		NPM:     "@ai-sdk/openai-compatible",
		Name:    "orproxy",
		Options: ProviderOptions{BaseURL: base, APIKey: PlaceholderAPIKey},
	}}
	if opts.AccessToken != "" {
		res.Provider.Options.APIKey = opts.AccessToken
		res.TokenIncluded = true
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	models, err := fetchModels(ctx, client, base+"/models", opts.AccessToken)
	if err == nil && len(models) == 0 {
		err = errors.New("it listed no models with tool support")
	}
	if err != nil {
		res.FetchError = err
		models = builtinModels()
	} else {
		res.FromDaemon = true
	}
	res.Provider.Models = models
	return res, nil
}

// baseURL is the proxy's OpenAI-compatible base URL.
func baseURL(listen string) (string, error) {
	addr, err := netaddr.DialAddress(listen)
	if err != nil {
		return "", err
	}
	return "http://" + addr + "/api/v1", nil
}

// openRouterModel is the part of OpenRouter's model object used here.
type openRouterModel struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	ContextLength *int   `json:"context_length"`
	TopProvider   struct {
		ContextLength       *int `json:"context_length"`
		MaxCompletionTokens *int `json:"max_completion_tokens"`
	} `json:"top_provider"`
	SupportedParameters []string `json:"supported_parameters"`
}

func fetchModels(ctx context.Context, client *http.Client, url, token string) (map[string]Model, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxModelsBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %s: %s", url, resp.Status, snippet(body))
	}
	if len(body) > maxModelsBody {
		return nil, fmt.Errorf("GET %s answered more than %d MiB", url, maxModelsBody>>20)
	}
	var list struct {
		Data []openRouterModel `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s did not answer a model list: %w", url, err)
	}
	return selectModels(list.Data), nil
}

// selectModels keeps the models with tool support, at most MaxModels of
// them in the order OpenRouter lists them (newest first).
func selectModels(all []openRouterModel) map[string]Model {
	out := map[string]Model{}
	for _, m := range all {
		if len(out) == MaxModels {
			break
		}
		if m.ID == "" || !slices.Contains(m.SupportedParameters, "tools") {
			continue
		}
		name := m.Name
		if name == "" {
			name = m.ID
		}
		model := Model{Name: name, ToolCall: true}
		ctxLen := deref(m.ContextLength)
		if ctxLen == 0 {
			ctxLen = deref(m.TopProvider.ContextLength)
		}
		if maxOut := deref(m.TopProvider.MaxCompletionTokens); ctxLen > 0 || maxOut > 0 {
			model.Limit = &Limit{Context: ctxLen, Output: maxOut}
		}
		out[m.ID] = model
	}
	return out
}

func deref(p *int) int {
	if p == nil || *p < 0 {
		return 0
	}
	return *p
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(b, nil))), " ")
	if len(s) > 200 {
		// Cut on a character boundary, so the snippet stays valid UTF-8.
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// builtinModels is the list used when the proxy does not answer: popular
// OpenRouter models with tool support as of late 2026. Limits are left out
// rather than guessed; OpenCode then uses its defaults.
func builtinModels() map[string]Model {
	out := map[string]Model{}
	for _, m := range []struct{ id, name string }{
		{"anthropic/claude-sonnet-4.6", "Anthropic: Claude Sonnet 4.6"},
		{"anthropic/claude-opus-4.6", "Anthropic: Claude Opus 4.6"},
		{"openai/gpt-5.4", "OpenAI: GPT-5.4"},
		{"openai/gpt-5.4-mini", "OpenAI: GPT-5.4 Mini"},
		{"google/gemini-3.1-pro-preview", "Google: Gemini 3.1 Pro Preview"},
		{"google/gemini-3-flash-preview", "Google: Gemini 3 Flash Preview"},
		{"x-ai/grok-4.20", "xAI: Grok 4.20"},
		{"qwen/qwen3.5-plus", "Qwen: Qwen3.5 Plus"},
		{"moonshotai/kimi-k2", "MoonshotAI: Kimi K2"},
	} {
		out[m.id] = Model{Name: m.name, ToolCall: true}
	}
	return out
}

// marshal is json.MarshalIndent without HTML escaping, so a model name with
// "&" stays readable.
func marshal(v any, prefix, indent string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if prefix != "" || indent != "" {
		enc.SetIndent(prefix, indent)
	}
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
