package proxy

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// OpenRouter refuses a request for money in three ways, all 402 with
// error.metadata.limit_source saying which (and a 403 "Key limit exceeded"
// that clients have seen for the key's limit). A client shows only the
// message, which does not say what the user can do about it from here; the
// proxy appends one sentence that does, leaving the rest of the answer
// (status, headers such as Retry-After, every other field) as it came.

// limit is which money limit an answer hit.
type limit uint8

const (
	noLimit limit = iota
	// keyLimit is the credit limit set on the key itself.
	keyLimit
	// credits is the account's balance.
	credits
	// inFlight is the account's in-flight budget: running requests may use
	// up what is left, so new ones wait (with Retry-After).
	inFlight
)

// limitOf tells which limit a 402 or 403 answer names; plain is its body,
// decoded. Any 402 is about money; a 403 only when it names the key limit.
func limitOf(status int, plain []byte) limit {
	src := gjson.GetBytes(plain, "error.metadata.limit_source").Str
	if src == "" {
		// Anthropic's envelope on /messages keeps metadata beside error.
		src = gjson.GetBytes(plain, "metadata.limit_source").Str
	}
	switch src {
	case "openrouter_key_limit":
		return keyLimit
	case "openrouter_in_flight_budget":
		if status == http.StatusPaymentRequired {
			return inFlight
		}
	case "openrouter_credits":
		if status == http.StatusPaymentRequired {
			return credits
		}
	}
	if strings.HasPrefix(gjson.GetBytes(plain, "error.message").Str, "Key limit exceeded") {
		return keyLimit
	}
	if status == http.StatusPaymentRequired {
		return credits // "Your account or API key has insufficient credits."
	}
	return noLimit
}

// statusHint ends every explanation: the key poller has the figures.
const statusHint = "run `orproxy status` to see the key's limit and usage"

// sentence is orproxy's explanation of a limit.
func (l limit) sentence() string {
	switch l {
	case keyLimit:
		return "this is the credit limit set on the OpenRouter key orproxy uses, not an orproxy budget; " + statusHint
	case inFlight:
		return "OpenRouter holds new requests back while the running ones may use up the account's remaining credits; retry after the Retry-After time, or add credits; " + statusHint
	default:
		return "the OpenRouter account behind the key is out of credits; add credits at https://openrouter.ai/settings/credits; " + statusHint
	}
}

// withSentence returns the error body plain with " (orproxy: sentence)"
// appended to its error.message, every other byte as it was; false when the
// body has no such message (not JSON, or another shape).
func withSentence(plain []byte, sentence string) ([]byte, bool) {
	m := gjson.GetBytes(plain, "error.message")
	if m.Type != gjson.String || m.Index <= 0 || m.Index+len(m.Raw) > len(plain) || string(plain[m.Index:m.Index+len(m.Raw)]) != m.Raw {
		return nil, false
	}
	quoted, err := json.Marshal(sentence)
	if err != nil {
		return nil, false
	}
	end := m.Index + len(m.Raw) - 1 // the closing quote
	out := make([]byte, 0, len(plain)+len(quoted)+len(" (orproxy: )"))
	out = append(out, plain[:end]...)
	out = append(out, " (orproxy: "...)
	out = append(out, quoted[1:len(quoted)-1]...)
	out = append(out, ')')
	out = append(out, plain[end:]...)
	return out, true
}

// explainLimit returns the money error resp with the sentence for l (and
// note, if any) in its message. start is what was read of its body. An
// answer that is cut short or has no message passes as it came.
func explainLimit(resp *http.Response, start errorStart, l limit, note string) *http.Response {
	if !start.whole {
		return passOn(resp, start) // not all of it: leave it whole
	}
	sentence := l.sentence()
	if note != "" {
		sentence += "; " + note
	}
	body, ok := withSentence(start.plain, sentence)
	if !ok {
		return passOn(resp, start)
	}
	resp.Body.Close()
	resp.Header.Del("Content-Encoding") // the body is start.plain now
	return respondWith(resp, body)
}
