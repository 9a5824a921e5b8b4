// Command berth is a container registry.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitFailure = 1
	exitUsage   = 2
)

type usageError struct{ error }

func main() {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth is a container registry",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd())
	root.AddCommand(newUserCmd())
	root.AddCommand(newMigrateCmd())
	root.AddCommand(newGCCmd())
	addClientCommands(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailure)
	}
}
