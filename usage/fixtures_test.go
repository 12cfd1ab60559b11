package usage

// Answers in the shapes OpenRouter documents (see the research notes on
// its API): key order as OpenRouter and the APIs it mimics send them.

const chatUsage = `{"prompt_tokens":194,"completion_tokens":20,"total_tokens":214,` +
	`"prompt_tokens_details":{"cached_tokens":128,"cache_write_tokens":0},` +
	`"completion_tokens_details":{"reasoning_tokens":7},` +
	`"cost":0.00095,"is_byok":false,"cost_details":{"upstream_inference_cost":null},` +
	`"server_tool_use":{"web_search_requests":2}}`

var chatRecord = Record{
	Found: true, CostKnown: true, Cost: 0.00095,
	PromptTokens: 194, CompletionTokens: 20, CachedTokens: 128, ReasoningTokens: 7, WebSearches: 2,
	ModelServed: "openai/gpt-4o", Provider: "OpenAI", GenerationID: "gen-abc",
}

const chatJSON = `{"id":"gen-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion","created":1700000000,` +
	`"choices":[{"index":0,"finish_reason":"stop","native_finish_reason":"stop",` +
	`"message":{"role":"assistant","content":"Hello, there is no error here.","annotations":[]}}],` +
	`"usage":` + chatUsage + `}`

func chatChunk(content string) string {
	return `data: {"id":"gen-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion.chunk","created":1700000000,` +
		`"choices":[{"index":0,"delta":{"role":"assistant","content":"` + content + `"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}`
}

const chatStop = `data: {"id":"gen-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion.chunk","created":1700000000,` +
	`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}]}`

const chatFinal = `data: {"id":"gen-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion.chunk","created":1700000000,` +
	`"choices":[],"usage":` + chatUsage + `}`

var chatSSE = sse(": OPENROUTER PROCESSING", chatChunk("Hello"), chatChunk(" usage"), chatChunk(` \"error\" handling`),
	": OPENROUTER PROCESSING", chatStop, chatFinal, "data: [DONE]")

const chatMidError = `data: {"id":"gen-abc","object":"chat.completion.chunk","created":1,"model":"openai/gpt-4o","provider":"OpenAI",` +
	`"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}},` +
	`"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`

const responsesUsage = `{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":25,` +
	`"output_tokens_details":{"reasoning_tokens":9},"total_tokens":35,"cost":0.0012,"is_byok":false,"server_tool_use":{"web_search_requests":1}}`

var responsesRecord = Record{
	Found: true, CostKnown: true, Cost: 0.0012,
	PromptTokens: 10, CompletionTokens: 25, CachedTokens: 4, ReasoningTokens: 9, WebSearches: 1,
	ModelServed: "openai/gpt-5", GenerationID: "gen-resp1", Complete: true,
}

var responsesSSE = sse(
	`event: response.created`+"\n"+`data: {"type":"response.created","sequence_number":0,"response":{"id":"gen-resp1","object":"response","model":"openai/gpt-5","status":"in_progress","usage":null,"error":null}}`,
	`event: response.output_text.delta`+"\n"+`data: {"type":"response.output_text.delta","sequence_number":1,"item_id":"msg-1","delta":"Hi \"usage\""}`,
	`event: response.completed`+"\n"+`data: {"type":"response.completed","sequence_number":2,"response":{"id":"gen-resp1","object":"response","model":"openai/gpt-5","status":"completed","error":null,"output":[],"usage":`+responsesUsage+`}}`,
	"data: [DONE]")

// Without event: lines and with keys in alphabetical order, as a JSON
// encoder of a map writes them: the type must be found in the payload.
var responsesSSEPlain = sse(
	`data: {"response":{"id":"gen-resp1","model":"openai/gpt-5","status":"in_progress"},"type":"response.created"}`,
	`data: {"delta":"Hi","item_id":"msg-1","type":"response.output_text.delta"}`,
	`data: {"response":{"error":null,"id":"gen-resp1","model":"openai/gpt-5","output":[],"status":"completed","usage":`+responsesUsage+`},"type":"response.completed"}`)

const messagesStart = `event: message_start` + "\n" +
	`data: {"type":"message_start","message":{"id":"gen-msg1","type":"message","role":"assistant","model":"anthropic/claude-sonnet-4",` +
	`"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":50,"cache_read_input_tokens":100,"output_tokens":1}}}`

var messagesSSE = sse(messagesStart,
	`event: ping`+"\n"+`data: {"type": "ping"}`,
	`event: content_block_start`+"\n"+`data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`event: content_block_delta`+"\n"+`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"an \"error\": {usage}"}}`,
	`event: content_block_stop`+"\n"+`data: {"type":"content_block_stop","index":0}`,
	`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15,"cost":0.0042,"server_tool_use":{"web_search_requests":1}}}`,
	`event: message_stop`+"\n"+`data: {"type":"message_stop"}`)

var messagesRecord = Record{
	Found: true, CostKnown: true, Cost: 0.0042,
	PromptTokens: 175, CompletionTokens: 15, CachedTokens: 100, WebSearches: 1,
	ModelServed: "anthropic/claude-sonnet-4", GenerationID: "gen-msg1", Complete: true,
}

const messagesJSON = `{"id":"gen-msg2","type":"message","role":"assistant","model":"anthropic/claude-haiku-4.5","provider":"Anthropic",` +
	`"content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":30,"output_tokens":6,"cost":0.0001}}`

const embeddingsJSON = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093,0.0158]}],` +
	`"model":"openai/text-embedding-3-small","id":"gen-emb1","usage":{"prompt_tokens":8,"total_tokens":8,"cost":2e-7}}`
