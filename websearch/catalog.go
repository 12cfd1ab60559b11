package websearch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
)

// maxCatalogBytes bounds the /models answer; today it is a few MB.
const maxCatalogBytes = 64 << 20

// catalog is what the injector keeps of GET /models: per model id, whether
// it takes tools. Nothing else of the (large) answer is retained.
type catalog struct {
	tools        map[string]bool
	withoutTools int
}

// noToolSupport reports whether the catalogue says the model takes no tools.
// Until the catalogue is fetched, and for models it does not list, the
// answer is no: the tool is added and fail-open handles a rejection.
func (in *Injector) noToolSupport(model string) bool {
	c := in.catalog.Load()
	if c == nil {
		return false
	}
	if tools, ok := c.tools[model]; ok {
		return !tools
	}
	// Variants such as :nitro or :floor are not listed; they route to the
	// base model's endpoints.
	if i := strings.LastIndexByte(model, ':'); i > 0 {
		if tools, ok := c.tools[model[:i]]; ok {
			return !tools
		}
	}
	return false
}

// Run keeps the model catalogue fresh until ctx is cancelled: a fetch at
// once, then one every Options.RefreshEvery, and after a failure a retry that
// backs off from RetryMin to RetryMax. It returns when ctx is done, or at once
// when there is nothing to fetch (web search disabled or no upstream). Call
// it once.
func (in *Injector) Run(ctx context.Context) {
	if !in.settings.Enabled || in.modelsURL == "" {
		return
	}
	retry := in.opts.RetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		c, err := in.fetch(ctx)
		if ctx.Err() != nil {
			return // shutting down; not an upstream failure
		}
		in.store(c, err)
		wait := in.opts.RefreshEvery
		if err != nil {
			wait = retry
			retry = min(retry*2, in.opts.RetryMax)
			in.log.Warn("model catalogue fetch failed; using the last one fetched, or assuming every model takes tools",
				zap.String("url", in.modelsURL), zap.Error(err), zap.Duration("retry_in", wait))
		} else {
			retry = in.opts.RetryMin
		}
		timer.Reset(wait)
	}
}

func (in *Injector) store(c *catalog, err error) {
	now := in.now()
	in.catMu.Lock()
	defer in.catMu.Unlock()
	if err != nil {
		in.lastError = err.Error()
		in.lastErrorAt = now
		return
	}
	in.catalog.Store(c)
	in.lastRefresh = now
	in.log.Info("model catalogue loaded", zap.Int("models", len(c.tools)), zap.Int("without_tools", c.withoutTools))
}

func (in *Injector) fetch(ctx context.Context) (*catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, in.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.modelsURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCatalogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the model list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("model list: HTTP %d", resp.StatusCode)
	}
	if len(body) > maxCatalogBytes {
		return nil, fmt.Errorf("model list is larger than %d MiB", maxCatalogBytes>>20)
	}
	return parseCatalog(body)
}

func parseCatalog(body []byte) (*catalog, error) {
	if !gjson.ValidBytes(body) {
		return nil, errors.New("model list is not valid JSON")
	}
	data := gjson.GetBytes(body, "data")
	if !data.IsArray() {
		return nil, errors.New(`model list has no "data" array`)
	}
	c := &catalog{tools: make(map[string]bool)}
	data.ForEach(func(_, m gjson.Result) bool {
		id := m.Get("id")
		if id.Type != gjson.String || id.Str == "" {
			return true
		}
		tools := true
		// Without the list there is nothing to go on, so assume tools.
		if params := m.Get("supported_parameters"); params.IsArray() {
			tools = false
			params.ForEach(func(_, p gjson.Result) bool {
				tools = p.Type == gjson.String && p.Str == "tools"
				return !tools
			})
		}
		// Clone: id.Str points into the whole answer, which must not be kept.
		c.tools[strings.Clone(id.Str)] = tools
		return true
	})
	for _, tools := range c.tools {
		if !tools {
			c.withoutTools++
		}
	}
	return c, nil
}
