// Package backoff paces attempts that keep failing: each failure doubles the
// wait, up to a cap, so a broken broker, a full disk or a held lock is asked
// less and less often but never given up on.
package backoff

import "time"

// Policy doubles the wait from Base after each failure, up to Max.
type Policy struct {
	Base, Max time.Duration
}

// Delay is the wait after n earlier failures in a row: Base·2ⁿ, at most Max.
// A Max below Base caps at Max.
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for range max(n, 0) {
		if d >= p.Max || d > p.Max/2 {
			d = p.Max
			break
		}
		d *= 2
	}
	return min(d, p.Max)
}
