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
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/internal/builtin"
)

// Exit codes, the same for every command (see exitCodesHelp).
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
	root.AddCommand(newFsckCmd())
	addClientCommands(root)
	addVersion(root)
	usageErrors(root)
	return root
}

// usageErrors makes every usage mistake under cmd a usageError (exit code 2): bad flags,
// wrong arguments, and unknown subcommands, which cobra would otherwise answer with help
// and success (for a command that only groups others) or with a plain error.
func usageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	switch {
	case cmd.HasSubCommands() && !cmd.Runnable():
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usageError{fmt.Errorf("%s; see %s --help", msg, c.CommandPath())}
		}
	case cmd.Args != nil:
		args := cmd.Args
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err
				}
				return usageError{err}
			}
			return nil
		}
	}
	if !strings.Contains(cmd.Long, "Exit codes:") && cmd.Name() != "help" && cmd.Name() != "completion" {
		if cmd.Long == "" {
			cmd.Long = cmd.Short + "."
		}
		cmd.Long += "\n\n" + exitCodesHelp
	}
	for _, c := range cmd.Commands() {
		usageErrors(c)
	}
}

// exitCodeOf is the exit code of an error that reached Execute.
func exitCodeOf(err error) int {
	var ue usageError
	var pf problemsFound
	if errors.As(err, &pf) {
		return exitProblems
	}
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "required flag") ||
		strings.HasPrefix(err.Error(), "if any flags in the group") || strings.HasPrefix(err.Error(), "unknown command") {
		return exitUsage
	}
	return exitFailure
}

// Execute runs the berth command with the process's arguments and exits
// with the code of the outcome (see the exit code table in the help).
func Execute() {
	if err := NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(exitCodeOf(err))
	}
}
