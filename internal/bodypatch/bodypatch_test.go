package bodypatch

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsJSON(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"", true},
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{" application/json ;charset=utf-8", true},
		// curl -d sends this unless told otherwise; OpenRouter reads the body as JSON.
		{"application/x-www-form-urlencoded", true},
		{"application/vnd.api+json", true},
		{"application/merge-patch+JSON; charset=utf-8", true},
		{"text/plain", false},
		{"multipart/form-data; boundary=x", false},
		{"application/jsonl", false},
		{"+json", false},
		{"json", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			assert.Equal(t, tt.want, IsJSON(tt.contentType))
		})
	}
}

func TestIsJSONAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { IsJSON("application/vnd.api+json; charset=utf-8") })
	assert.Zero(t, allocs)
}
