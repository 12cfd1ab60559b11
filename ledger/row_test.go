package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientFromUserAgent(t *testing.T) {
	for ua, want := range map[string]string{
		"opencode/0.15.3": ClientOpenCode,
		"ai-sdk/openai-compatible/1.0.0 opencode/1.0.1": ClientOpenCode,
		"OpenCode/1.0":                           ClientOpenCode,
		"claude-cli/2.0.14 (external, cli)":      ClientClaudeCode,
		"claude-code/1.0":                        ClientClaudeCode,
		"OpenAI/Python 1.51.0":                   ClientOpenAISDK,
		"OpenAI/JS 4.67.3":                       ClientOpenAISDK,
		"openai/go 1.0":                          ClientOpenAISDK,
		"curl/8.5.0":                             ClientCurl,
		"python-requests/2.32":                   ClientOther,
		"Mozilla/5.0 (X11; Linux x86_64) curl/8": ClientOther,
		"":                                       ClientOther,
	} {
		assert.Equal(t, want, ClientFromUserAgent(ua), ua)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { ClientFromUserAgent("Mozilla/5.0 OpenAI/Python 1.0 CLAUDE-CLI") }))
}

func TestEndpointFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/chat/completions": EndpointChat,
		"/chat/completions":        EndpointChat,
		"/api/v1/completions":      EndpointCompletions,
		"/responses":               EndpointResponses,
		"/api/v1/messages":         EndpointMessages,
		"/api/v1/embeddings/":      EndpointEmbeddings,
		"/api/v1/models":           EndpointOther,
		"/api/v1/chat":             EndpointOther,
		"":                         EndpointOther,
	} {
		assert.Equal(t, want, EndpointFromPath(path), path)
	}
}

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
