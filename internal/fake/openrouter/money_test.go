package openrouter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/testkit"
)

func usd(v float64) *float64 { return &v }

func getKey(t *testing.T, api, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, api+"/key", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := testClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data map[string]any `json:"data"`
	}
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	}
	return resp.StatusCode, out.Data
}

func TestKeyAnswer(t *testing.T) {
	fake, api := usageServer(t, Options{}, Fault{})
	exp := time.Date(2027, 12, 31, 23, 59, 59, 0, time.UTC)
	info := fake.AddKey("sk-or-v1-expiring-key-0123456789", "", &exp)

	status, data := getKey(t, api, info.Key)
	require.Equal(t, http.StatusOK, status)
	for _, field := range []string{"label", "limit", "limit_remaining", "limit_reset", "include_byok_in_limit", "usage", "usage_daily",
		"usage_weekly", "usage_monthly", "byok_usage", "is_free_tier", "is_management_key", "expires_at", "rate_limit", "free_model_daily_requests"} {
		assert.Contains(t, data, field)
	}
	assert.Equal(t, "sk-or-v1-ex...789", data["label"], "the label is the masked key")
	assert.Nil(t, data["limit"], "no limit")
	assert.Nil(t, data["limit_remaining"])
	assert.Nil(t, data["limit_reset"])
	assert.Equal(t, 0.0, data["usage"])
	assert.Equal(t, false, data["is_free_tier"])
	assert.Equal(t, "2027-12-31T23:59:59Z", data["expires_at"])

	status, _ = getKey(t, api, "sk-or-v1-unknown")
	assert.Equal(t, http.StatusUnauthorized, status)
}

func TestKeyUsageGrowsWithWhatWasCharged(t *testing.T) {
	fake, api := usageServer(t, Options{}, Fault{})
	_, err := fake.SetKeyLimit(usageKey, KeyLimit{Limit: usd(1), Reset: "monthly"})
	require.NoError(t, err)
	for _, c := range usageCases {
		require.Equal(t, http.StatusOK, post(t, api+c.path, usageKey, c.body).StatusCode)
	}
	charged := 0.0
	for _, r := range fake.Requests() {
		charged += r.Usage.Cost
	}
	require.Positive(t, charged)
	status, data := getKey(t, api, usageKey)
	require.Equal(t, http.StatusOK, status)
	for _, field := range []string{"usage", "usage_daily", "usage_weekly", "usage_monthly"} {
		assert.InDelta(t, charged, data[field], 1e-12, field)
	}
	assert.Equal(t, 1.0, data["limit"])
	assert.Equal(t, "monthly", data["limit_reset"])
	assert.InDelta(t, 1-charged, data["limit_remaining"], 1e-12)
	assert.Equal(t, 0.0, data["byok_usage"])
	infos := fake.Keys()
	require.Len(t, infos, 1)
	assert.InDelta(t, charged, infos[0].Usage, 1e-12)
}

func TestUsagePeriodsAndLimitResets(t *testing.T) {
	clk := &testkit.Clock{}
	day := func(d int, month time.Month) time.Time { return time.Date(2026, month, d, 12, 0, 0, 0, time.UTC) }
	fake, api := usageServer(t, Options{Now: clk.Now}, Fault{})
	require.Equal(t, time.Monday, day(28, time.September).Weekday())

	clk.Set(day(28, time.September))
	require.NoError(t, fake.Spend(usageKey, 1))
	clk.Set(day(30, time.September))
	require.NoError(t, fake.Spend(usageKey, 2))

	check := func(when time.Time, total, daily, weekly, monthly float64) {
		t.Helper()
		clk.Set(when)
		st, ok := fake.KeyStatus(usageKey)
		require.True(t, ok)
		assert.Equal(t, []float64{total, daily, weekly, monthly}, []float64{st.Usage, st.UsageDaily, st.UsageWeekly, st.UsageMonthly}, when.Format("Mon Jan 2"))
	}
	check(day(30, time.September), 3, 2, 3, 3)
	check(day(1, time.October), 3, 0, 3, 0) // same week, new month
	check(day(4, time.October), 3, 0, 3, 0) // Sunday ends the week
	check(day(5, time.October), 3, 0, 0, 0) // new week

	// A limit counts the spending of its own period.
	for reset, remaining := range map[string]float64{"": 7, "daily": 10, "weekly": 7, "monthly": 7} {
		clk.Set(day(30, time.September))
		_, err := fake.SetKeyLimit(usageKey, KeyLimit{Limit: usd(10), Reset: reset})
		require.NoError(t, err)
		_, data := getKey(t, api, usageKey)
		assert.Equal(t, remaining-map[string]float64{"daily": 2}[reset], data["limit_remaining"], "reset %q", reset)
	}
}

// moneyPaths are the three model APIs and their JSON bodies.
var moneyPaths = []struct {
	path, body string
	style      apiStyle
}{
	{"/chat/completions", `{"model":"openai/gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, styleOpenRouter},
	{"/responses", `{"model":"openai/gpt-4o-mini","max_output_tokens":10,"input":"hi"}`, styleOpenRouter},
	{"/messages", `{"model":"anthropic/claude-sonnet-4.5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, styleAnthropic},
}

// moneyError reads an error answer in either shape.
type moneyError struct {
	// OpenRouter's shape
	Error struct {
		Code     int            `json:"code"`
		Message  string         `json:"message"`
		Metadata map[string]any `json:"metadata"`
		// Anthropic's envelope
		Type      string `json:"type"`
		ErrorType string `json:"error_type"`
	} `json:"error"`
	UserID   *string        `json:"user_id"`
	Type     string         `json:"type"`
	Metadata map[string]any `json:"metadata"`
}

func (m moneyError) message() string { return m.Error.Message }

// meta is error.metadata, or the envelope's metadata on Messages.
func (m moneyError) meta(style apiStyle) map[string]any {
	if style == styleAnthropic {
		return m.Metadata
	}
	return m.Error.Metadata
}

func decodeMoney(t *testing.T, resp *http.Response, style apiStyle, status int) moneyError {
	t.Helper()
	require.Equal(t, status, resp.StatusCode)
	var e moneyError
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	if style == styleAnthropic {
		assert.Equal(t, "error", e.Type)
		want := map[int]string{http.StatusPaymentRequired: "billing_error", http.StatusForbidden: "permission_error"}[status]
		assert.Equal(t, want, e.Error.Type)
	} else {
		assert.Equal(t, status, e.Error.Code)
	}
	return e
}

func TestUsedUpKeyLimit(t *testing.T) {
	for _, p := range moneyPaths {
		for _, reset := range []string{"", "monthly"} {
			t.Run(p.path+" "+period(reset), func(t *testing.T) {
				fake, api := usageServer(t, Options{Keys: []string{"sk-or-v1-unlimited"}}, Fault{})
				_, err := fake.SetKeyLimit(usageKey, KeyLimit{Limit: usd(5), Reset: reset})
				require.NoError(t, err)
				require.NoError(t, fake.Spend(usageKey, 4.99))
				require.Equal(t, http.StatusOK, post(t, api+p.path, usageKey, p.body).StatusCode, "a cent left pays for a small request")
				require.NoError(t, fake.Spend(usageKey, 0.01-fake.Requests()[0].Usage.Cost))
				st, _ := fake.KeyStatus(usageKey)
				require.NotNil(t, st.LimitRemaining)
				require.Zero(t, *st.LimitRemaining, "exactly used up")

				want := "Key limit exceeded (" + period(reset) + " limit). Manage it using https://openrouter.ai/settings/keys"
				e := decodeMoney(t, post(t, api+p.path, usageKey, p.body), p.style, http.StatusPaymentRequired)
				assert.Equal(t, want, e.message())
				assert.Equal(t, "openrouter_key_limit", e.meta(p.style)["limit_source"])
				assert.NotEmpty(t, e.meta(p.style)["remedy_hint"])
				if p.style == styleAnthropic {
					assert.Equal(t, "payment_required", e.Error.ErrorType)
				}
				assert.Nil(t, fake.Requests()[1].Usage, "a refused request costs nothing")

				fake.SetFault(Fault{KeyLimitForbidden: true})
				e = decodeMoney(t, post(t, api+p.path, usageKey, p.body), p.style, http.StatusForbidden)
				assert.Equal(t, want, e.message())
				if p.style == styleOpenRouter {
					assert.Nil(t, e.Error.Metadata, "the 403 clients saw carries nothing else")
					assert.Nil(t, e.UserID)
				}

				assert.Equal(t, http.StatusOK, post(t, api+p.path, "sk-or-v1-unlimited", p.body).StatusCode, "other keys go on")
				_, err = fake.SetKeyLimit(usageKey, KeyLimit{Limit: usd(6), Reset: reset})
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, post(t, api+p.path, usageKey, p.body).StatusCode, "a raised limit lets the key in again")
			})
		}
	}
}

func TestRequestTheRestOfTheLimitCannotPayFor(t *testing.T) {
	for _, p := range moneyPaths {
		t.Run(p.path, func(t *testing.T) {
			fake, api := usageServer(t, Options{}, Fault{})
			_, err := fake.SetKeyLimit(usageKey, KeyLimit{Limit: usd(0.05), Reset: "weekly"})
			require.NoError(t, err)
			// Without max_tokens the model's largest answer counts: 16384
			// tokens of gpt-4o-mini, 64000 of Claude, far more than $0.05 buys.
			noMax := strings.NewReplacer(`"max_tokens":10,`, "", `"max_output_tokens":10,`, "").Replace(p.body)
			e := decodeMoney(t, post(t, api+p.path, usageKey, noMax), p.style, http.StatusPaymentRequired)
			affordable := int((0.05 - float64(CountTokens(len(noMax)))*DefaultPricing.Prompt) / DefaultPricing.Completion)
			assert.Contains(t, e.message(), "This request requires more credits, or fewer max_tokens. You requested up to ")
			assert.Contains(t, e.message(), "but can only afford "+strconv.Itoa(affordable)+".")
			assert.Contains(t, e.message(), "create a key with a higher weekly limit")
			assert.Equal(t, "openrouter_key_limit", e.meta(p.style)["limit_source"])

			assert.Equal(t, http.StatusOK, post(t, api+p.path, usageKey, p.body).StatusCode, "a small max_tokens fits")
		})
	}
}

func TestCreditsFaults(t *testing.T) {
	for _, p := range moneyPaths {
		t.Run(p.path+" insufficient credits", func(t *testing.T) {
			_, api := usageServer(t, Options{}, Fault{Status: http.StatusPaymentRequired})
			resp := post(t, api+p.path, usageKey, p.body)
			assert.Empty(t, resp.Header.Get("Retry-After"), "not a wait-and-retry case")
			e := decodeMoney(t, resp, p.style, http.StatusPaymentRequired)
			assert.Equal(t, "Insufficient credits. Add more using https://openrouter.ai/credits", e.message())
			assert.Equal(t, "openrouter_credits", e.meta(p.style)["limit_source"])
		})
		t.Run(p.path+" in-flight budget", func(t *testing.T) {
			_, api := usageServer(t, Options{}, Fault{Status: http.StatusPaymentRequired, RetryAfter: 3})
			resp := post(t, api+p.path, usageKey, p.body)
			assert.Equal(t, "3", resp.Header.Get("Retry-After"))
			e := decodeMoney(t, resp, p.style, http.StatusPaymentRequired)
			assert.Contains(t, e.message(), "in-flight requests")
			assert.Equal(t, "openrouter_in_flight_budget", e.meta(p.style)["limit_source"])
			assert.Equal(t, "in_flight_budget_exhausted", e.meta(p.style)["reason"])
		})
	}
	t.Run("exact chat body", func(t *testing.T) {
		_, api := usageServer(t, Options{}, Fault{Status: http.StatusPaymentRequired})
		assert.JSONEq(t, `{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/credits",`+
			`"metadata":{"limit_source":"openrouter_credits","remedy_hint":"Add credits at https://openrouter.ai/settings/credits."}},"user_id":"user_fake"}`,
			bodyOf(t, post(t, api+"/chat/completions", usageKey, chatJSON)))
	})
}

func TestLimitsThroughTheAdminAPI(t *testing.T) {
	fake := New(Options{})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := &AdminClient{BaseURL: srv.URL}
	info, err := admin.IssueKey(ctx, "limited", nil)
	require.NoError(t, err)

	set, err := admin.SetKeyLimit(ctx, info.Hash, KeyLimit{Limit: usd(2), Reset: "daily", IsFreeTier: true})
	require.NoError(t, err)
	require.NotNil(t, set.Limit)
	assert.Equal(t, 2.0, *set.Limit)
	assert.Equal(t, "daily", set.LimitReset)

	st, err := admin.Spend(ctx, info.Key, 1.25)
	require.NoError(t, err)
	assert.Equal(t, 1.25, st.UsageDaily)
	require.NotNil(t, st.LimitRemaining)
	assert.Equal(t, 0.75, *st.LimitRemaining)
	assert.True(t, st.IsFreeTier)

	_, err = admin.SetKeyLimit(ctx, info.Key, KeyLimit{Limit: usd(2), Reset: "hourly"})
	assert.ErrorContains(t, err, "hourly")
	_, err = admin.SetKeyLimit(ctx, info.Key, KeyLimit{Limit: usd(-1)})
	assert.Error(t, err)
	_, err = admin.Spend(ctx, "sk-or-v1-unknown", 1)
	assert.Error(t, err)

	// Unlimited again.
	set, err = admin.SetKeyLimit(ctx, info.Key, KeyLimit{})
	require.NoError(t, err)
	assert.Nil(t, set.Limit)
	_, data := getKey(t, srv.URL+"/api/v1", info.Key)
	assert.Nil(t, data["limit_remaining"])
	assert.Equal(t, 1.25, data["usage"])

	// The key keeps what it spent when it is added again.
	fake.AddKey(info.Key, "again", nil)
	_, data = getKey(t, srv.URL+"/api/v1", info.Key)
	assert.Equal(t, 1.25, data["usage"])
}
