package websearch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func testSettings() Settings {
	return Settings{Enabled: true, Engine: "auto", MaxResults: 8, Messages: true}
}

// newTestInjector builds an Injector without a catalogue.
func newTestInjector(tb testing.TB, s Settings) *Injector {
	tb.Helper()
	in, err := New(s, "", nil, nil, Options{})
	require.NoError(tb, err)
	return in
}
