package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddDoesNotAllocate(t *testing.T) {
	w := openTest(t, testPath(t), Options{QueueSize: 64})
	r := sampleRow(time.Now())
	// Queued while there is room, dropped once the queue is full: neither
	// allocates.
	allocs := testing.AllocsPerRun(1000, func() { w.Add(r) })
	assert.Zero(t, allocs)
	require.NoError(t, w.Close(context.Background()))
	assert.Zero(t, testing.AllocsPerRun(100, func() { w.Add(r) }), "nor after Close")
}
