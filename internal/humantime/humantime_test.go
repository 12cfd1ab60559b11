package humantime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0 seconds",
		150 * time.Millisecond:            "150ms",
		time.Second:                       "1 second",
		45 * time.Second:                  "45 seconds",
		90 * time.Second:                  "90 seconds",
		2 * time.Minute:                   "2 minutes",
		5 * time.Minute:                   "5 minutes",
		90 * time.Minute:                  "90 minutes",
		10 * time.Hour:                    "10 hours",
		36 * time.Hour:                    "36 hours",
		719*time.Hour + 59*time.Minute:    "30 days",
		30 * 24 * time.Hour:               "30 days",
		-(3*time.Hour + 10*time.Minute):   "3 hours",
		47*time.Hour + 59*time.Minute:     "48 hours",
		2*24*time.Hour + 11*time.Hour:     "2 days",
		2*24*time.Hour + 12*time.Hour:     "3 days",
		119*time.Second + time.Nanosecond: "119 seconds",
	} {
		assert.Equal(t, want, Duration(d), "%v", d)
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, "in 30 days", Relative(now.Add(719*time.Hour+59*time.Minute), now))
	assert.Equal(t, "3 hours ago", Relative(now.Add(-3*time.Hour), now))
	assert.Equal(t, "now", Relative(now.Add(300*time.Millisecond), now))
	assert.Equal(t, "61 seconds ago", Relative(now.Add(-61*time.Second), now))
	assert.Equal(t, "2 minutes ago", Relative(now.Add(-2*time.Minute-10*time.Second), now))
}
