// Package berthcmd is berth's command tree (serve, gc, migrate, user and the
// client commands). It is importable so that a custom build can register its
// own storage drivers or metadata stores before running it:
//
//	func main() {
//		storage.Register("mydriver", myFactory)
//		berthcmd.Execute()
//	}
package berthcmd

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/internal/builtin"
)

// Exit codes.
const (
	exitFailure = 1
	exitUsage   = 2
)

type usageError struct{ error }

// NewRoot returns the berth command with every subcommand. It registers
// the built-in storage drivers and metadata stores whose names are still
// free: register custom ones before calling it (or Execute).
func NewRoot() *cobra.Command {
	builtin.Register()
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
	return root
}

// Execute runs the berth command with the process's arguments and exits
// with the code of the outcome (see the exit code table in the help).
func Execute() {
	if err := NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailure)
	}
}
