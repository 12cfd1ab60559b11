package configs_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/configs"
)

// That the file decodes to the defaults is internal/config's test; here,
// only that the embedded bytes are the file.
func TestExampleIsTheFile(t *testing.T) {
	onDisk, err := os.ReadFile("config.example.yaml")
	require.NoError(t, err)
	assert.Equal(t, onDisk, configs.Example())
}

func TestExampleReturnsACopy(t *testing.T) {
	a := configs.Example()
	a[0] ^= 0xff
	assert.NotEqual(t, a[0], configs.Example()[0], "callers must not be able to change the embedded bytes")
}
