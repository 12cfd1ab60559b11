package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/service"
)

// replaceProcess makes `orproxy claude` exec Claude Code in its own place
// (Unix), so that the terminal, job control, signals and the exit code are
// Claude Code's with no orproxy process in between. Windows has no exec;
// there, and in tests that run commands in-process, Claude Code runs as a
// child whose exit code orproxy passes on.
var replaceProcess = runtime.GOOS != "windows"

// childExitError ends orproxy with the exit code of the program it ran,
// which has spoken for itself on stderr.
type childExitError struct{ code int }

func (e childExitError) Error() string { return fmt.Sprintf("claude exited with status %d", e.code) }

func newClaudeCmd(g *globalFlags, s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "claude [-- ARGS…]",
		Short: "Run Claude Code (claude) against this proxy",
		Long: `Run Claude Code (the claude command) with its requests going to this proxy:
ANTHROPIC_BASE_URL is the daemon's /api, ANTHROPIC_AUTH_TOKEN the proxy's
access_token (or the placeholder "orproxy"), and ANTHROPIC_API_KEY is empty, so
no Anthropic key of yours is used. ARGS after -- go to claude as they are; its
standard input, output and error are this terminal's, and orproxy exits with
claude's exit code.

A daemon must answer at the configured listen address (orproxy serve, or
orproxy service start). Models are OpenRouter's ids, such as
anthropic/claude-sonnet-4.6: pass --model after --, or set ANTHROPIC_MODEL.
To set up a shell or an IDE instead, see orproxy env claude.`,
		Example: `  orproxy claude
  orproxy claude -- --model anthropic/claude-sonnet-4.6
  orproxy claude -- -p "summarise README.md" --model anthropic/claude-sonnet-4.6
  ANTHROPIC_MODEL=anthropic/claude-opus-4.1 orproxy claude -- --continue`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(g, cmd, nil)
			if err != nil {
				return err
			}
			vars, err := clientEnv("claude", cfg.Config)
			if err != nil {
				return err
			}
			path, err := exec.LookPath("claude")
			if err != nil {
				return errors.New("claude (Claude Code) is not on PATH; install it with npm install -g @anthropic-ai/claude-code")
			}
			addr, err := netaddr.DialAddress(cfg.Listen)
			if err != nil {
				return err
			}
			if err := daemonAnswers(cmd.Context(), addr); err != nil {
				return err
			}
			return runClaude(path, args, withEnv(os.Environ(), vars), s)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w; Claude Code's own flags go after --, as in: orproxy claude -- -p \"hi\"", err)}
	})
	return cmd
}

// daemonAnswers asks GET /healthz of the daemon at addr: Claude Code
// pointed at nothing would only retry, and then fail with a connection
// error that does not say what to do.
func daemonAnswers(ctx context.Context, addr string) error {
	origin := "http://" + addr
	err := service.CheckHealth(ctx, addr)
	var answer *service.AnswerError
	switch {
	case errors.As(err, &answer):
		return fmt.Errorf("something answers at %s, but not like orproxy (GET /healthz: %s); check listen in the config", origin, answer.Status)
	case err != nil:
		return fmt.Errorf("no orproxy daemon answers at %s (%s); start it with `orproxy serve` or `orproxy service start`", origin, shortNetError(err))
	}
	return nil
}

// withEnv is environ with vars set, each replacing any value it had: the
// user's own ANTHROPIC_API_KEY must not reach Claude Code.
func withEnv(environ []string, vars []envVar) []string {
	out := make([]string, 0, len(environ)+len(vars))
	for _, kv := range environ {
		if !slices.ContainsFunc(vars, func(v envVar) bool { return sameEnvName(kv, v.name) }) {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.name+"="+v.value)
	}
	return out
}

// sameEnvName reports whether the NAME=value entry kv sets name; Windows
// treats names without regard to case.
func sameEnvName(kv, name string) bool {
	if len(kv) <= len(name) || kv[len(name)] != '=' {
		return false
	}
	if runtime.GOOS == "windows" {
		return strings.EqualFold(kv[:len(name)], name)
	}
	return kv[:len(name)] == name
}

// runClaude runs Claude Code at path with args and env, connected to s.
func runClaude(path string, args, env []string, s streams) error {
	if replaceProcess {
		err := syscall.Exec(path, append([]string{path}, args...), env)
		return fmt.Errorf("starting %s: %w", path, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.in, s.out, s.err
	// Ctrl-C reaches Claude Code from the terminal itself; orproxy stays
	// to pass on its exit code.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code := exit.ExitCode()
		if code <= 0 {
			code = exitFailure // ended by a signal
		}
		return childExitError{code}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", path, err)
	}
	return nil
}
