package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/opencode"
	"github.com/orproxy/orproxy/service"
)

// serviceAction is one `orproxy service` subcommand.
type serviceAction struct {
	name, short string
	run         func(context.Context, service.Options) (fmt.Stringer, error)
}

// serviceActions is a variable so tests can see what the command line hands
// to package service without a service manager.
var serviceActions = []serviceAction{
	{"install", "Install the service, start it and check that it answers", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Install(ctx, o) }},
	{"uninstall", "Stop and remove the service", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Uninstall(ctx, o) }},
	{"start", "Start the service", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Start(ctx, o) }},
	{"stop", "Stop the service", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Stop(ctx, o) }},
	{"restart", "Restart the service", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Restart(ctx, o) }},
	{"status", "Say whether the service is installed, running and answering", func(ctx context.Context, o service.Options) (fmt.Stringer, error) { return service.Status(ctx, o) }},
}

func newServiceCmd(g *globalFlags, s streams) *cobra.Command {
	var system bool
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Install and control orproxy as a service that starts at login",
		Long: `Install and control orproxy as a per-user service (a systemd user unit on
Linux, a LaunchAgent on macOS), or with --system a system-wide one. The
service runs "orproxy serve --config <file>" and restarts on failure.

Install from a stable path (make install, or a release binary), not from a
checkout's bin/, which make clean removes. The ORPROXY_* variables set in
the installing shell are carried into the service.`,
		Example: `  orproxy service install
  orproxy service status
  sudo orproxy service install --system   # a system-wide service
  orproxy service uninstall`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("service needs an action: install, uninstall, start, stop, restart or status")}
			}
			// Not echoed: a stray argument may be a pasted secret.
			return usageError{fmt.Errorf("unknown service action (use install, uninstall, start, stop, restart or status)%s", didYouMean(cmd, args[0]))}
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.PersistentFlags().BoolVar(&system, "system", false, "the system-wide service instead of the per-user one (needs root)")
	options := func() service.Options {
		// A file the user names is resolved as serve resolves it ("~/"
		// included); the default is left to service.
		var file string
		if g.configFile != "" || os.Getenv(config.EnvConfig) != "" {
			file, _, _ = config.FilePath(g.configFile, os.Getenv)
		}
		return service.Options{System: system, ConfigFile: file}
	}
	for _, a := range serviceActions {
		cmd.AddCommand(&cobra.Command{
			Use:     a.name,
			Short:   a.short,
			Example: serviceExample(a.name),
			Args:    noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				o := options()
				res, err := a.run(cmd.Context(), o)
				if a.name == "uninstall" && errors.Is(err, service.ErrNotInstalled) {
					// Removing what is not there is not a failure.
					fmt.Fprintf(s.out, "Nothing to remove: orproxy is not installed as a %s.\n", serviceKind(o.System))
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(s.out, res.String())
				if st, ok := res.(*service.StatusResult); ok {
					return statusOutcome(st)
				}
				return nil
			},
		})
	}
	return cmd
}

// serviceExample is the Examples block of `orproxy service <action>`.
func serviceExample(action string) string {
	ex := "  orproxy service " + action + "\n  sudo orproxy service " + action + " --system   # the system-wide service"
	switch action {
	case "install":
		ex += "\n  make install && orproxy service install   # from a checkout: a stable copy first" +
			"\n  ORPROXY_LISTEN=127.0.0.1:9000 orproxy service install   # carried into the service"
	case "status":
		ex += "\n  orproxy service status || orproxy service start"
	}
	return ex
}

func serviceKind(system bool) string {
	if system {
		return "system service"
	}
	return "user service"
}

// statusOutcome turns `service status` into its exit status: 0 when the
// service runs, 3 (errNotRunning) when it is stopped, failed or not
// installed, and a failure when the service manager could not say.
func statusOutcome(st *service.StatusResult) error {
	switch {
	case !st.Installed, st.State == service.StateStopped, st.State == service.StateFailed:
		return errNotRunning
	case st.State == service.StateRunning:
		return nil
	}
	detail := st.StateDetail
	if detail == "" {
		detail = "it gave no state"
	}
	return fmt.Errorf("%s did not say whether the orproxy %s runs: %s", st.Manager, serviceKind(st.System), detail)
}

func newOpenCodeCmd(g *globalFlags, s streams) *cobra.Command {
	var write string
	cmd := &cobra.Command{
		Use:   "opencode",
		Short: "Print (or merge into a file) an OpenCode provider that points at this proxy",
		Long: `Print an OpenCode config fragment with an "orproxy" provider whose baseURL is
this proxy's /api/v1 and whose models come from the running daemon (a short
built-in list when no daemon answers). With --write FILE, merge the provider
into an existing opencode.json or opencode.jsonc, keeping every other key and
a backup of the file as FILE.bak-<UTC time> (the last five are kept).`,
		Example: `  orproxy opencode
  orproxy opencode --write ~/.config/opencode/opencode.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g, cmd, nil)
			if err != nil {
				return err
			}
			r, err := opencode.Fragment(cmd.Context(), opencode.Options{Listen: cfg.Listen, AccessToken: cfg.AccessToken})
			if err != nil {
				return err
			}
			if note := r.Note(); note != "" {
				fmt.Fprintln(s.err, note)
			}
			if write == "" {
				_, err = s.out.Write(r.JSON())
				return err
			}
			wr, err := opencode.WriteFile(write, r)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, wr.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&write, "write", "", "merge the provider into this opencode.json / opencode.jsonc")
	return cmd
}
