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
// them in the same call, unchanged and undelayed. It keeps no copy of the
// stream: for server-sent events only the line in progress (and it looks
// hard only at the few lines that can carry usage), for a JSON answer the
// body up to a cap, parsed once at the end. A gzip answer is decoded on the
// side, off the client's path. When the body ends (EOF, a cut, or the client
// gone) the Tap hands one Record to its callback. Whatever it cannot read
// (a cap crossed, an encoding it does not decode) leaves the usage unknown
// and says why in the Record; it never fails or slows the answer.
package usage
