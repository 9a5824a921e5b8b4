package berthcmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/service"
)

// registryArg normalises the REGISTRY argument of login and logout ("https://host:5000/"
// is host:5000); none is Docker Hub.
func registryArg(args []string) (string, error) {
	if len(args) == 0 {
		return service.DefaultDomain, nil
	}
	r := credentials.NormalizeHost(args[0])
	if r == "" || strings.ContainsAny(r, " \t") {
		return "", usageError{fmt.Errorf("%w: registry %q", client.ErrInvalidReference, args[0])}
	}
	if r == service.IndexHostname {
		return service.DefaultDomain, nil
	}
	return r, nil
}

// storeName says where credentials for registry go: a credential helper, or the file.
func storeName(f *credentials.ConfigFile, registry string) string {
	c, err := f.Load()
	if err == nil {
		addr := credentials.ServerAddress(registry)
		h := c.CredsStore
		for k, v := range c.CredHelpers {
			if credentials.NormalizeHost(k) == credentials.NormalizeHost(addr) {
				h = v
			}
		}
		if h != "" {
			return f.HelperPrefix + h
		}
	}
	return f.Path()
}

func (a *cliApp) loginCmd() *cobra.Command {
	var user, pass string
	var passStdin, quiet bool
	cmd := &cobra.Command{
		Use:   "login [REGISTRY]",
		Short: "Log in to a registry and store the credentials",
		Long: `Check credentials against REGISTRY (Docker Hub if none), through its Bearer
token service or Basic authentication, and store them where Docker keeps them:
the credential helper the Docker config file names for the registry
(credHelpers, credsStore), or the file's "auths". When the token service hands
out a refresh token, that is stored instead of the password.`,
		Example: `  berth login registry.example -u alice --password-stdin < password.txt`,
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name (asked on a terminal if not given)")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password (visible to other users of the machine: prefer --password-stdin)")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials, cobra.MaximumNArgs(1), func(cmd *cobra.Command, args []string) error {
		registry, err := registryArg(args)
		if err != nil {
			return err
		}
		if pass != "" && passStdin {
			return usageError{errors.New("--password and --password-stdin exclude each other")}
		}
		interactive := isTerminal(a.stdin) && !a.flags.json
		if pass != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), "warning: a password on the command line is visible to other users; use --password-stdin")
		}
		if user == "" {
			if !interactive || passStdin {
				return usageError{errors.New("--username is required")}
			}
			if user, err = prompt(cmd.ErrOrStderr(), a.stdin, "Username: "); err != nil {
				return err
			}
		}
		switch {
		case passStdin:
			b, err := io.ReadAll(io.LimitReader(a.stdin, 1<<20))
			if err != nil {
				return fmt.Errorf("reading the password: %w", err)
			}
			pass = strings.TrimRight(string(b), "\r\n")
		case pass == "" && interactive:
			fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
			b, err := term.ReadPassword(int(a.stdin.(*os.File).Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("reading the password: %w", err)
			}
			pass = string(b)
		}
		if pass == "" {
			return usageError{errors.New("a password is required: --password-stdin, or a terminal to type it")}
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		creds, err := c.Login(cmd.Context(), registry, credentials.Credentials{Username: user, Password: pass})
		if err != nil {
			return err
		}
		store := a.flags.credentialStore()
		if err := store.Store(cmd.Context(), registry, creds); err != nil {
			return fmt.Errorf("login %s: storing the credentials: %w", registry, err)
		}
		where := storeName(store, registry)
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), map[string]string{"registry": registry, "username": user, "store": where})
		}
		if !quiet {
			fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded (credentials in %s)\n", where)
		}
		return nil
	})
}

// prompt reads one line from in after writing the question to w.
func prompt(w io.Writer, in io.Reader, question string) (string, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func (a *cliApp) logoutCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Remove the stored credentials of a registry",
		Long: `Remove the credentials of REGISTRY (Docker Hub if none) from its credential
helper and from the Docker config file.`,
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return a.clientCommand(cmd, flagsCredentials, cobra.MaximumNArgs(1), func(cmd *cobra.Command, args []string) error {
		registry, err := registryArg(args)
		if err != nil {
			return err
		}
		store := a.flags.credentialStore()
		if err := store.Erase(cmd.Context(), registry); err != nil {
			return fmt.Errorf("logout %s: %w", registry, err)
		}
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), map[string]string{"registry": registry})
		}
		if !quiet {
			fmt.Fprintf(cmd.OutOrStdout(), "Removed the credentials of %s\n", registry)
		}
		return nil
	})
}
