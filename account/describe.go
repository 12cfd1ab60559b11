package account

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/orproxy/orproxy/internal/statusdoc"
)

// Describe puts the key's limit (c, from GET /key) and what the ledger
// counted (s) into one line a person reads:
//
//	key limit $20.00, $3.42 left, resets monthly; spent today $1.10 (this month $8.20)
//
// Either may be nil: a daemon that has not asked OpenRouter yet, or one
// without the ledger.
func Describe(c *statusdoc.Credits, s *statusdoc.Spend) string {
	parts := []string{describeCredits(c)}
	switch {
	case s != nil:
		parts = append(parts, DescribeSpend(s))
	case c != nil && !c.CheckedAt.IsZero():
		// No ledger: OpenRouter's count for the key is the next best, but
		// it counts every use of the key, and its days are UTC days.
		parts = append(parts, fmt.Sprintf("the key spent %s today (UTC), %s this month", USD(c.UsageDaily), USD(c.UsageMonthly)))
	}
	return strings.Join(parts, "; ")
}

func describeCredits(c *statusdoc.Credits) string {
	switch {
	case c == nil:
		return "key limit unknown (OpenRouter not asked yet)"
	case c.CheckedAt.IsZero() && c.LastError != "":
		return "key limit unknown (OpenRouter could not be asked: " + c.LastError + ")"
	case c.CheckedAt.IsZero():
		return "key limit unknown (OpenRouter not asked yet)"
	}
	var b strings.Builder
	if c.Limit == nil {
		b.WriteString("no key limit")
		if c.IsFreeTier {
			b.WriteString(" (free tier: no credits bought)")
		}
	} else {
		b.WriteString("key limit " + USD(*c.Limit))
		if r := c.LimitRemaining; r != nil {
			switch {
			case *r < 0:
				b.WriteString(", used up (" + USD(-*r) + " over)")
			case *r == 0:
				b.WriteString(", used up")
			default:
				b.WriteString(", " + USD(*r) + " left")
			}
		}
		switch c.LimitReset {
		case "":
			b.WriteString(", never resets")
		default:
			b.WriteString(", resets " + c.LimitReset)
		}
	}
	if c.LastError != "" && c.LastErrorAt.After(c.CheckedAt) {
		b.WriteString(" (as of " + c.CheckedAt.Local().Format("2006-01-02 15:04") + "; the last check failed: " + c.LastError + ")")
	}
	return b.String()
}

// DescribeSpend is the ledger's part of Describe:
// "spent today $1.10 (this month $8.20)".
func DescribeSpend(s *statusdoc.Spend) string {
	if s == nil {
		return "nothing recorded"
	}
	out := fmt.Sprintf("spent today %s (this month %s)", USD(s.TodayUSD), USD(s.MonthUSD))
	if s.WebSearchesToday > 0 {
		out += ", " + plural(s.WebSearchesToday, "web search", "web searches") + " today"
	}
	if s.UnknownCostToday > 0 {
		out += "; " + plural(s.UnknownCostToday, "answer", "answers") + " today reported no cost"
	}
	return out
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

// USD formats an amount of dollars: cents for anything from a cent up,
// two significant digits below that (to a millionth), so that a request
// costing $0.00042 is not shown as free.
func USD(v float64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "$?"
	case v < 5e-7: // rounds to nothing at six decimals
		return "$0.00"
	case v >= 0.01:
		return sign + "$" + strconv.FormatFloat(v, 'f', 2, 64)
	}
	decimals := min(int(-math.Floor(math.Log10(v)))+1, 6)
	return sign + "$" + strconv.FormatFloat(v, 'f', decimals, 64)
}
