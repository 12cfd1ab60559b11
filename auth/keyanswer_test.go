package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/fake/broker"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
)

func ptr(v float64) *float64 { return &v }

// One GET /key gives both what the credential keeps and what /status shows.
func TestGetKey(t *testing.T) {
	f := newFakes(t, broker.Options{})
	expires := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	k := f.or.IssueKey("team key", &expires)
	_, err := f.or.SetKeyLimit(k.Key, openrouter.KeyLimit{Limit: ptr(20), Reset: "monthly"})
	require.NoError(t, err)
	require.NoError(t, f.or.Spend(k.Key, 16.58))

	a, err := GetKey(testCtx(t), testHTTP, f.orURL, secret.New(k.Key))
	require.NoError(t, err)
	assert.Equal(t, KeyInfo{Label: "team key", ExpiresAt: expires}, a.KeyInfo)
	require.NotNil(t, a.Limit)
	assert.InDelta(t, 20, *a.Limit, 1e-9)
	require.NotNil(t, a.LimitRemaining)
	assert.InDelta(t, 3.42, *a.LimitRemaining, 1e-9)
	assert.Equal(t, "monthly", a.LimitReset)
	assert.InDelta(t, 16.58, a.Usage, 1e-9)
	assert.InDelta(t, 16.58, a.UsageDaily, 1e-9)
	assert.InDelta(t, 16.58, a.UsageWeekly, 1e-9)
	assert.InDelta(t, 16.58, a.UsageMonthly, 1e-9)
	assert.False(t, a.IsFreeTier)

	reqs := f.or.Requests()
	require.NotEmpty(t, reqs)
	last := reqs[len(reqs)-1]
	assert.Equal(t, http.MethodGet, last.Method)
	assert.Equal(t, "Bearer "+k.Key, last.Header.Get("Authorization"))
	assert.Equal(t, "application/json", last.Header.Get("Accept"))
}

// Whatever the server answers, no error shows the key: not a 401 or a 5xx
// that echoes it, nor an answer that is not JSON.
func TestGetKeyErrorsNeverShowTheKey(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string // "KEY" is replaced with the Authorization header
		want     string
		rejected bool
	}{
		{name: "401 echoing the key", status: 401, body: `{"error":{"code":401,"message":"no such key KEY"}}`,
			want: "OpenRouter rejected the key (401 Unauthorized: no such key Bearer sk-or-v1-…", rejected: true},
		{name: "500 echoing the key", status: 500, body: `{"error":{"message":"bad header KEY"}}`,
			want: "GET /key: 500 Internal Server Error: bad header Bearer sk-or-v1-…"},
		{name: "a page echoing the key", status: 502, body: "<html>KEY</html>", want: "GET /key: 502 Bad Gateway: <html>Bearer sk-or-v1-…"},
		{name: "no message", status: 503, body: "", want: "GET /key: 503 Service Unavailable"},
		{name: "200 not JSON", status: 200, body: "KEY", want: "GET /key: the answer is not OpenRouter's key answer ("},
		{name: "200 without data", status: 200, body: `{"key":"KEY"}`, want: `GET /key: the answer is not OpenRouter's key answer (no "data"); check ` + "`upstream`"},
		{name: "200 too large", status: 200, body: `{"data":{"label":"KEY` + strings.Repeat("x", maxKeyAnswer) + `"}}`,
			want: "GET /key: the answer is larger than 64 KiB, so not OpenRouter's key answer; check `upstream`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(strings.ReplaceAll(tt.body, "KEY", r.Header.Get("Authorization"))))
			}))
			defer srv.Close()
			_, err := GetKey(testCtx(t), testHTTP, srv.URL, secret.New(testKey))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.want), "%q does not start with %q", err, tt.want)
			assert.Equal(t, tt.rejected, IsKeyRejected(err))
			assert.NotContains(t, err.Error(), testKey)
			assert.NotContains(t, err.Error(), testKey[len(testKey)-20:])
		})
	}
}

func TestDecodeKeyAnswer(t *testing.T) {
	tests := []struct {
		name string
		body string
		want KeyAnswer
		err  string
	}{
		{
			name: "OpenRouter's documented answer",
			body: `{ "data": { "label": "sk-or-v1-au7...890", "limit": 100, "limit_remaining": 74.5, "limit_reset": "monthly",
  "include_byok_in_limit": false, "usage": 25.5, "usage_daily": 25.5, "usage_weekly": 25.5, "usage_monthly": 25.5,
  "byok_usage": 17.38, "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
  "is_free_tier": false, "is_management_key": false, "is_provisioning_key": false,
  "creator_user_id": "user_...", "expires_at": "2027-12-31T23:59:59Z",
  "rate_limit": {"requests": 1000, "interval": "1h", "note": "This field is deprecated and safe to ignore."} } }`,
			want: KeyAnswer{
				KeyInfo: KeyInfo{Label: "sk-or-v1-au7...890", ExpiresAt: time.Date(2027, 12, 31, 23, 59, 59, 0, time.UTC)},
				Limit:   ptr(100), LimitRemaining: ptr(74.5), LimitReset: "monthly",
				Usage: 25.5, UsageDaily: 25.5, UsageWeekly: 25.5, UsageMonthly: 25.5,
			},
		},
		{
			name: "no limit",
			body: `{"data":{"limit":null,"limit_remaining":null,"limit_reset":null,"usage":0.5,"usage_daily":0.25,"usage_weekly":0.5,"usage_monthly":0.5,"is_free_tier":true,"expires_at":null}}`,
			want: KeyAnswer{Usage: 0.5, UsageDaily: 0.25, UsageWeekly: 0.5, UsageMonthly: 0.5, IsFreeTier: true},
		},
		{name: "null amounts read as zero", body: `{"data":{"usage":null}}`, want: KeyAnswer{}},
		{name: "an odd expiry is no expiry", body: `{"data":{"label":"x","expires_at":"next week"}}`, want: KeyAnswer{KeyInfo: KeyInfo{Label: "x"}}},
		{name: "a Unix expiry", body: `{"data":{"expires_at":1798761599}}`, want: KeyAnswer{KeyInfo: KeyInfo{ExpiresAt: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)}}},
		{name: "the reset made printable", body: `{"data":{"limit_reset":"daily\u001b[2J\n"}}`, want: KeyAnswer{LimitReset: "daily [2J"}},
		{name: "no data", body: `{"error":null}`, err: `no "data"`},
		{name: "null data", body: `{"data":null}`, err: `no "data"`},
		{name: "not JSON", body: `<html>proxy login</html>`, err: "not OpenRouter's key answer"},
		{name: "wrong types", body: `{"data":{"limit":"20"}}`, err: "not OpenRouter's key answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeKeyAnswer([]byte(tt.body))
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.Contains(t, err.Error(), "check `upstream`")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
