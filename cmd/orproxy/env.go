package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/netaddr"
)

// placeholderToken is the API key a client gets when the proxy has no
// access token: SDKs want some key, and the proxy replaces whatever it gets.
const placeholderToken = "orproxy"

// envVar is one variable of a client's environment.
type envVar struct{ name, value string }

// envClients are the clients `orproxy env` knows, in the order help lists them.
var envClients = []string{"claude", "openai"}

// clientEnv is the environment that points client at the proxy that cfg
// describes. The token is the access token when one is set: the client
// sends it, the proxy checks it and drops it.
func clientEnv(client string, cfg config.Config) ([]envVar, error) {
	addr, err := netaddr.DialAddress(cfg.Listen)
	if err != nil {
		return nil, err
	}
	token := cfg.AccessToken
	if token == "" {
		token = placeholderToken
	}
	switch client {
	case "claude":
		return []envVar{
			// Claude Code appends /v1/messages itself.
			{"ANTHROPIC_BASE_URL", "http://" + addr + "/api"},
			// Sent as Authorization: Bearer, which the local guard takes.
			{"ANTHROPIC_AUTH_TOKEN", token},
			// Empty, so that Claude Code neither sends a real Anthropic key
			// nor asks whether to use one.
			{"ANTHROPIC_API_KEY", ""},
		}, nil
	case "openai":
		return []envVar{
			{"OPENAI_BASE_URL", "http://" + addr + "/api/v1"},
			{"OPENAI_API_KEY", token},
		}, nil
	}
	return nil, fmt.Errorf("unknown client; allowed: %s", joinOr(envClients))
}

// shellQuote quotes s for a POSIX shell (and fish): bare when it holds
// only characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	if s == "" {
		return `""`
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func newEnvCmd(g *globalFlags, s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "env claude|openai",
		Short: "Print the environment lines a client needs to use this proxy",
		Long: `Print export lines, quoted for a POSIX shell, that point a client at this
proxy: for claude (Claude Code) ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN and an
empty ANTHROPIC_API_KEY; for openai (the OpenAI SDKs and tools built on them)
OPENAI_BASE_URL and OPENAI_API_KEY. The token is the proxy's access_token when
one is set (so the output may hold it), else the placeholder "orproxy".
No daemon needs to run.`,
		Example: `  eval "$(orproxy env claude)" && claude
  orproxy env openai >> ~/.profile
  orproxy --config ~/work/orproxy.yaml env claude`,
		ValidArgs: envClients,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError{fmt.Errorf("env needs a client: %s", joinOr(envClients))}
			case len(args) > 1:
				return usageError{fmt.Errorf("env takes one client (got %d arguments)", len(args))}
			case !slices.Contains(envClients, args[0]):
				// Not echoed: a stray argument is often a pasted key.
				return usageError{fmt.Errorf("unknown client; allowed: %s", joinOr(envClients))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(g, cmd, nil)
			if err != nil {
				return err
			}
			if strings.HasPrefix(cfg.AccessToken, "sk-or-") {
				return errors.New("access_token looks like an OpenRouter API key and would be printed whole; choose a different access_token")
			}
			vars, err := clientEnv(args[0], cfg.Config)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, v := range vars {
				fmt.Fprintf(&b, "export %s=%s\n", v.name, shellQuote(v.value))
			}
			_, err = fmt.Fprint(s.out, b.String())
			return err
		},
	}
}
