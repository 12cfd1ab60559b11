package account

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/statusdoc"
)

func TestDescribe(t *testing.T) {
	checked := time.Date(2026, 11, 23, 10, 0, 0, 0, time.Local)
	spend := &statusdoc.Spend{TodayUSD: 1.1, MonthUSD: 8.2}
	limited := func(limit, left float64, reset string) *statusdoc.Credits {
		return &statusdoc.Credits{Limit: &limit, LimitRemaining: &left, LimitReset: reset, UsageDaily: 0.4, UsageMonthly: 9, CheckedAt: checked}
	}
	tests := []struct {
		name string
		c    *statusdoc.Credits
		s    *statusdoc.Spend
		want string
	}{
		{
			name: "limit and ledger",
			c:    limited(20, 3.42, "monthly"), s: spend,
			want: "key limit $20.00, $3.42 left, resets monthly; spent today $1.10 (this month $8.20)",
		},
		{
			name: "no limit",
			c:    &statusdoc.Credits{CheckedAt: checked}, s: spend,
			want: "no key limit; spent today $1.10 (this month $8.20)",
		},
		{
			name: "free tier",
			c:    &statusdoc.Credits{IsFreeTier: true, CheckedAt: checked}, s: &statusdoc.Spend{},
			want: "no key limit (free tier: no credits bought); spent today $0.00 (this month $0.00)",
		},
		{
			name: "not asked yet",
			want: "key limit unknown (OpenRouter not asked yet)",
		},
		{
			name: "not asked yet, ledger",
			s:    spend,
			want: "key limit unknown (OpenRouter not asked yet); spent today $1.10 (this month $8.20)",
		},
		{
			name: "never answered",
			c:    &statusdoc.Credits{LastError: "GET /key: 502 Bad Gateway", LastErrorAt: checked},
			want: "key limit unknown (OpenRouter could not be asked: GET /key: 502 Bad Gateway)",
		},
		{
			name: "answered before, failing now",
			c: func() *statusdoc.Credits {
				c := limited(20, 3.42, "daily")
				c.LastError, c.LastErrorAt = "GET /key: 502 Bad Gateway", checked.Add(time.Hour)
				return c
			}(),
			s:    spend,
			want: "key limit $20.00, $3.42 left, resets daily (as of 2026-11-23 10:00; the last check failed: GET /key: 502 Bad Gateway); spent today $1.10 (this month $8.20)",
		},
		{
			name: "an old failure is history",
			c: func() *statusdoc.Credits {
				c := limited(20, 3.42, "weekly")
				c.LastError, c.LastErrorAt = "GET /key: 502 Bad Gateway", checked.Add(-time.Hour)
				return c
			}(),
			want: "key limit $20.00, $3.42 left, resets weekly; the key spent $0.40 today (UTC), $9.00 this month",
		},
		{
			name: "used up",
			c:    limited(5, 0, "daily"), s: spend,
			want: "key limit $5.00, used up, resets daily; spent today $1.10 (this month $8.20)",
		},
		{
			name: "overspent, never resets",
			c:    limited(5, -0.1234, ""),
			want: "key limit $5.00, used up ($0.12 over), never resets; the key spent $0.40 today (UTC), $9.00 this month",
		},
		{
			name: "searches and unknown costs",
			c:    &statusdoc.Credits{CheckedAt: checked},
			s:    &statusdoc.Spend{TodayUSD: 0.0042, MonthUSD: 0.5, WebSearchesToday: 3, UnknownCostToday: 1},
			want: "no key limit; spent today $0.0042 (this month $0.50), 3 web searches today; 1 answer today reported no cost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Describe(tt.c, tt.s))
		})
	}
}

func TestDescribeSpend(t *testing.T) {
	assert.Equal(t, "nothing recorded", DescribeSpend(nil))
	assert.Equal(t, "spent today $1.00 (this month $2.00), 1 web search today; 2 answers today reported no cost",
		DescribeSpend(&statusdoc.Spend{TodayUSD: 1, MonthUSD: 2, WebSearchesToday: 1, UnknownCostToday: 2}))
}

func TestUSD(t *testing.T) {
	for v, want := range map[float64]string{
		0:          "$0.00",
		20:         "$20.00",
		3.425:      "$3.42", // binary 3.425 is a little under
		1234.5:     "$1234.50",
		0.01:       "$0.01",
		0.0042:     "$0.0042",
		0.00042:    "$0.00042",
		0.00012345: "$0.00012",
		0.0000012:  "$0.000001",
		1e-12:      "$0.00",
		-1e-12:     "$0.00",
		-0.5:       "-$0.50",
		-0.0042:    "-$0.0042",
		math.NaN(): "$?",
	} {
		assert.Equal(t, want, USD(v), "%v", v)
	}
}
