package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/version"
)

// versionTemplate is what `orproxy --version` prints; `orproxy version`
// prints the same.
const versionTemplate = "orproxy {{.Version}}\n"

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version (also: orproxy --version)",
		Example: "  orproxy version\n  orproxy --version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(s.out, "orproxy %s\n", version.String())
			return nil
		},
	}
}
