// Package loadstat holds the pure parts of the benchmark tools: percentiles
// over latency samples and the /proc readings taken on the measured process.
package loadstat

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0–100) of sorted by the
// nearest-rank method: the smallest sample with at least p% of the samples at
// or below it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[len(sorted)-1]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// Summary is the distribution of a set of latency samples.
type Summary struct {
	N   int
	P50 time.Duration
	P90 time.Duration
	P99 time.Duration
	Max time.Duration
}

// Summarize sorts samples in place and describes them.
func Summarize(samples []time.Duration) Summary {
	slices.Sort(samples)
	s := Summary{N: len(samples)}
	if len(samples) == 0 {
		return s
	}
	s.P50 = Percentile(samples, 50)
	s.P90 = Percentile(samples, 90)
	s.P99 = Percentile(samples, 99)
	s.Max = samples[len(samples)-1]
	return s
}

// Median returns the median of xs (the mean of the middle two for an even
// count) without changing xs, and NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}
