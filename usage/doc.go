// Package usage reads what each OpenRouter answer cost while the answer
// passes through the proxy on its way to the client.
//
// OpenRouter puts the price of a request into the answer itself: the usage
// object of a chat completion (cost, token counts, web searches), the last
// chunk of a stream before [DONE], the response.completed event of the
// Responses API, the message_start and message_delta events of the Messages
// API. Asking /generation afterwards would cost a request per request and
// arrive late, so the ledger and the budgets take these numbers from the
// answer as it streams by.
//
// The reading must never cost the client anything: a Tap wraps the upstream
// body, looks at the bytes of each Read after they were read and returns
// them in the same call, unchanged. It keeps no copy of the stream:
//
//   - Server-sent events are followed line by line; only a line that spans
//     two Reads is copied (up to MaxLine). A few byte scans per line pick
//     out the lines that can carry usage, an error or the end marker, and
//     only those are parsed (with gjson, on that line alone). An event
//     whose JSON is spread over several data: lines is not joined;
//     OpenRouter sends one line per event.
//   - A JSON answer is kept up to MaxBody and parsed once, in the Read
//     that reports its end, after the last bytes went out (about 1 µs per
//     KB).
//   - A gzip answer (orproxy passes gzip through when the client takes it)
//     is decoded on the side: Read queues a copy of each compressed piece
//     without waiting, and a goroutine inflates the queue and reads the
//     plain text as above. The queue is bounded; a decoder that falls that
//     far behind gives up the usage rather than slow the client.
//
// When the body ends (EOF, a cut, or the client gone) the Tap hands one
// Record to its callback. Whatever it cannot read (a cap crossed, an
// encoding other than gzip, a corrupt gzip stream) leaves the usage
// unknown and says why in the Record; it never fails or slows the answer.
package usage
