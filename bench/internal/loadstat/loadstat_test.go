package loadstat

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"p0 is the minimum", ms(1, 2, 3), 0, time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"median of odd count", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p90 of 100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 10 is the maximum", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p1 of 100", hundred, 1, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percentile(tc.sorted, tc.p))
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	s := Summarize([]time.Duration{5, 1, 4, 2, 3})
	assert.Equal(t, Summary{N: 5, P50: 3, P90: 5, P99: 5, Max: 5}, s)
	assert.Equal(t, Summary{}, Summarize(nil))
}

func TestMedian(t *testing.T) {
	xs := []float64{3, 1, 2}
	assert.Equal(t, 2.0, Median(xs))
	assert.Equal(t, []float64{3, 1, 2}, xs, "input unchanged")
	assert.Equal(t, 2.5, Median([]float64{4, 1, 3, 2}))
	assert.True(t, math.IsNaN(Median(nil)))
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may choose.
	line := "4242 (nginx: worker (x) ) S 4241 4241 26858 0 -1 4194304 101 0 0 0 1234 56 0 0 20 0 1 0 315656 3133440 418 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, 4241, st.PPID)
	assert.Equal(t, 12340*time.Millisecond, st.UTime)
	assert.Equal(t, 560*time.Millisecond, st.STime)

	for _, bad := range []string{"", "1 (x S 2 3", "1 (x) S 2 3 4", "1 (x) S a 1 2 3 4 5 6 7 8 9 10 11"} {
		_, err := ParseStat([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseKiB(t *testing.T) {
	status := "Name:\torproxy\nVmPeak:\t  800000 kB\nVmRSS:\t   65536 kB\nRssAnon:\t   60000 kB\n"
	n, err := ParseKiB([]byte(status), "VmRSS")
	require.NoError(t, err)
	assert.Equal(t, int64(65536), n)

	rollup := "55bad5253000-7ffc920a8000 ---p 00000000 00:00 0   [rollup]\nRss:   1620 kB\nPss:    274 kB\nPss_Dirty:  116 kB\n"
	n, err = ParseKiB([]byte(rollup), "Pss")
	require.NoError(t, err)
	assert.Equal(t, int64(274), n, "Pss, not Pss_Dirty")

	_, err = ParseKiB([]byte(status), "VmSwap")
	assert.Error(t, err)
	_, err = ParseKiB([]byte("VmRSS: lots\n"), "VmRSS")
	assert.Error(t, err)
}

func TestProcReadSumsChildren(t *testing.T) {
	root := t.TempDir()
	write := func(pid, ppid, utime, stime, rss, pss string) {
		dir := filepath.Join(root, pid)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		stat := pid + " (nginx) S " + ppid + " 1 1 0 -1 0 0 0 0 0 " + utime + " " + stime + " 0 0 20 0 1 0\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "status"), []byte("VmRSS:\t"+rss+" kB\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "smaps_rollup"), []byte("Pss:\t"+pss+" kB\n"), 0o644))
	}
	write("100", "1", "10", "5", "1000", "500") // master
	write("101", "100", "200", "100", "3000", "2000")
	write("102", "100", "100", "50", "3000", "2000")
	write("200", "1", "999", "999", "9999", "9999") // unrelated
	require.NoError(t, os.MkdirAll(filepath.Join(root, "self"), 0o755))

	u, err := Proc{Root: root, PID: 100, Children: true}.Read()
	require.NoError(t, err)
	assert.Equal(t, Usage{CPU: 4650 * time.Millisecond, RSSKiB: 7000, PSSKiB: 4500, Procs: 3}, u)

	u, err = Proc{Root: root, PID: 100}.Read()
	require.NoError(t, err)
	assert.Equal(t, Usage{CPU: 150 * time.Millisecond, RSSKiB: 1000, PSSKiB: 500, Procs: 1}, u)

	_, err = Proc{Root: root, PID: 999}.Read()
	assert.Error(t, err)
}

func TestProcReadSelf(t *testing.T) {
	u, err := Proc{Root: "/proc", PID: os.Getpid()}.Read()
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	assert.Positive(t, u.RSSKiB)
	assert.Equal(t, 1, u.Procs)
}
