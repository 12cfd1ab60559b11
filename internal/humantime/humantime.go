// Package humantime writes durations the way people say them: "30 days",
// "5 minutes", "in 3 hours", where time.Duration's String gives "719h59m0s".
package humantime

import (
	"strconv"
	"time"
)

const day = 24 * time.Hour

// Duration says d in its largest fitting unit, rounded: "30 days", "36
// hours", "5 minutes", "45 seconds". A unit is used from two of it on, so
// 90 minutes stay "90 minutes" rather than becoming "2 hours". Below a
// second, d is given as Go writes it ("150ms"): only tests wait that little.
// A negative d is said as its size.
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d == 0:
		return "0 seconds"
	case d < time.Second:
		return d.String()
	case d >= 2*day:
		return count(d, day, "day")
	case d >= 2*time.Hour:
		return count(d, time.Hour, "hour")
	case d >= 2*time.Minute:
		return count(d, time.Minute, "minute")
	}
	return count(d, time.Second, "second")
}

func count(d, unit time.Duration, name string) string {
	n := int64((d + unit/2) / unit)
	if n == 1 {
		return "1 " + name
	}
	return strconv.FormatInt(n, 10) + " " + name + "s"
}

// Relative says when t is, seen from now: "in 30 days", "3 hours ago", or
// "now" within a second.
func Relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d >= time.Second:
		return "in " + Duration(d)
	case d <= -time.Second:
		return Duration(d) + " ago"
	}
	return "now"
}
