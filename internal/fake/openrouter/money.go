package openrouter

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/orproxy/orproxy/internal/fake/admin"
)

// KeyLimit is a key's credit limit, as OpenRouter's key settings set it.
type KeyLimit struct {
	// Limit is the cap in USD; nil means unlimited.
	Limit *float64 `json:"limit"`
	// Reset is the period whose spending counts against Limit: "daily",
	// "weekly" or "monthly" (UTC; weeks start on Monday), or "" for all
	// time.
	Reset string `json:"limit_reset,omitempty"`
	// IsFreeTier is what /key says in is_free_tier: the account never
	// bought credits.
	IsFreeTier bool `json:"is_free_tier,omitempty"`
}

// SetKeyLimit sets the credit limit of a key, named by key or hash. Once the
// key's spending in the period reaches the limit, OpenRouter refuses it: 402
// with error.metadata.limit_source "openrouter_key_limit" (403 "Key limit
// exceeded" under Fault.KeyLimitForbidden). Before that, a request whose
// prompt and max_tokens (the model's max_completion_tokens when it sends
// none) the rest cannot pay for gets OpenRouter's 402 "This request requires
// more credits, or fewer max_tokens".
func (s *Server) SetKeyLimit(keyOrHash string, l KeyLimit) (KeyInfo, error) {
	switch l.Reset {
	case "", "daily", "weekly", "monthly":
	default:
		return KeyInfo{}, fmt.Errorf("limit_reset %q: use daily, weekly, monthly or nothing", l.Reset)
	}
	if l.Limit != nil && (*l.Limit < 0 || math.IsNaN(*l.Limit) || math.IsInf(*l.Limit, 0)) {
		return KeyInfo{}, fmt.Errorf("limit %v: use a number of dollars, 0 or more, or null for none", *l.Limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.findLocked(keyOrHash)
	if info == nil {
		return KeyInfo{}, fmt.Errorf("no such key %s", maskKey(keyOrHash))
	}
	info.Limit, info.LimitReset, info.IsFreeTier = nil, l.Reset, l.IsFreeTier
	if l.Limit != nil {
		v := *l.Limit
		info.Limit = &v
	}
	return *info, nil
}

// Spend charges usd to a key (named by key or hash) now, as if it had made
// requests that cost that much: a test's way to a key near or over its
// limit.
func (s *Server) Spend(keyOrHash string, usd float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.findLocked(keyOrHash)
	if info == nil {
		return fmt.Errorf("no such key %s", maskKey(keyOrHash))
	}
	s.chargeLocked(info.Key, toPico(usd))
	return nil
}

// KeyStatus is the data of GET /key for a key, named by key or hash.
func (s *Server) KeyStatus(keyOrHash string) (KeyStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.findLocked(keyOrHash)
	if info == nil {
		return KeyStatus{}, false
	}
	return s.statusLocked(info), true
}

func (s *Server) findLocked(keyOrHash string) *KeyInfo {
	if info, ok := s.keys[keyOrHash]; ok {
		return info
	}
	for _, info := range s.keys {
		if info.Hash == keyOrHash {
			return info
		}
	}
	return nil
}

// spending is what a key was charged: in all, and per UTC day, from which
// the days, weeks and months of /key are summed.
type spending struct {
	total picoUSD
	days  map[int64]picoUSD
}

func (s *Server) chargeLocked(key string, amount picoUSD) {
	sp := s.spent[key]
	if sp == nil {
		sp = &spending{days: map[int64]picoUSD{}}
		s.spent[key] = sp
	}
	sp.total += amount
	sp.days[dayNumber(s.now())] += amount
	if info := s.keys[key]; info != nil {
		info.Usage = sp.total.usd()
	}
}

func dayNumber(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 86400)) }

// usageLocked is what key spent in all, today, this week and this month.
func (s *Server) usageLocked(key string) (total, day, week, month picoUSD) {
	sp := s.spent[key]
	if sp == nil {
		return 0, 0, 0, 0
	}
	now := s.now().UTC()
	today := dayNumber(now)
	monday := today - int64((now.Weekday()+6)%7)
	first := today - int64(now.Day()-1)
	for d, v := range sp.days {
		if d == today {
			day += v
		}
		if d >= monday && d <= today {
			week += v
		}
		if d >= first && d <= today {
			month += v
		}
	}
	return sp.total, day, week, month
}

// remainingLocked is what is left of the key's limit in its period; ok is
// false for a key without a limit.
func (s *Server) remainingLocked(info *KeyInfo) (left picoUSD, ok bool) {
	if info.Limit == nil {
		return 0, false
	}
	total, day, week, month := s.usageLocked(info.Key)
	used := map[string]picoUSD{"": total, "daily": day, "weekly": week, "monthly": month}[info.LimitReset]
	return toPico(*info.Limit) - used, true
}

// KeyStatus is GET /key's data. Amounts are USD; Limit and LimitRemaining
// are null for a key without a limit, and LimitRemaining goes below zero
// when the last request cost more than was left (a request is charged in
// full after it was let in).
type KeyStatus struct {
	Label                  string         `json:"label"`
	Limit                  *float64       `json:"limit"`
	LimitRemaining         *float64       `json:"limit_remaining"`
	LimitReset             *string        `json:"limit_reset"`
	IncludeBYOKInLimit     bool           `json:"include_byok_in_limit"`
	Usage                  float64        `json:"usage"`
	UsageDaily             float64        `json:"usage_daily"`
	UsageWeekly            float64        `json:"usage_weekly"`
	UsageMonthly           float64        `json:"usage_monthly"`
	BYOKUsage              float64        `json:"byok_usage"`
	BYOKUsageDaily         float64        `json:"byok_usage_daily"`
	BYOKUsageWeekly        float64        `json:"byok_usage_weekly"`
	BYOKUsageMonthly       float64        `json:"byok_usage_monthly"`
	IsFreeTier             bool           `json:"is_free_tier"`
	IsManagementKey        bool           `json:"is_management_key"`
	IsProvisioningKey      bool           `json:"is_provisioning_key"`
	CreatorUserID          string         `json:"creator_user_id"`
	ExpiresAt              *string        `json:"expires_at"`
	FreeModelDailyRequests map[string]int `json:"free_model_daily_requests"`
	RateLimit              map[string]any `json:"rate_limit"`
}

func (s *Server) statusLocked(info *KeyInfo) KeyStatus {
	total, day, week, month := s.usageLocked(info.Key)
	st := KeyStatus{
		Label: info.Label, Usage: total.usd(), UsageDaily: day.usd(), UsageWeekly: week.usd(), UsageMonthly: month.usd(),
		IsFreeTier: info.IsFreeTier, CreatorUserID: "user_fake",
		FreeModelDailyRequests: map[string]int{"used": 0, "limit": 1000, "remaining": 1000},
		RateLimit:              map[string]any{"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
	}
	if info.IsFreeTier {
		st.FreeModelDailyRequests = map[string]int{"used": 0, "limit": 50, "remaining": 50}
	}
	if left, ok := s.remainingLocked(info); ok {
		limit, rest := *info.Limit, left.usd()
		st.Limit, st.LimitRemaining = &limit, &rest
	}
	if info.LimitReset != "" {
		reset := info.LimitReset
		st.LimitReset = &reset
	}
	if info.ExpiresAt != nil {
		exp := info.ExpiresAt.UTC().Format(time.RFC3339)
		st.ExpiresAt = &exp
	}
	return st
}

func (s *Server) key(w http.ResponseWriter, r *http.Request) {
	rec := s.record(r, nil)
	info, msg := s.authenticate(r, false)
	if msg != "" {
		s.setStatus(rec, http.StatusUnauthorized)
		WriteError(w, http.StatusUnauthorized, msg)
		return
	}
	s.setStatus(rec, http.StatusOK)
	st, _ := s.KeyStatus(info.Key)
	admin.WriteJSON(w, http.StatusOK, map[string]any{"data": st})
}

// refusal is an answer OpenRouter gives before it routes a request: a
// money error here.
type refusal struct {
	status     int
	message    string
	metadata   map[string]any
	retryAfter int
	// bare leaves user_id out, as the observed 403 "Key limit exceeded" does.
	bare bool
}

const keysPage = "https://openrouter.ai/settings/keys"

// period names a limit's period as OpenRouter's messages do.
func period(reset string) string {
	if reset == "" {
		return "total"
	}
	return reset
}

// limitRefusal is the refusal of a key whose limit is used up, or nil.
func (s *Server) limitRefusal(key string, f Fault) *refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.keys[key]
	if info == nil {
		return nil
	}
	left, ok := s.remainingLocked(info)
	if !ok || left > 0 {
		return nil
	}
	msg := fmt.Sprintf("Key limit exceeded (%s limit). Manage it using %s", period(info.LimitReset), keysPage)
	if f.KeyLimitForbidden {
		return &refusal{status: http.StatusForbidden, message: msg, bare: true}
	}
	return &refusal{status: http.StatusPaymentRequired, message: msg, metadata: map[string]any{
		"limit_source": "openrouter_key_limit",
		"remedy_hint":  "Raise this key's credit limit at " + keysPage + ", or wait for the limit to reset.",
	}}
}

// defaultMaxTokens stands in for max_tokens for a model not in the
// catalogue.
const defaultMaxTokens = 16384

// affordRefusal is OpenRouter's refusal of a request whose prompt and
// largest answer the key's remaining limit cannot pay for, or nil.
func (s *Server) affordRefusal(key string, req chatRequest, bodyLen int) *refusal {
	requested := defaultMaxTokens
	for _, m := range s.opts.Models {
		if m.ID == req.Model {
			requested = m.MaxCompletionTokens
		}
	}
	for _, n := range []*int{req.MaxOutputTokens, req.MaxCompletionTokens, req.MaxTokens} {
		if n != nil {
			requested = *n
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.keys[key]
	if info == nil {
		return nil
	}
	left, ok := s.remainingLocked(info)
	if !ok || s.opts.Pricing.Completion <= 0 {
		return nil
	}
	left -= toPico(float64(CountTokens(bodyLen)) * s.opts.Pricing.Prompt)
	affordable := max(int(math.Floor(left.usd()/s.opts.Pricing.Completion)), 0)
	if affordable >= requested {
		return nil
	}
	return &refusal{status: http.StatusPaymentRequired, message: fmt.Sprintf(
		"This request requires more credits, or fewer max_tokens. You requested up to %d tokens, but can only afford %d. "+
			"To increase, visit %s and create a key with a higher %s limit", requested, affordable, keysPage, period(info.LimitReset)),
		metadata: map[string]any{"limit_source": "openrouter_key_limit", "provider_name": nil,
			"remedy_hint": "Lower max_tokens, or raise this key's credit limit at " + keysPage + "."}}
}

// creditsRefusal is Fault.Status 402: the account's balance, not a key's
// limit. With RetryAfter it is the in-flight spending budget, which is
// worth a retry; without, it is not.
func creditsRefusal(f Fault) *refusal {
	if f.RetryAfter > 0 {
		return &refusal{status: http.StatusPaymentRequired, retryAfter: f.RetryAfter,
			message: "This request would exceed your available credits given your current in-flight requests. Retry after in-flight requests settle, or add credits.",
			metadata: map[string]any{"reason": "in_flight_budget_exhausted", "limit_source": "openrouter_in_flight_budget",
				"remedy_hint": "Retry after your in-flight requests settle (see the Retry-After header). Adding credits at https://openrouter.ai/settings/credits raises your in-flight budget, up to a capped ceiling."}}
	}
	return &refusal{status: http.StatusPaymentRequired, message: "Insufficient credits. Add more using https://openrouter.ai/credits",
		metadata: map[string]any{"limit_source": "openrouter_credits", "remedy_hint": "Add credits at https://openrouter.ai/settings/credits."}}
}

// write answers with the refusal in the shape of the API that was asked.
func (rf *refusal) write(w http.ResponseWriter, style apiStyle, gz bool) {
	if rf.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(rf.retryAfter))
	}
	var body map[string]any
	if style == styleAnthropic {
		body = anthropicErrorBody(rf.status, rf.message, nil)
		if rf.metadata != nil {
			body["metadata"] = rf.metadata
		}
	} else {
		e := map[string]any{"code": rf.status, "message": rf.message}
		if rf.metadata != nil {
			e["metadata"] = rf.metadata
		}
		body = map[string]any{"error": e}
		if !rf.bare {
			body["user_id"] = "user_fake"
		}
	}
	data, _ := json.Marshal(body)
	writeErrorBody(w, rf.status, data, gz)
}
