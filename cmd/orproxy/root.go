package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/logging"
	"github.com/orproxy/orproxy/internal/version"
)

// streams are the command's standard streams, replaceable in tests.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Exit codes, part of the outside contract (docs/ARCHITECTURE.md): scripts act on them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitNotRunning is `service status` of a service that is stopped or
	// not installed, as LSB init scripts answer.
	exitNotRunning = 3
)

// usageError marks a mistake in the command line itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errNotRunning ends `service status` for a service that does not run; the
// command's output has said so already.
var errNotRunning = errors.New("the service is not running")

// exitCode maps a command's outcome to the process's exit code. It is the
// one place that does: commands return typed errors.
func exitCode(err error) int {
	var usage usageError
	var cfg *config.Error
	var child childExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &child):
		// `orproxy claude` ends as claude did.
		return child.code
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &cfg) && cfg.InCommandLine:
		// A flag's value is wrong: `--method nope`, `--listen nope`.
		return exitUsage
	case errors.Is(err, errNotRunning):
		return exitNotRunning
	case strings.HasPrefix(err.Error(), cobraUnknownCommand):
		return exitUsage
	}
	return exitFailure
}

// cobraUnknownCommand starts cobra's own, untyped, unknown command error,
// which quotes the argument. groupArgs keeps it from happening; should it
// happen anyway, it is a usage error and its text is not shown.
const cobraUnknownCommand = "unknown command \""

// execute runs the command line and maps its outcome to an exit code: usage
// 2, failure 1, each with one clear message on stderr.
func execute(args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	failed, err := root.ExecuteC()
	code := exitCode(err)
	if code == exitOK || code == exitNotRunning || errors.As(err, new(childExitError)) {
		return code
	}
	// An argument typed in the wrong place may be a key, and cobra quotes
	// what it does not understand: no message goes out unscrubbed.
	msg := logging.Scrub(err.Error(), nil)
	if strings.HasPrefix(msg, cobraUnknownCommand) {
		msg = "unknown command"
	}
	if code == exitUsage {
		help := "orproxy"
		if failed != nil {
			help = failed.CommandPath()
		}
		sep := ". "
		if strings.HasSuffix(msg, ".") || strings.HasSuffix(msg, "?") {
			sep = " "
		}
		fmt.Fprintf(s.err, "orproxy: %s%sRun '%s --help' for usage.\n", msg, sep, help)
		return code
	}
	fmt.Fprintf(s.err, "orproxy: %s\n", msg)
	return code
}

// globalFlags are the flags every command takes.
type globalFlags struct {
	configFile string
}

func newRootCmd(s streams) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "orproxy",
		Short: "A local credential proxy for OpenRouter",
		Long: `orproxy listens on 127.0.0.1:8765 in front of OpenRouter's API. Point a client's
base URL at http://127.0.0.1:8765/api/v1 with any API key: orproxy sends your
current OpenRouter key, adds OpenRouter's web search tool to chat requests, and
replaces a rejected key through your company's credential broker.`,
		Example: `  orproxy login                 # once: log in through the broker (or --method openrouter|key)
  orproxy serve                 # run the proxy here, or:
  orproxy service install       # run it as a service that starts at login
  orproxy status                # what is stored, and whether the proxy answers`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          groupArgs,
		// Runnable, so that cobra hands an unknown command to groupArgs
		// instead of quoting it; without one, the help.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate(versionTemplate)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "config file (default: "+defaultConfigHint()+"; env "+config.EnvConfig+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServeCmd(g, s),
		newLoginCmd(g, s),
		newLogoutCmd(g, s),
		newStatusCmd(g, s),
		newRotateCmd(g, s),
		newServiceCmd(g, s),
		newOpenCodeCmd(g, s),
		newClaudeCmd(g, s),
		newEnvCmd(g, s),
		newUsageCmd(g, s),
		newConfigCmd(g, s),
		newVersionCmd(s),
	)
	root.SetHelpCommand(newHelpCmd(root))
	// Made now rather than by Execute, so that an unknown shell is a usage
	// error like any other unknown command.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			needs(c, "a shell")
			describeCompletion(c)
		}
	}
	return root
}

// describeCompletion gives cobra's completion command the install lines
// people look for; each shell's own help has the details.
func describeCompletion(c *cobra.Command) {
	c.Short = "Print the shell completion script for bash, zsh, fish or powershell"
	c.Long = `Print the script that completes orproxy's commands and flags in your shell.
Install it once, then open a new shell:

  bash:  orproxy completion bash > ~/.local/share/bash-completion/completions/orproxy
  zsh:   orproxy completion zsh > "${fpath[1]}/_orproxy"
  fish:  orproxy completion fish > ~/.config/fish/completions/orproxy.fish

bash needs the bash-completion package; zsh needs "autoload -U compinit;
compinit" in ~/.zshrc. "orproxy completion SHELL --help" says more.`
	c.Example = `  source <(orproxy completion bash)       # this bash session only
  orproxy completion zsh > "${fpath[1]}/_orproxy"`
}

// groupArgs is the Args of a command that only groups others: an argument
// that names none of them is a usage error that suggests the nearest names.
// It never repeats the argument, which may be a pasted secret.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	what := "command"
	if cmd.HasParent() {
		what = cmd.Name() + " command"
	}
	return usageError{fmt.Errorf("unknown %s%s", what, didYouMean(cmd, args[0]))}
}

// needs makes group, a command that only groups others, refuse to run
// without one of them (`orproxy config`), naming them.
func needs(group *cobra.Command, what string) {
	group.Args = groupArgs
	group.RunE = func(cmd *cobra.Command, args []string) error {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usageError{fmt.Errorf("%s needs %s: %s", cmd.Name(), what, joinOr(names))}
	}
}

// joinOr lists names as "a, b or c".
func joinOr(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// didYouMean suggests the subcommands of cmd nearest to typed, as
// "; did you mean `login` or `logout`?", or "".
func didYouMean(cmd *cobra.Command, typed string) string {
	if typed == "" {
		return ""
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	var names []string
	for _, n := range cmd.SuggestionsFor(typed) {
		if q := "`" + n + "`"; !slices.Contains(names, q) && len(names) < 3 {
			names = append(names, q)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(names, " or ") + "?"
}

// newHelpCmd replaces cobra's help command, which prints an unknown topic
// back and exits 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(_ *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || target == nil {
				return usageError{errors.New("no help on that")}
			}
			if len(rest) > 0 {
				return usageError{fmt.Errorf("no help topic by that name%s", didYouMean(target, rest[0]))}
			}
			return target.Help()
		},
	}
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		// Not echoed: a stray argument is often a pasted key.
		return usageError{fmt.Errorf("%s takes no arguments (got %d)", cmd.CommandPath(), len(args))}
	}
	return nil
}

func defaultConfigHint() string {
	dir, err := config.Dir()
	if err != nil {
		return "<config dir>/orproxy/config.yaml"
	}
	return dir + "/config.yaml"
}

// loadConfig loads the configuration with the flags the user set on cmd, by
// config key.
func loadConfig(g *globalFlags, cmd *cobra.Command, flagKeys map[string]string) (*config.Loaded, error) {
	flags, names := map[string]string{}, map[string]string{}
	for flag, key := range flagKeys {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			flags[key], names[key] = f.Value.String(), "--"+flag
		}
	}
	return config.Load(config.Options{File: g.configFile, Flags: flags, FlagNames: names})
}
