package berthcmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/service"
)

// Exit codes of the client commands, beyond exitFailure and exitUsage.
const (
	exitNotFound     = 3
	exitUnauthorized = 4
)

// exitCodesHelp is the exit code table shown in the help of berth and of each command.
const exitCodesHelp = `Exit codes:
  0  success
  1  failure (unreachable registry, TLS or digest errors, ...)
  2  usage: unknown command, bad arguments or flags, malformed reference
  3  not found: repository, tag, manifest or blob
  4  unauthorized or denied: no, wrong or insufficient credentials
  5  berth fsck found problems`

// addClientCommands adds the registry client commands (login, logout, pull, push, copy,
// ls, tags, inspect, rm, search) to root.
func addClientCommands(root *cobra.Command) {
	(&cliApp{exit: os.Exit, stdin: os.Stdin}).register(root)
}

// register adds the client commands of a to root.
func (a *cliApp) register(root *cobra.Command) {
	if root.Long == "" {
		root.Long = root.Short + "."
	}
	root.Long += "\n\nThe client commands (login, pull, push, copy, ls, tags, inspect, rm, search)\n" +
		"talk to any registry that speaks the distribution API.\n\n" + exitCodesHelp
	for _, cmd := range []*cobra.Command{
		a.loginCmd(), a.logoutCmd(),
		a.pullCmd(), a.pushCmd(), a.copyCmd(),
		a.lsCmd(), a.tagsCmd(), a.inspectCmd(), a.rmCmd(), a.searchCmd(),
	} {
		root.AddCommand(cmd)
	}
}

// cliApp is what the client commands share: the flags of the command that runs, and how
// the process ends.
type cliApp struct {
	flags clientFlags
	exit  func(code int)
	stdin io.Reader
}

// Groups of client flags: each command takes the groups it uses, so its help lists only
// those (--json always).
const (
	// flagsRegistry: how registries are reached (--client-config, --certs-dir,
	// --insecure-registry, --insecure, --resolve, --debug).
	flagsRegistry = 1 << iota
	// flagsCredentials: where credentials are (--docker-config).
	flagsCredentials
	// flagsMirrors: Docker Hub mirrors, for the commands that read from registries.
	flagsMirrors
	// flagsForeign: --allow-nondistributable-artifacts, for the commands that write images.
	flagsForeign
)

// clientCommand finishes a client command: the flag groups it uses, usage errors for bad
// flags and arguments, and run wrapped so a failure prints its cause and exits with the
// code of its category.
func (a *cliApp) clientCommand(cmd *cobra.Command, groups int, nargs cobra.PositionalArgs, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	if cmd.Long == "" {
		cmd.Long = cmd.Short + "."
	}
	cmd.Long += "\n\n" + exitCodesHelp
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if err := nargs(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.flags.register(cmd.Flags(), groups)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		a.flags.stderr = cmd.ErrOrStderr()
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		cmd.SetContext(ctx)
		err := run(cmd, args)
		if err == nil {
			return nil
		}
		code := exitCode(err)
		a.report(cmd.ErrOrStderr(), err, code)
		stop()
		a.exit(code)
		return nil // reached only when exit returns (tests)
	}
	return cmd
}

// report prints a failure: "berth: cause", or a JSON object with --json.
func (a *cliApp) report(w io.Writer, err error, code int) {
	msg := strings.ReplaceAll(err.Error()+hint(err), "\n", "; ")
	if a.flags.json {
		b, _ := json.Marshal(struct {
			Error    string `json:"error"`
			Category string `json:"category"`
			ExitCode int    `json:"exitCode"`
		}{msg, category(err, code), code})
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintln(w, "berth:", msg)
}

// exitCode maps an error to the exit code of its category.
func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidReference):
		return exitUsage
	case client.IsNotRegistry(err):
		// The address answered, as something else than a registry: a 404 there says
		// nothing of a repository.
		return exitFailure
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrDenied):
		return exitUnauthorized
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	}
	return exitFailure
}

// category names an error's category for --json output.
func category(err error, code int) string {
	switch {
	case code == exitUsage:
		return "usage"
	case errors.Is(err, client.ErrDenied):
		return "denied"
	case code == exitUnauthorized:
		return "unauthorized"
	case code == exitNotFound:
		return "not-found"
	case errors.Is(err, client.ErrDigestMismatch):
		return "digest-mismatch"
	case errors.Is(err, client.ErrReferenced):
		return "referenced"
	case client.IsNotRegistry(err):
		return "not-a-registry"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return "error"
}

// hint adds what to do about failures whose cause alone does not say it.
func hint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &verifyErr), errors.As(err, &hostErr):
		return " (the registry's certificate is not trusted: put its CA certificate in CERTS_DIR/HOST:PORT/ca.crt, see --certs-dir, or name the registry with --insecure-registry, or --insecure)"
	case strings.Contains(err.Error(), "tls: certificate required"), strings.Contains(err.Error(), "tls: bad certificate"):
		return " (the registry wants a client certificate: put client.cert and client.key in CERTS_DIR/HOST:PORT/, see --certs-dir)"
	case strings.Contains(err.Error(), "https://") &&
		(strings.Contains(err.Error(), "connection reset by peer") || strings.Contains(err.Error(), "broken pipe") ||
			strings.Contains(err.Error(), "http2: client conn could not be established")):
		// With TLS 1.3 a server that wants a client certificate may close
		// the connection before its alert reaches the client (or, on HTTP/2,
		// before the connection is set up, which hides the alert).
		return " (the registry closed the TLS connection: if it wants a client certificate, put client.cert and client.key in CERTS_DIR/HOST:PORT/, see --certs-dir)"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return " (the registry speaks plain HTTP: name it with --insecure-registry, or --insecure)"
	case client.IsNotRegistry(err):
		return " (something answers at that address, but not a registry's API at /v2/: check the host and port)"
	case errors.Is(err, client.ErrReferenced):
		var re *client.RegistryError
		if errors.As(err, &re) {
			return " (the registry keeps manifests that a tagged index lists: delete or retag the index first)"
		}
	case errors.Is(err, client.ErrUnauthorized):
		var ce *client.Error
		if errors.As(err, &ce) && ce.Op == "login" {
			return " (wrong user name or password)"
		}
		return " (log in with `berth login`)"
	}
	return ""
}

// clientFlags are the flags of the client commands (each takes the groups it uses).
type clientFlags struct {
	json         bool
	debug        bool
	configFile   string
	dockerConfig string
	certsDir     string
	insecure     []string
	insecureAll  bool
	mirrors      []string
	allowForeign []string
	resolve      []string

	// stderr receives debug lines and warnings.
	stderr io.Writer
}

func (f *clientFlags) register(fs *pflag.FlagSet, groups int) {
	fs.BoolVar(&f.json, "json", false, "print machine-readable JSON results (and no progress)")
	if groups&flagsRegistry != 0 {
		fs.StringVar(&f.configFile, "client-config", "", "registry settings file: a Docker daemon.json (registry-mirrors, insecure-registries, allow-nondistributable-artifacts; other keys are ignored), JSON or YAML; default "+defaultClientConfigHelp)
		fs.StringVar(&f.certsDir, "certs-dir", "", "certificates directory: HOST:PORT/ca.crt, client.cert, client.key (default "+service.DefaultCertsDir+"; $XDG_CONFIG_HOME/docker/certs.d under RootlessKit)")
		fs.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry (host[:port] or CIDR) reached without TLS verification, and over HTTP if HTTPS fails; repeatable (loopback always is)")
		fs.BoolVar(&f.insecureAll, "insecure", false, "reach every registry of this command without TLS verification, and over HTTP if HTTPS fails (Docker Hub excepted)")
		fs.StringArrayVar(&f.resolve, "resolve", nil, "HOST:PORT:ADDR: connect to ADDR for HOST:PORT instead of resolving HOST (as curl's --resolve); repeatable")
		fs.BoolVar(&f.debug, "debug", false, "print debug lines on standard error (settings read, ignored configuration keys)")
	}
	if groups&flagsCredentials != 0 {
		fs.StringVar(&f.dockerConfig, "docker-config", "", "directory of the Docker config file holding credentials (default $DOCKER_CONFIG or ~/.docker)")
	}
	if groups&flagsMirrors != 0 {
		fs.StringArrayVar(&f.mirrors, "registry-mirror", nil, "Docker Hub mirror URL (a path is allowed), tried before Docker Hub for pulls; repeatable")
	}
	if groups&flagsForeign != 0 {
		fs.StringArrayVar(&f.allowForeign, "allow-nondistributable-artifacts", nil, "registry (host[:port] or CIDR) that receives non-distributable (foreign) layers, which are otherwise left to their URLs; repeatable")
	}
}

// debugf prints a debug line with --debug.
func (f *clientFlags) debugf(format string, args ...any) {
	if f.debug && f.stderr != nil {
		fmt.Fprintf(f.stderr, "debug: "+format+"\n", args...)
	}
}

// warnf prints a warning (never with --json, whose standard error is one JSON object).
func (f *clientFlags) warnf(format string, args ...any) {
	if !f.json && f.stderr != nil {
		fmt.Fprintf(f.stderr, "warning: "+format+"\n", args...)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
