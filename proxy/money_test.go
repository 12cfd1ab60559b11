package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/budget"
	"github.com/orproxy/orproxy/internal/fake/openrouter"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
)

// accountCounter is an Account that counts what it is told.
type accountCounter struct{ seen, poked atomic.Int32 }

func (a *accountCounter) Seen() { a.seen.Add(1) }
func (a *accountCounter) Poke() { a.poked.Add(1) }

// sourcedKeys is staticKeys whose credential has a source, for
// rotate_on_limit, which rotates broker keys only.
type sourcedKeys struct {
	*staticKeys
	source    string
	canRotate bool
}

func (k *sourcedKeys) Status() statusdoc.Credential {
	return statusdoc.Credential{Source: k.source, CanRotate: k.canRotate, Key: k.key.String()}
}

// direct asks the fake itself, with the stored key, for what OpenRouter
// answers the request, to compare with what the client got through orproxy.
func (h *harness) direct(t *testing.T, path, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.upstream.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+storedKey)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp, m
}

// splitMessage checks that the client's error is OpenRouter's with
// orproxy's sentence added to error.message, and returns that sentence.
func splitMessage(t *testing.T, upstream map[string]any, got string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &m), got)
	want := upstream["error"].(map[string]any)["message"].(string)
	msg := m["error"].(map[string]any)["message"].(string)
	require.True(t, strings.HasPrefix(msg, want+" (orproxy: "), msg)
	require.True(t, strings.HasSuffix(msg, ")"), msg)
	// Every other field as OpenRouter sent it.
	m["error"].(map[string]any)["message"] = want
	assert.Equal(t, upstream, m)
	return strings.TrimSuffix(strings.TrimPrefix(msg, want+" (orproxy: "), ")")
}

func TestMoneyErrorsAreExplained(t *testing.T) {
	zero := 0.0
	keyLimited := func(h *harness) {
		_, err := h.fake.SetKeyLimit(storedKey, openrouter.KeyLimit{Limit: &zero, Reset: "monthly"})
		require.NoError(t, err)
	}
	const keySentence = "this is the credit limit set on the OpenRouter key orproxy uses, not an orproxy budget; run `orproxy status` to see the key's limit and usage"
	const messagesBody = `{"model":"anthropic/claude-sonnet-4","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name       string
		path, body string
		setup      func(h *harness)
		fault      openrouter.Fault
		gzip       bool
		status     int
		sentence   string
		retryAfter string
	}{
		{name: "402 out of credits", fault: openrouter.Fault{Status: 402}, status: 402,
			sentence: "the OpenRouter account behind the key is out of credits; add credits at https://openrouter.ai/settings/credits; run `orproxy status` to see the key's limit and usage"},
		{name: "402 in-flight budget", fault: openrouter.Fault{Status: 402, RetryAfter: 7}, status: 402, retryAfter: "7",
			sentence: "OpenRouter holds new requests back while the running ones may use up the account's remaining credits; retry after the Retry-After time, or add credits; run `orproxy status` to see the key's limit and usage"},
		{name: "402 key limit", setup: keyLimited, status: 402, sentence: keySentence},
		{name: "402 key limit, gzipped", setup: keyLimited, fault: openrouter.Fault{GzipErrors: true}, gzip: true, status: 402, sentence: keySentence},
		{name: "403 key limit", setup: keyLimited, fault: openrouter.Fault{KeyLimitForbidden: true}, status: 403, sentence: keySentence},
		{name: "403 key limit, gzipped", setup: keyLimited, fault: openrouter.Fault{KeyLimitForbidden: true, GzipErrors: true}, gzip: true, status: 403, sentence: keySentence},
		{name: "402 key limit on Messages", path: "/api/v1/messages", body: messagesBody, setup: keyLimited, status: 402, sentence: keySentence},
		{name: "402 credits on Messages, gzipped", path: "/api/v1/messages", body: messagesBody, fault: openrouter.Fault{Status: 402, GzipErrors: true}, gzip: true, status: 402,
			sentence: "the OpenRouter account behind the key is out of credits; add credits at https://openrouter.ai/settings/credits; run `orproxy status` to see the key's limit and usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path == "" {
				tc.path, tc.body = "/api/v1/chat/completions", chatBody
			}
			acct := &accountCounter{}
			h := newHarness(t, openrouter.Options{}, func(o *Options) { o.Account = acct })
			if tc.setup != nil {
				tc.setup(h)
			}
			h.fake.SetFault(tc.fault)
			direct, upstream := h.direct(t, tc.path, tc.body)
			require.Equal(t, tc.status, direct.StatusCode)

			header := map[string]string{}
			if tc.gzip {
				header["Accept-Encoding"] = "gzip"
			}
			resp, body := h.do(t, http.MethodPost, tc.path, tc.body, header)
			require.Equal(t, tc.status, resp.StatusCode, body)
			assert.Empty(t, resp.Header.Get("Content-Encoding"), "decoded to be explained")
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.Equal(t, tc.retryAfter, resp.Header.Get("Retry-After"))
			assert.Equal(t, tc.sentence, splitMessage(t, upstream, body))
			assert.EqualValues(t, 1, acct.poked.Load(), "the key's limits are read again")
			assert.EqualValues(t, 1, acct.seen.Load())
			assert.Zero(t, h.keys.replaced.Load(), "a money error never rotates the key")
			assert.Len(t, h.fake.Requests(), 2, "never retried")
		})
	}
}

// TestOtherForbiddenPassesWhole: a 403 that is not about the key's limit (a
// guardrail, a moderation flag) reaches the client byte for byte.
func TestOtherForbiddenPassesWhole(t *testing.T) {
	const answer = `{"error":{"code":403,"message":"Your input was flagged","metadata":{"reasons":["violence"]}}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(up.Close)
	acct := &accountCounter{}
	h := newHarness(t, openrouter.Options{}, func(o *Options) {
		o.Upstream, _ = url.Parse(up.URL + "/api/v1")
		o.Account = acct
	})
	resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, answer, body)
	assert.Zero(t, acct.poked.Load())
}

func TestRotateOnLimit(t *testing.T) {
	zero := 0.0
	for _, tc := range []struct {
		name      string
		on        bool
		source    string
		canRotate bool
		newLimit  bool // the rotated key is limited too
		newDead   bool // the rotated key is rejected (401)
		forbidden bool // the limit comes as a 403
		status    int
		replaced  int32
		upstream  int
		note      string
	}{
		{name: "broker key rotates once", on: true, source: "broker", canRotate: true, status: 200, replaced: 1, upstream: 2},
		{name: "broker key, 403", on: true, source: "broker", canRotate: true, forbidden: true, status: 200, replaced: 1, upstream: 2},
		{name: "broker key whose new key is limited too", on: true, source: "broker", canRotate: true, newLimit: true, status: 402, replaced: 1, upstream: 2,
			note: "the key credentials.rotate_on_limit rotated to has reached its limit too"},
		{name: "broker key whose new key is rejected: no second rotation", on: true, source: "broker", canRotate: true, newDead: true, status: 401, replaced: 1, upstream: 2},
		{name: "manual key never rotates", on: true, source: "manual", status: 402, upstream: 1,
			note: "credentials.rotate_on_limit rotates only a key a broker issued and can replace, and this one is not"},
		{name: "off", on: false, source: "broker", canRotate: true, status: 402, upstream: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys *sourcedKeys
			spend := newSpendRecorder(budget.Options{})
			h := newHarness(t, openrouter.Options{}, withSpending(spend), func(o *Options) {
				keys = &sourcedKeys{staticKeys: o.Keys.(*staticKeys), source: tc.source, canRotate: tc.canRotate}
				o.Keys, o.RotateOnLimit = keys, tc.on
			})
			if !tc.newDead {
				h.fake.AddKey(rotatedKey, "", nil)
			}
			for _, k := range []string{storedKey, rotatedKey} {
				if k == rotatedKey && (!tc.newLimit || tc.newDead) {
					continue
				}
				_, err := h.fake.SetKeyLimit(k, openrouter.KeyLimit{Limit: &zero})
				require.NoError(t, err)
			}
			h.fake.SetFault(openrouter.Fault{KeyLimitForbidden: tc.forbidden})
			keys.replace = func(rejected secret.Secret) (secret.Secret, error) {
				assert.Equal(t, storedKey, rejected.Reveal())
				return secret.New(rotatedKey), nil
			}
			resp, body := h.do(t, http.MethodPost, "/api/v1/chat/completions", chatBody, nil)
			require.Equal(t, tc.status, resp.StatusCode, body)
			assert.Equal(t, tc.replaced, keys.replaced.Load())
			reqs := h.fake.Requests()
			require.Len(t, reqs, tc.upstream)
			if tc.replaced > 0 {
				assert.Equal(t, "Bearer "+rotatedKey, reqs[1].Header.Get("Authorization"))
			}
			if tc.status == http.StatusPaymentRequired {
				assert.Contains(t, body, "run `orproxy status` to see the key's limit and usage")
			}
			if tc.newDead {
				assert.Contains(t, body, "User not found. (orproxy: OpenRouter rejected the replacement key too)", "Rejected was told")
			}
			if tc.note != "" {
				assert.Contains(t, body, "; "+tc.note+")")
			}
			row := spend.row(t)
			assert.Equal(t, tc.replaced > 0, row.Retried)
			assert.Equal(t, tc.status, row.Status)
		})
	}
}
