package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/orproxy/orproxy/internal/statusdoc"
)

func TestDescribeWarm(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	on := statusdoc.WarmConnection{Enabled: true, RecentUseSeconds: 3600}
	with := func(f func(*statusdoc.WarmConnection)) statusdoc.WarmConnection {
		w := on
		f(&w)
		return w
	}
	for _, tc := range []struct {
		name string
		w    statusdoc.WarmConnection
		want string
	}{
		{"held", with(func(w *statusdoc.WarmConnection) {
			w.Held, w.LastUsed, w.KeptUntil = true, now.Add(-3*time.Minute), now.Add(57*time.Minute)
		}), "warm, kept open 57 minutes more (last request 3 minutes ago; keepalive.recent_use 60 minutes)"},
		{"held since start", with(func(w *statusdoc.WarmConnection) {
			w.Held, w.KeptUntil = true, now.Add(59*time.Minute)
		}), "warm, kept open 59 minutes more (since the daemon started; keepalive.recent_use 60 minutes)"},
		{"reopening", with(func(w *statusdoc.WarmConnection) {
			w.LastUsed, w.KeptUntil, w.LastWarmup = now.Add(-time.Minute), now.Add(59*time.Minute), now.Add(-2*time.Minute)
		}), "none open; reopening it"},
		{"reopening fails", with(func(w *statusdoc.WarmConnection) {
			w.LastUsed, w.KeptUntil, w.LastWarmup = now.Add(-time.Minute), now.Add(59*time.Minute), now.Add(-2*time.Minute)
			w.LastError, w.LastErrorAt = "GET /key: connection refused", now.Add(-2*time.Minute)
		}), "none open; reopening it (GET /key: connection refused)"},
		{"past the window", with(func(w *statusdoc.WarmConnection) {
			w.LastUsed, w.KeptUntil = now.Add(-2*time.Hour), now.Add(-time.Hour)
		}), "not kept: no request within keepalive.recent_use (60 minutes; last request 2 hours ago); the next request opens one"},
		{"off", statusdoc.WarmConnection{}, "none open; not kept warm (keepalive.enabled is off)"},
		{"off, open", statusdoc.WarmConnection{Held: true}, "open now, but not kept warm (keepalive.enabled is off)"},
	} {
		assert.Equal(t, tc.want, describeWarm(tc.w, now), tc.name)
	}
}

// The line shows only when the daemon sends the section.
func TestPrintStatusWarmLine(t *testing.T) {
	var out bytes.Buffer
	rep := statusReport{Daemon: daemonReport{Answering: true}}
	printStatus(&out, rep)
	assert.NotContains(t, out.String(), "upstream connection")

	out.Reset()
	rep.Daemon.doc.WarmConnection = &statusdoc.WarmConnection{Enabled: true, Held: true, KeptUntil: time.Now().Add(time.Hour)}
	printStatus(&out, rep)
	assert.Contains(t, out.String(), "upstream connection  warm, kept open")
}
