package configs_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/configs"
	"github.com/orproxy/orproxy/internal/config"
)

func TestExampleIsTheFileAndLoads(t *testing.T) {
	onDisk, err := os.ReadFile("config.example.yaml")
	require.NoError(t, err)
	assert.Equal(t, onDisk, configs.Example())

	got, err := config.Decode("config.example.yaml", configs.Example())
	require.NoError(t, err)
	assert.Equal(t, config.Default(), got, "the embedded example must decode to the defaults")
}

func TestExampleReturnsACopy(t *testing.T) {
	a := configs.Example()
	a[0] ^= 0xff
	assert.NotEqual(t, a[0], configs.Example()[0], "callers must not be able to change the embedded bytes")
}
