package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/configs"
	"github.com/orproxy/orproxy/internal/config"
)

func newConfigCmd(g *globalFlags, s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write, locate and show the configuration",
		Long: `Write, locate and show orproxy's configuration file.

Every setting has a default, so the file is optional. Precedence:
flag > environment variable > file > default.`,
		Example: `  orproxy config init --broker https://broker.example.com
  orproxy config show`,
	}
	needs(cmd, "a command")
	cmd.AddCommand(newConfigInitCmd(g, s), newConfigPathCmd(g, s), newConfigShowCmd(g, s))
	return cmd
}

func newConfigInitCmd(g *globalFlags, s streams) *cobra.Command {
	var broker string
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write the documented config file, every key at its default",
		Long: `Write the documented config file, every key at its default with a one-line
comment, where serve reads it (--config, ORPROXY_CONFIG, or the default path).
With --broker, broker.url is set. An existing file is kept unless --force.`,
		Example: `  orproxy config init
  orproxy config init --broker https://broker.example.com
  orproxy --config ./orproxy.yaml config init --force`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			path, _, err := config.FilePath(g.configFile, os.Getenv)
			if err != nil {
				return fmt.Errorf("cannot find the user config directory (%v); name the file with --config", err)
			}
			data := configs.Example()
			if broker != "" {
				if err := config.ValidateServiceURL(broker); err != nil {
					return usageError{fmt.Errorf("--broker %w", err)}
				}
				if data, err = config.SetInFile(data, "broker.url", broker); err != nil {
					return fmt.Errorf("set broker.url in the example config: %w", err)
				}
			}
			// What is written must be what serve accepts.
			c, err := config.Decode(path, data)
			if err == nil {
				if problems := c.Validate(); len(problems) > 0 {
					err = errors.New(strings.Join(problems, "; "))
				}
			}
			if err != nil {
				return fmt.Errorf("the config to write is not valid: %w", err)
			}
			replaced, err := writeConfigFile(path, data, force)
			if err != nil {
				return err
			}
			verb := "Wrote"
			if replaced {
				verb = "Replaced"
			}
			fmt.Fprintf(s.out, "%s %s: every key at its default", verb, path)
			if broker != "" {
				fmt.Fprintf(s.out, ", broker.url %s", broker)
			}
			fmt.Fprintln(s.out, ". `orproxy config show` lists the settings in effect.")
			return nil
		},
	}
	cmd.Flags().StringVar(&broker, "broker", "", "set broker.url, the company credential broker's base URL")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}

// writeConfigFile writes data to path with mode 0600, creating missing
// directories with 0700: the file may later hold access_token. Without
// force an existing file is an error; with it the file is replaced whole
// (a symbolic link's target, so a linked dotfile stays linked).
func writeConfigFile(path string, data []byte, force bool) (replaced bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		if !force {
			return false, fmt.Errorf("%s already exists; edit it, or run `orproxy config init --force` to replace it", path)
		}
		if target, err := filepath.EvalSymlinks(path); err == nil {
			path = target
		}
		replaced = true
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("cannot create the config directory: %w", err)
	}
	if !replaced {
		// O_EXCL: a file that appeared since the check above is kept.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("%s already exists; edit it, or run `orproxy config init --force` to replace it", path)
		}
		if err != nil {
			return false, fmt.Errorf("cannot create the config file: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			os.Remove(path)
			return false, fmt.Errorf("cannot write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return false, fmt.Errorf("cannot write %s: %w", path, err)
		}
		return false, nil
	}
	// Replace through a temporary file and a rename, so the old file stays
	// whole until the new one is.
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return false, fmt.Errorf("cannot write the config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("cannot write the config file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("cannot write the config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("cannot write the config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("cannot replace %s: %w", path, err)
	}
	return true, nil
}

func newConfigPathCmd(g *globalFlags, s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "path",
		Short: "Print the config file serve reads, and say whether it exists",
		Long: `Print the config file serve reads: --config, else ORPROXY_CONFIG, else the
default path. Standard output holds only the path; whether the file exists
is said on standard error.`,
		Example: `  orproxy config path
  "$EDITOR" "$(orproxy config path)"`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			path, explicit, err := config.FilePath(g.configFile, os.Getenv)
			if err != nil {
				return fmt.Errorf("cannot find the user config directory (%v); name the file with --config", err)
			}
			fmt.Fprintln(s.out, path)
			named := "the default path"
			switch {
			case g.configFile != "":
				named = "named by --config"
			case explicit:
				named = "named by " + config.EnvConfig
			}
			_, err = os.Stat(path)
			switch {
			case err == nil:
				fmt.Fprintf(s.err, "(%s; the file exists)\n", named)
			case errors.Is(err, fs.ErrNotExist) && explicit:
				fmt.Fprintf(s.err, "(%s; the file does not exist, so serve stops with an error: create it with `orproxy config init`)\n", named)
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(s.err, "(%s; the file does not exist, so serve uses the built-in defaults: `orproxy config init` writes it)\n", named)
			default:
				fmt.Fprintf(s.err, "(%s; the file cannot be checked: %v)\n", named, err)
			}
			return nil
		},
	}
}

// configReport is `orproxy config show --json`. Secrets are redacted.
type configReport struct {
	// File is the config file serve reads; FileRead says it was there.
	File     string           `json:"file"`
	FileRead bool             `json:"file_read"`
	Settings []config.Setting `json:"settings"`
}

func newConfigShowCmd(g *globalFlags, s streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the settings in effect and where each comes from",
		Long: `Show every setting serve would run with and where it comes from: default,
file (with its line), environment (with the variable) or flag. serve's
flags are accepted, to see their effect. Secrets are redacted: the access
token and start header values show only their last characters, URL
passwords are replaced.`,
		Example: `  orproxy config show
  orproxy config show --listen 127.0.0.1:9000
  orproxy config show --json | jq '.settings[] | select(.key == "listen")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g, cmd, serveFlags)
			if err != nil {
				return err
			}
			rep := configReport{File: cfg.File, FileRead: cfg.File != "", Settings: cfg.Settings()}
			if rep.File == "" {
				rep.File, _, _ = config.FilePath(g.configFile, os.Getenv)
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printConfig(s.out, rep)
			return nil
		},
	}
	addServeFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printConfig(w io.Writer, rep configReport) {
	state := "read"
	if !rep.FileRead {
		state = "not found: defaults, environment and flags only"
	}
	if rep.File == "" {
		fmt.Fprintf(w, "Config file: none (%s)\n\n", state)
	} else {
		fmt.Fprintf(w, "Config file: %s (%s)\n\n", rep.File, state)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, st := range rep.Settings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Key, showValue(st.Value), showSource(st.Source))
	}
	_ = tw.Flush()
}

func showValue(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return `""`
		}
		return v
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// showSource names a source in the table; the file's path is in the
// heading, so only its line is repeated.
func showSource(src config.Source) string {
	if src.Layer == config.LayerFile {
		if i := strings.LastIndex(src.Where, ":"); i >= 0 {
			return "file, line " + src.Where[i+1:]
		}
	}
	return src.String()
}
