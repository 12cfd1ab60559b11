package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/secret"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/testenv"
)

// statusOf runs `orproxy status --json` and returns its exit code, report
// and stderr.
func statusOf(t *testing.T, cfg string) (int, statusReport, string) {
	t.Helper()
	code, out, errOut := runWithStdin(t, "", "--config", cfg, "status", "--json")
	var rep statusReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return code, rep, errOut
}

func assertOneLine(t *testing.T, errOut, want string) {
	t.Helper()
	assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
	assert.Contains(t, errOut, want)
}

func TestStatusWithoutDaemon(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cfg := configFor(t, env, "")
	past := time.Now().Add(-time.Hour)

	tests := []struct {
		name    string
		prepare func(t *testing.T)
		code    int
		usable  bool
		problem string // in stderr and the report
		check   string // in the report's key_check
	}{
		{
			name:    "none",
			prepare: func(t *testing.T) { _ = os.Remove(env.Store.Path()) },
			code:    exitFailure,
			problem: "not logged in",
		},
		{
			name: "corrupt",
			prepare: func(t *testing.T) {
				require.NoError(t, os.MkdirAll(filepath.Dir(env.Store.Path()), 0o700))
				require.NoError(t, os.WriteFile(env.Store.Path(), []byte("{not json"), 0o600))
			},
			code:    exitFailure,
			problem: "is not valid",
		},
		{
			name: "expired",
			prepare: func(t *testing.T) {
				info := env.OpenRouter.IssueKey("old", &past)
				require.NoError(t, env.Store.Save(context.Background(), &auth.Credential{Source: auth.SourceManual, APIKey: secret.New(info.Key), KeyExpiresAt: past}))
			},
			code:    exitFailure,
			problem: "expired 60 minutes ago; run `orproxy login`",
		},
		{
			name: "rejected by OpenRouter",
			prepare: func(t *testing.T) {
				cred := env.StoreKey(t, auth.SourceManual)
				require.True(t, env.OpenRouter.Revoke(cred.APIKey.Reveal()))
			},
			code:    exitFailure,
			problem: "OpenRouter rejected the key",
		},
		{
			name: "rejected broker key says to rotate",
			prepare: func(t *testing.T) {
				cred := env.LoginBroker(t)
				require.True(t, env.OpenRouter.Revoke(cred.APIKey.Reveal()))
			},
			code:    exitFailure,
			problem: "run `orproxy rotate` (or `orproxy login`)",
		},
		{
			name:    "accepted by OpenRouter",
			prepare: func(t *testing.T) { env.StoreKey(t, auth.SourceManual) },
			code:    exitOK,
			usable:  true,
			check:   "OpenRouter accepts the key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prepare(t)
			code, rep, errOut := statusOf(t, cfg)
			assert.Equal(t, tt.code, code, errOut)
			assert.Equal(t, tt.usable, rep.Usable)
			assert.Contains(t, rep.Problem, tt.problem)
			assert.Contains(t, rep.KeyCheck, tt.check)
			if tt.code == exitOK {
				assert.Empty(t, errOut)
			} else {
				assertOneLine(t, errOut, tt.problem)
			}
			if c, err := env.Store.Load(); err == nil {
				assert.NotContains(t, errOut, c.APIKey.Reveal())
			}
		})
	}
}

// An OpenRouter that cannot be reached, answers 5xx or is slow says nothing
// about the key: status exits 0 and says it could not ask.
func TestStatusKeyCheckThatCannotAnswer(t *testing.T) {
	saved := keyCheckTimeout
	keyCheckTimeout = 300 * time.Millisecond
	t.Cleanup(func() { keyCheckTimeout = saved })

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusBadGateway)
	}))
	t.Cleanup(broken.Close)

	for name, upstream := range map[string]string{
		"nobody listens": "http://127.0.0.1:1/api/v1",
		"slow":           slow.URL + "/api/v1",
		"5xx":            broken.URL + "/api/v1",
	} {
		t.Run(name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			env.StoreKey(t, auth.SourceManual)
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:1\nupstream: %s\ncredentials: {file: %s}\n", upstream, env.Store.Path())), 0o600))
			start := time.Now()
			code, rep, errOut := statusOf(t, cfg)
			assert.Equal(t, exitOK, code, errOut)
			assert.True(t, rep.Usable)
			assert.Contains(t, rep.KeyCheck, "OpenRouter could not be asked")
			assert.Contains(t, rep.KeyCheck, "not known to be rejected")
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// With a daemon answering, its verdict counts and OpenRouter is not asked
// again by the command.
func TestStatusTakesTheDaemonsVerdict(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	cred := env.StoreKey(t, auth.SourceManual)
	require.True(t, env.OpenRouter.Revoke(cred.APIKey.Reveal()))
	// The daemon validates the key at start (validate_on_start defaults to on).
	listen, stop := runDaemon(t, env, "")
	defer stop()

	// The command gets an upstream of its own that counts what reaches it:
	// the daemon asks the fake OpenRouter for GET /key on its own at start
	// (the account poller's first read), at a moment no wait here can pin
	// down, so a count there cannot say who asked.
	var commandAsked atomic.Int32
	commandUpstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		commandAsked.Add(1)
		http.Error(w, "the command must not ask OpenRouter", http.StatusTeapot)
	}))
	t.Cleanup(commandUpstream.Close)
	cmdEnv := *env
	cmdEnv.UpstreamURL = commandUpstream.URL + "/api/v1"
	cfgFile := configFor(t, &cmdEnv, "listen: "+listen+"\n")

	// The daemon checks the key at start; wait for its verdict.
	client := &http.Client{Timeout: 5 * time.Second}
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + listen + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Credential statusdoc.Credential `json:"credential"`
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Credential.LastValidation != nil
	}, 10*time.Second, 20*time.Millisecond)

	code, rep, errOut := statusOf(t, cfgFile)
	assert.Equal(t, exitFailure, code)
	assert.True(t, rep.Daemon.Answering)
	assert.Equal(t, "by the daemon", rep.KeyCheck)
	assertOneLine(t, errOut, "the daemon found that OpenRouter rejects it")
	assert.Zero(t, commandAsked.Load(), "the command asked OpenRouter itself")
	assert.NotContains(t, errOut, cred.APIKey.Reveal())
}

// The daemon's verdict is taken as it wrote it; the command reads its
// usable and problem fields, not the words of its other fields.
func TestJudgeCredentialTakesTheDaemonsVerdict(t *testing.T) {
	local := statusdoc.Credential{LoggedIn: true, Usable: true, Key: "sk-or-v1-…a1b2"}
	tests := []struct {
		name    string
		local   statusdoc.Credential
		daemon  statusdoc.Credential
		usable  bool
		problem string
	}{
		{name: "usable", local: local, daemon: statusdoc.Credential{LoggedIn: true, Usable: true}, usable: true},
		{
			name: "rejected", local: local,
			daemon:  statusdoc.Credential{LoggedIn: true, Problem: "the stored key sk-or-v1-…a1b2 is not usable: the daemon found that OpenRouter rejects it (rejected; no replacement: x); run `orproxy login`"},
			problem: "the stored key sk-or-v1-…a1b2 is not usable: the daemon found that OpenRouter rejects it (rejected; no replacement: x); run `orproxy login`",
		},
		{
			name: "rejection in words only is no verdict", local: local,
			daemon: statusdoc.Credential{LoggedIn: true, Usable: true, RotationFailures: 2, LastRotationError: "the broker issued a new key but OpenRouter rejected it too"},
			usable: true,
		},
		{name: "a daemon from before the verdict says nothing", local: local, daemon: statusdoc.Credential{LoggedIn: true}, usable: true},
		{
			name: "the file's problem comes first", local: statusdoc.Credential{Problem: "not logged in: no credential is stored; run `orproxy login`"},
			daemon:  statusdoc.Credential{Problem: "the daemon has no usable key and waits for a login at https://broker.example/start; run `orproxy login`"},
			problem: "not logged in",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := statusReport{Credential: tt.local, Daemon: daemonReport{Answering: true, doc: statusdoc.Document{Credential: tt.daemon}}}
			judgeCredential(context.Background(), &rep, config.Config{}, nil)
			assert.Equal(t, tt.usable, rep.Usable)
			if tt.usable {
				assert.Empty(t, rep.Problem)
				assert.Equal(t, "by the daemon", rep.KeyCheck)
			} else {
				assert.Contains(t, rep.Problem, tt.problem)
			}
			assert.Equal(t, rep.Usable, rep.Credential.Usable, "the credential section agrees")
			assert.Equal(t, rep.Problem, rep.Credential.Problem)
		})
	}
}
