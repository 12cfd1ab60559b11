package websearch

import (
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
)

// toolNames are the ways an error message can name the added tool, in lower
// case. A 400 that only says "tool" or "tools" is not among them: the
// client's own function tools (a bad schema, tool_choice naming a missing
// function) are refused with such messages too, and blaming web search for
// them would send the request twice and leave search off for the model.
var toolNames = []string{
	"web_search",  // also openrouter:web_search
	"web search",  // "Web search is not supported ..."
	"web-search",  // hyphenated spelling
	"websearch",   // one word
	"server tool", // "Server tool request failed"
}

// IsToolRejection reports whether an upstream answer to a patched request
// failed because of the added tool, judging by the status and OpenRouter's
// error.message in the (already read, small) body:
//   - 404 "No endpoints found that support tool use": no provider of the
//     model takes tools, and the added tool is what made the request need
//     one;
//   - 400 naming web search or server tools, e.g. "Server tool request
//     failed" or "tool openrouter:web_search is not supported".
//
// Anything else, including a body that is not JSON, is not.
func IsToolRejection(status int, body []byte) bool {
	if status != http.StatusNotFound && status != http.StatusBadRequest {
		return false
	}
	// gjson reads what it can of broken JSON; an answer that is not JSON is
	// not OpenRouter's error shape.
	if !gjson.ValidBytes(body) {
		return false
	}
	msg := gjson.GetBytes(body, "error.message")
	if msg.Type != gjson.String {
		return false
	}
	m := strings.ToLower(msg.Str)
	if status == http.StatusNotFound {
		return strings.Contains(m, "no endpoints found that support tool use")
	}
	for _, name := range toolNames {
		if strings.Contains(m, name) {
			return true
		}
	}
	return false
}

// ToolRejected is called with upstream's answer to a patched request (model
// from its Decision). When IsToolRejection says the tool caused the failure,
// it puts the model in cooldown, so that its requests go without the tool
// for Options.Cooldown, counts a resend and returns true: the caller then
// sends the original body once more. Otherwise it returns false.
func (in *Injector) ToolRejected(model string, status int, body []byte) bool {
	if !IsToolRejection(status, body) {
		return false
	}
	in.resent.Add(1)
	until := in.now().Add(in.opts.Cooldown)
	in.cdMu.Lock()
	in.pruneCooldowns()
	_, known := in.cooldowns[model]
	full := !known && len(in.cooldowns) >= maxCooldowns
	if !full {
		in.cooldowns[model] = until
		in.nCooldowns.Store(int32(len(in.cooldowns)))
	}
	in.cdMu.Unlock()
	if full {
		in.log.Warn("upstream rejected the web search tool; too many models in cooldown to add this one",
			zap.String("model", model), zap.Int("status", status))
	} else {
		in.log.Warn("upstream rejected the web search tool; resending without it and leaving it out for this model for a while",
			zap.String("model", model), zap.Int("status", status), zap.Time("until", until))
	}
	return true
}

func (in *Injector) inCooldown(model string) bool {
	if in.nCooldowns.Load() == 0 {
		return false
	}
	in.cdMu.Lock()
	defer in.cdMu.Unlock()
	until, ok := in.cooldowns[model]
	if ok && !in.now().Before(until) {
		delete(in.cooldowns, model)
		in.nCooldowns.Store(int32(len(in.cooldowns)))
		return false
	}
	return ok
}

func (in *Injector) activeCooldowns() map[string]time.Time {
	in.cdMu.Lock()
	defer in.cdMu.Unlock()
	in.pruneCooldowns()
	return maps.Clone(in.cooldowns)
}

// pruneCooldowns drops ended cooldowns; cdMu must be held.
func (in *Injector) pruneCooldowns() {
	now := in.now()
	maps.DeleteFunc(in.cooldowns, func(_ string, until time.Time) bool { return !now.Before(until) })
	in.nCooldowns.Store(int32(len(in.cooldowns)))
}
