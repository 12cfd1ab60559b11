package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/internal/version"
)

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(s.out, "orproxy", version.String())
			return nil
		},
	}
}
