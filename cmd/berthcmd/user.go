package berthcmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/config"
)

// userFlags are the flags every `berth user` subcommand takes.
type userFlags struct {
	file, cfgFile, data string
	passwordStdin       bool
}

func newUserCmd() *cobra.Command {
	var f userFlags
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users of the htpasswd file",
		Long: `Manage the users of the htpasswd file (bcrypt hashes) that basic and token
authentication check passwords against. The file is --htpasswd, else
auth.htpasswd from the configuration (--config, BERTH_CONFIG, BERTH_*), else
DATA/htpasswd. Changes are written atomically and a running berth picks them
up at once.`,
	}
	cmd.PersistentFlags().StringVar(&f.file, "htpasswd", "", "htpasswd file to edit")
	cmd.PersistentFlags().StringVar(&f.cfgFile, "config", "", "YAML config file naming auth.htpasswd")
	cmd.PersistentFlags().StringVar(&f.data, "data", "", "data directory (default ./berth-data)")

	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setPassword(cmd, f, args[0], false)
		},
	}
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setPassword(cmd, f, args[0], true)
		},
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := htpasswdPath(cmd, f)
			if err != nil {
				return usageError{err}
			}
			name := args[0]
			err = auth.EditHtpasswd(path, func(users map[string]string) error {
				if _, ok := users[name]; !ok {
					return fmt.Errorf("%w: %q in %s", auth.ErrUserUnknown, name, path)
				}
				delete(users, name)
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed user %s from %s\n", name, path)
			return nil
		},
	}
	cmd.AddCommand(add, passwd, rm)
	return cmd
}

// setPassword adds a user (existing false) or changes the password of one
// that exists.
func setPassword(cmd *cobra.Command, f userFlags, name string, existing bool) error {
	if err := auth.ValidUserName(name); err != nil {
		return usageError{err}
	}
	path, err := htpasswdPath(cmd, f)
	if err != nil {
		return usageError{err}
	}
	// Check before asking for a password that would be thrown away.
	if err := auth.EditHtpasswd(path, func(users map[string]string) error {
		return checkUser(users, name, path, existing)
	}); err != nil && !errors.Is(err, errNoChange) {
		return err
	}
	password, err := readPassword(cmd, f.passwordStdin, name)
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return usageError{err}
	}
	err = auth.EditHtpasswd(path, func(users map[string]string) error {
		if err := checkUser(users, name, path, existing); !errors.Is(err, errNoChange) {
			return err
		}
		users[name] = hash
		return nil
	})
	if err != nil {
		return err
	}
	verb := "added user"
	if existing {
		verb = "changed the password of user"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s %s in %s\n", verb, name, path)
	return nil
}

// errNoChange ends a check-only edit without writing the file.
var errNoChange = errors.New("no change")

func checkUser(users map[string]string, name, path string, existing bool) error {
	_, ok := users[name]
	switch {
	case existing && !ok:
		return fmt.Errorf("%w: %q in %s", auth.ErrUserUnknown, name, path)
	case !existing && ok:
		return fmt.Errorf("%w: %q in %s (use berth user passwd)", auth.ErrUserExists, name, path)
	}
	return errNoChange
}

// htpasswdPath finds the file to edit.
func htpasswdPath(cmd *cobra.Command, f userFlags) (string, error) {
	if f.file != "" {
		return f.file, nil
	}
	cfg := config.Default()
	cfgFile := f.cfgFile
	if cfgFile == "" {
		cfgFile = os.Getenv("BERTH_CONFIG")
	}
	if cfgFile != "" {
		if err := cfg.LoadFile(cfgFile); err != nil {
			return "", err
		}
	}
	if err := cfg.ApplyEnv(os.Environ(), "BERTH_CONFIG"); err != nil {
		return "", err
	}
	if cmd.Flags().Changed("data") {
		cfg.Data = f.data
	}
	if cfg.Auth.Htpasswd != "" {
		return cfg.Auth.Htpasswd, nil
	}
	return filepath.Join(cfg.Data, "htpasswd"), nil
}

// readPassword reads the password from stdin (--password-stdin: the first
// line) or asks twice on the terminal without echo.
func readPassword(cmd *cobra.Command, fromStdin bool, name string) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", usageError{errors.New("no password on standard input")}
		}
		return line, nil
	}
	file, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return "", usageError{errors.New("standard input is not a terminal: pass the password with --password-stdin")}
	}
	errw := cmd.ErrOrStderr()
	fmt.Fprintf(errw, "Password for %s: ", name)
	p1, err := term.ReadPassword(int(file.Fd()))
	fmt.Fprintln(errw)
	if err != nil {
		return "", err
	}
	fmt.Fprint(errw, "Repeat the password: ")
	p2, err := term.ReadPassword(int(file.Fd()))
	fmt.Fprintln(errw)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", usageError{errors.New("the passwords differ")}
	}
	return string(p1), nil
}
