package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetInFileChangesOnlyTheValue(t *testing.T) {
	example, err := os.ReadFile("../../configs/config.example.yaml")
	require.NoError(t, err)
	for _, value := range []string{
		"https://broker.example.com",
		`https://b.example/a "quoted" \ path`,
		"https://b.example/ünïcode#frag",
		"line\nbreak\ttab",
		"",
	} {
		out, err := SetInFile(example, "broker.url", value)
		require.NoError(t, err, "%q", value)
		c, err := Decode("edited.yaml", out)
		require.NoError(t, err, "%q", value)
		assert.Equal(t, value, c.Broker.URL)
		want := Default()
		want.Broker.URL = value
		assert.Equal(t, want, c, "nothing but broker.url changes")

		before, after := strings.Split(string(example), "\n"), strings.Split(string(out), "\n")
		require.Len(t, after, len(before), "%q", value)
		var changed []int
		for i := range before {
			if before[i] != after[i] {
				changed = append(changed, i)
			}
		}
		if value != "" {
			require.Len(t, changed, 1, "one line changes, comments stay: %q", value)
			assert.True(t, strings.HasPrefix(after[changed[0]], "  url: \""), after[changed[0]])
		}
	}
}

func TestSetInFileKeepsALineComment(t *testing.T) {
	out, err := SetInFile([]byte("broker:\n  url: https://old.example   # the company's broker\r\n  timeout: 3s\n"), "broker.url", "https://new.example")
	require.NoError(t, err)
	assert.Equal(t, "broker:\n  url: \"https://new.example\"   # the company's broker\r\n  timeout: 3s\n", string(out))
}

func TestSetInFileRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ data, key string }{
		"missing key":     {"broker:\n  timeout: 3s\n", "broker.url"},
		"missing section": {"listen: 127.0.0.1:1\n", "broker.url"},
		"not a scalar":    {"broker:\n  url: [a, b]\n", "broker.url"},
		"block scalar":    {"broker:\n  url: |\n    https://x\n", "broker.url"},
		"empty text":      {"", "broker.url"},
		"bad yaml":        {"broker: [\n", "broker.url"},
	} {
		_, err := SetInFile([]byte(tc.data), tc.key, "https://new.example")
		assert.Error(t, err, name)
	}
}

func TestValidateServiceURLHidesThePassword(t *testing.T) {
	require.NoError(t, ValidateServiceURL("https://broker.example"))
	err := ValidateServiceURL("https://me:pw-0123456789@broker.example")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "pw-0123456789")
	assert.Error(t, ValidateServiceURL("ftp://broker.example"))
	assert.Error(t, ValidateServiceURL("http://broker.example"), "clear text to a remote host")
}
