package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/logging"
)

// streams are the command's standard streams, replaceable in tests.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Exit codes of DESIGN.md.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks a mistake in the command line itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// execute runs the command line and maps its outcome to an exit code, in one
// place: usage 2, failure 1, with one clear message on stderr.
func execute(args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	failed, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	// An argument typed in the wrong place may be a key, and cobra quotes
	// what it does not understand: no message goes out unscrubbed.
	msg := logging.Scrub(err.Error(), nil)
	if strings.HasPrefix(msg, "unknown command") {
		// cobra quotes the argument, which may be any pasted secret.
		msg = "unknown command"
	}
	var usage usageError
	if errors.As(err, &usage) || msg == "unknown command" {
		help := "orproxy"
		if failed != nil {
			help = failed.CommandPath()
		}
		fmt.Fprintf(s.err, "orproxy: %s\nRun '%s --help' for usage.\n", msg, help)
		return exitUsage
	}
	fmt.Fprintf(s.err, "orproxy: %s\n", msg)
	return exitFailure
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
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
	}
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
		newVersionCmd(s),
	)
	return root
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
	flags := map[string]string{}
	for flag, key := range flagKeys {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			flags[key] = f.Value.String()
		}
	}
	return config.Load(config.Options{File: g.configFile, Flags: flags})
}
