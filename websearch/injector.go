// Package websearch adds OpenRouter's openrouter:web_search server tool to
// chat, Responses and (when asked for) Anthropic Messages requests on their
// way upstream.
//
// The patch works on the raw body: one validating scan finds the top-level
// members, and the tool is spliced into "tools" so every other byte goes out
// as the client sent it. Whatever cannot be patched safely goes out
// unchanged, with a reason. Around the patch, an Injector keeps the model
// catalogue (to skip models that take no tools), cooldowns for models whose
// upstream rejected the tool, and counters for /status.
package websearch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// Settings choose whether and how the tool is added. They mirror the
// web_search section of the config.
type Settings struct {
	Enabled bool
	// Engine is auto, native, exa, firecrawl, parallel or perplexity.
	Engine string
	// MaxResults is the number of results per search, 1–25.
	MaxResults int
	// MaxCharacters caps each result's text; 0 leaves the parameter out.
	MaxCharacters int
	// ExcludeModels are globs (* and ? match any characters, / included;
	// [...] a class); a model matching one never gets the tool.
	ExcludeModels []string
	// MaxTotalResults caps the results of all searches in one request,
	// 1–100; 0 leaves the parameter out.
	MaxTotalResults int
	// SearchContextSize is low, medium or high; "" leaves the parameter out.
	SearchContextSize string
	// AllowedDomains and ExcludedDomains restrict where the engine searches
	// (bare host names); an empty list leaves its parameter out. At most one
	// of the two may be set: most engines take only one.
	AllowedDomains, ExcludedDomains []string
	// Messages adds the tool to Anthropic Messages requests (POST /messages)
	// too. Off, their bodies go out untouched.
	Messages bool
}

// validate applies the config's own web_search rules, so that settings the
// config accepts are accepted here and a bad one is named in the same words
// (the key and what is allowed) wherever it came from.
func (s Settings) validate() error {
	c := config.Default()
	c.WebSearch = config.WebSearch{
		Enabled:           s.Enabled,
		Engine:            s.Engine,
		MaxResults:        s.MaxResults,
		MaxCharacters:     s.MaxCharacters,
		ExcludeModels:     s.ExcludeModels,
		MaxTotalResults:   s.MaxTotalResults,
		SearchContextSize: s.SearchContextSize,
		AllowedDomains:    s.AllowedDomains,
		ExcludedDomains:   s.ExcludedDomains,
		Messages:          s.Messages,
	}
	var bad []string
	for _, p := range c.Validate() {
		// The rest of the config is the default, so only web_search
		// problems are ours; the filter keeps it so if a default changes.
		if strings.HasPrefix(p, "web_search") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// toolParams are the tool's parameters in the order they are sent. Unset
// optional ones are left out, so OpenRouter applies its own defaults.
type toolParams struct {
	Engine            string   `json:"engine"`
	MaxResults        int      `json:"max_results"`
	MaxCharacters     int      `json:"max_characters,omitempty"`
	MaxTotalResults   int      `json:"max_total_results,omitempty"`
	SearchContextSize string   `json:"search_context_size,omitempty"`
	AllowedDomains    []string `json:"allowed_domains,omitempty"`
	ExcludedDomains   []string `json:"excluded_domains,omitempty"`
}

// Options tune the Injector's background work. A zero field takes its default.
type Options struct {
	// RefreshEvery is how long a fetched model catalogue is used before it
	// is fetched again. Default 6h.
	RefreshEvery time.Duration
	// FetchTimeout bounds one catalogue fetch, body included. Default 30s.
	FetchTimeout time.Duration
	// RetryMin is the wait after a first failed fetch; it doubles with each
	// further failure up to RetryMax. Defaults 30s and 30m.
	RetryMin, RetryMax time.Duration
	// Cooldown is how long a model goes without the tool after upstream
	// rejected a request because of it. Default 1h.
	Cooldown time.Duration
}

// maxCooldowns bounds the cooldown table: model names come from clients.
const maxCooldowns = 1024

// Injector adds the web search tool to request bodies. Build one with New at
// start-up, run its catalogue refresh with Run, and call Patch per request;
// all methods are safe for concurrent use.
type Injector struct {
	settings Settings
	// exclude are the ExcludeModels globs prepared for excluded.
	exclude []string
	// tool is the JSON of the added tool, the same on every endpoint
	// (OpenRouter's Messages API takes its server tool as chat does), built
	// once with the forms it is spliced in as: a new member, a replacement
	// for null, a next element.
	tool, toolMember, toolList, toolNext []byte
	modelsURL                            string
	client                               *http.Client
	log                                  *zap.Logger
	opts                                 Options
	now                                  func() time.Time

	patched atomic.Uint64
	skipped [numReasons]atomic.Uint64
	resent  atomic.Uint64

	catalog atomic.Pointer[catalog]
	// catMu guards the catalogue's history, which only Status reads.
	catMu       sync.Mutex
	lastRefresh time.Time
	lastError   string
	lastErrorAt time.Time

	cdMu      sync.Mutex
	cooldowns map[string]time.Time
	// nCooldowns lets Patch skip the lock in the usual case of none.
	nCooldowns atomic.Int32
}

// New checks the settings and prepares an Injector. upstream is OpenRouter's
// API base URL; the model catalogue comes from upstream + "/models", and an
// empty upstream means no catalogue (every model is assumed to take tools).
// client fetches the catalogue (nil: a plain client; Options.FetchTimeout
// bounds each fetch either way); logger nil logs nothing.
func New(s Settings, upstream string, client *http.Client, logger *zap.Logger, opts Options) (*Injector, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	s.ExcludeModels = cloneList(s.ExcludeModels)
	s.AllowedDomains = cloneList(s.AllowedDomains)
	s.ExcludedDomains = cloneList(s.ExcludedDomains)

	tool, err := json.Marshal(struct {
		Type       string     `json:"type"`
		Parameters toolParams `json:"parameters"`
	}{"openrouter:web_search", toolParams{
		Engine:            s.Engine,
		MaxResults:        s.MaxResults,
		MaxCharacters:     s.MaxCharacters,
		MaxTotalResults:   s.MaxTotalResults,
		SearchContextSize: s.SearchContextSize,
		AllowedDomains:    s.AllowedDomains,
		ExcludedDomains:   s.ExcludedDomains,
	}})
	if err != nil {
		return nil, err
	}

	var modelsURL string
	if upstream != "" {
		u, err := url.Parse(upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web search: upstream %q is not an http(s) URL", upstream)
		}
		modelsURL = strings.TrimRight(upstream, "/") + "/models"
	}
	if client == nil {
		client = &http.Client{}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	opts.RefreshEvery = orDefault(opts.RefreshEvery, 6*time.Hour)
	opts.FetchTimeout = orDefault(opts.FetchTimeout, 30*time.Second)
	opts.RetryMin = orDefault(opts.RetryMin, 30*time.Second)
	opts.RetryMax = max(orDefault(opts.RetryMax, 30*time.Minute), opts.RetryMin)
	opts.Cooldown = orDefault(opts.Cooldown, time.Hour)

	return &Injector{
		settings:   s,
		exclude:    slashless(s.ExcludeModels),
		tool:       tool,
		toolMember: slices.Concat([]byte(`,"tools":[`), tool, []byte(`]`)),
		toolList:   slices.Concat([]byte(`[`), tool, []byte(`]`)),
		toolNext:   slices.Concat([]byte(`,`), tool),
		modelsURL:  modelsURL,
		client:     client,
		log:        logger.Named("websearch"),
		opts:       opts,
		now:        time.Now,
		cooldowns:  make(map[string]time.Time),
	}, nil
}

// cloneList copies a caller's list, so later changes to it do not reach the
// Injector, and makes nil empty, so Status shows [] rather than null.
func cloneList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return slices.Clone(l)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Status returns the web search part of /status: a snapshot of the
// settings, counters, catalogue and cooldowns.
func (in *Injector) Status() statusdoc.WebSearch {
	s := statusdoc.WebSearch{
		Enabled:           in.settings.Enabled,
		Engine:            in.settings.Engine,
		MaxResults:        in.settings.MaxResults,
		MaxCharacters:     in.settings.MaxCharacters,
		ExcludeModels:     slices.Clone(in.settings.ExcludeModels),
		Patched:           in.patched.Load(),
		Skipped:           make(map[string]uint64, numReasons-1),
		ResentWithoutTool: in.resent.Load(),
		Cooldowns:         in.activeCooldowns(),
	}
	for r := ReasonNone + 1; r < numReasons; r++ {
		s.Skipped[r.String()] = in.skipped[r].Load()
	}
	if c := in.catalog.Load(); c != nil {
		s.Catalog.Models = len(c.tools)
		s.Catalog.WithoutTools = c.withoutTools
	}
	in.catMu.Lock()
	s.Catalog.LastRefresh = in.lastRefresh
	s.Catalog.LastError = in.lastError
	s.Catalog.LastErrorAt = in.lastErrorAt
	in.catMu.Unlock()
	return s
}
