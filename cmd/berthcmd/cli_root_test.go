package berthcmd

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/transport"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	regErr := func(status int, code string) error {
		return &client.Error{Op: "pull", Ref: "r", Err: &client.RegistryError{StatusCode: status, Errors: []transport.ErrorDetail{{Code: code}}}}
	}
	for _, tc := range []struct {
		name string
		err  error
		code int
		cat  string
	}{
		{"usage", usageError{errors.New("bad flag")}, exitUsage, "usage"},
		{"malformed reference", fmt.Errorf("x: %w", client.ErrInvalidReference), exitUsage, "usage"},
		{"manifest unknown", regErr(404, "MANIFEST_UNKNOWN"), exitNotFound, "not-found"},
		{"name unknown", regErr(404, "NAME_UNKNOWN"), exitNotFound, "not-found"},
		{"unauthorized", regErr(401, "UNAUTHORIZED"), exitUnauthorized, "unauthorized"},
		{"denied", regErr(403, "DENIED"), exitUnauthorized, "denied"},
		{"oauth invalid_grant", &client.Error{Op: "login", Err: &client.RegistryError{StatusCode: 400, Errors: []transport.ErrorDetail{{Message: "invalid_grant"}}}}, exitUnauthorized, "unauthorized"},
		{"other 400", regErr(400, "MANIFEST_INVALID"), exitFailure, "error"},
		{"digest mismatch", fmt.Errorf("blob: %w", client.ErrDigestMismatch), exitFailure, "digest-mismatch"},
		{"server error", regErr(500, "UNKNOWN"), exitFailure, "error"},
		{"joined endpoints", errors.Join(errors.New("https: refused"), regErr(404, "")), exitNotFound, "not-found"},
		{"interrupted", context.Canceled, exitFailure, "interrupted"},
		{"not a registry", &client.Error{Op: "ping", Err: &transport.PingResponseError{URL: "http://h/v2/", StatusCode: 404,
			Err: &client.RegistryError{StatusCode: 404}}}, exitFailure, "not-a-registry"},
		{"referenced", &client.Error{Op: "delete manifest", Err: fmt.Errorf("%w: %w", client.ErrReferenced, regErr(409, "MANIFEST_REFERENCED"))}, exitFailure, "referenced"},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("%s: exit code %d, want %d", tc.name, got, tc.code)
		}
		if got := category(tc.err, exitCode(tc.err)); got != tc.cat {
			t.Errorf("%s: category %q, want %q", tc.name, got, tc.cat)
		}
	}
}

func TestHint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("ping: %w", x509.UnknownAuthorityError{}), "ca.crt"},
		{fmt.Errorf("ping: %w", x509.HostnameError{Host: "h"}), "--insecure-registry"},
		{errors.New("remote error: tls: certificate required"), "client.cert"},
		{errors.New(`Get "https://h/v2/": http: server gave HTTP response to HTTPS client`), "--insecure-registry"},
		{errors.New(`Get "https://h/v2/": http2: client conn could not be established`), "client.cert"},
		{&client.Error{Op: "login", Err: client.ErrUnauthorized}, "wrong user name or password"},
		{&client.Error{Op: "pull", Err: client.ErrUnauthorized}, "berth login"},
		{errors.New("other"), ""},
	} {
		got := hint(tc.err)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("hint(%v) = %q, want one with %q", tc.err, got, tc.want)
		}
	}
}

// fakeRegistry answers the API base and every manifest request with status and code.
func fakeRegistry(t *testing.T, status int, code string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"from the fake"}]}`, code)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// runCLI runs a client command in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	code := 0
	app := &cliApp{exit: func(c int) { code = c }, stdin: strings.NewReader("")}
	root := &cobra.Command{Use: "berth", SilenceUsage: true, SilenceErrors: true}
	app.register(root)
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	// A private credentials file, and not the machine's client configuration, for every
	// command that takes them.
	if sub, _, err := root.Find(args); err == nil {
		if sub.Flags().Lookup("docker-config") != nil {
			args = append(args, "--docker-config", t.TempDir())
		}
		if sub.Flags().Lookup("client-config") != nil {
			args = append(args, "--client-config", "")
		}
	}
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("berth %v: an error that is no usage error reached main: %v", args, err)
		}
		code = exitUsage
		fmt.Fprintln(&stderr, "berth:", err)
	}
	return stdout.String(), stderr.String(), code
}

func TestCommandExitCodes(t *testing.T) {
	t.Parallel()
	notFound := fakeRegistry(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	unauthorized := fakeRegistry(t, http.StatusUnauthorized, "UNAUTHORIZED")
	denied := fakeRegistry(t, http.StatusForbidden, "DENIED")
	broken := fakeRegistry(t, http.StatusInternalServerError, "UNKNOWN")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", notFound + "/a/b:v1"}, exitNotFound, "a/b:v1"},
		{[]string{"inspect", unauthorized + "/a/b:v1"}, exitUnauthorized, "berth login"},
		{[]string{"rm", denied + "/a/b:v1"}, exitUnauthorized, "DENIED"},
		{[]string{"copy", broken + "/a:v1", notFound + "/b:v1"}, exitFailure, "500"},
		{[]string{"tags", notFound + "/a:v1"}, exitUsage, "takes no tag"},
		{[]string{"inspect", "127.0.0.1:1/a//b"}, exitUsage, "invalid reference"},
		{[]string{"inspect"}, exitUsage, "accepts 1 arg"},
		{[]string{"inspect", "--nope", "x"}, exitUsage, "unknown flag"},
		{[]string{"pull", notFound + "/a:v1"}, exitUsage, "--output"},
		{[]string{"pull", notFound + "/a:v1", "-o", "x.tar", "--all-platforms"}, exitUsage, "--format oci"},
		{[]string{"copy", "a", "b", "--platform", "linux/amd64", "--all-platforms"}, exitUsage, "exclude"},
		{[]string{"copy", "a", "b", "--chunk-size", "-1"}, exitUsage, "chunk-size"},
		{[]string{"ls", notFound + "/repo"}, exitUsage, "berth tags"},
		{[]string{"inspect", "x", "--resolve", "a:b"}, exitUsage, "--resolve"},
		{[]string{"inspect", "x", "--registry-mirror", "ftp://m"}, exitUsage, "mirror"},
		{[]string{"login", "r.example", "-u", "u", "--password-stdin", "-p", "x"}, exitUsage, "exclude"},
		{[]string{"login", "r.example"}, exitUsage, "--username"},
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want exit %d with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestJSONError(t *testing.T) {
	t.Parallel()
	reg := fakeRegistry(t, http.StatusNotFound, "NAME_UNKNOWN")
	stdout, stderr, code := runCLI(t, "tags", "--json", reg+"/gone")
	if code != exitNotFound || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	var v struct {
		Error    string
		Category string
		ExitCode int
	}
	if err := json.Unmarshal([]byte(stderr), &v); err != nil {
		t.Fatalf("stderr is not one JSON object: %v\n%s", err, stderr)
	}
	if v.Category != "not-found" || v.ExitCode != exitNotFound || !strings.Contains(v.Error, reg+"/gone") {
		t.Errorf("JSON error %+v", v)
	}
}

func TestHelpNamesExitCodes(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "berth", Short: "berth is a container registry"}
	(&cliApp{exit: func(int) {}}).register(root)
	if !strings.Contains(root.Long, "4  unauthorized") {
		t.Errorf("berth --help lacks the exit codes:\n%s", root.Long)
	}
	for _, c := range root.Commands() {
		if !strings.Contains(c.Long, "3  not found") {
			t.Errorf("berth %s --help lacks the exit codes", c.Name())
		}
	}
}
