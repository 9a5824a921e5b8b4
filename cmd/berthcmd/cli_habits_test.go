package berthcmd

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestCommandFlags: each command's help lists only the flags it uses.
func TestCommandFlags(t *testing.T) {
	t.Parallel()
	registry := []string{"certs-dir", "client-config", "debug", "docker-config", "help", "insecure", "insecure-registry", "json", "resolve"}
	with := func(extra ...string) []string {
		out := append(append([]string(nil), registry...), extra...)
		sort.Strings(out)
		return out
	}
	transfer := []string{"concurrency", "quiet"}
	want := map[string][]string{
		"login":   with("username", "password", "password-stdin", "quiet"),
		"logout":  {"docker-config", "help", "json", "quiet"},
		"pull":    with(append(transfer, "registry-mirror", "platform", "all-platforms", "output", "format", "name")...),
		"push":    with(append(transfer, "allow-nondistributable-artifacts", "chunk-size", "name")...),
		"copy":    with(append(transfer, "registry-mirror", "allow-nondistributable-artifacts", "platform", "all-platforms", "chunk-size")...),
		"ls":      with("page-size"),
		"tags":    with("page-size"),
		"inspect": with("registry-mirror", "raw", "platform", "quiet"),
		"rm":      with("force", "quiet"),
		"search":  with("limit", "filter"),
		"version": {"help", "json"},
	}
	root := NewRoot()
	for name, flags := range want {
		cmd, _, err := root.Find([]string{name})
		if err != nil || cmd.Name() != name {
			t.Fatalf("no command %s: %v", name, err)
		}
		cmd.InitDefaultHelpFlag()
		var got []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { got = append(got, f.Name) })
		sort.Strings(got)
		sort.Strings(flags)
		if !slices.Equal(got, flags) {
			t.Errorf("berth %s flags:\n got %v\nwant %v", name, got, flags)
		}
		if q := cmd.Flags().ShorthandLookup("q"); slices.Contains(flags, "quiet") && (q == nil || q.Name != "quiet") {
			t.Errorf("berth %s: -q is not --quiet", name)
		}
	}
}

// TestUsageExitCodes: every usage mistake, in client and server commands alike, is exit
// code 2; other failures are 1.
func TestUsageExitCodes(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bogus"},
		{"pul", "x"}, // a typo gets suggestions
		{"serve", "--no-such-flag"},
		{"serve", "extra"},
		{"gc", "extra"},
		{"gc", "--nope"},
		{"migrate", "--nope"},
		{"user", "bogus"},
		{"user", "add"},
		{"user", "add", "--nope", "x"},
		{"version", "extra"},
		{"version", "--nope"},
		{"tags", "--nope", "x"},
		{"logout", "--insecure"}, // logout does not take registry flags
	} {
		root := NewRoot()
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(args)
		if err := root.Execute(); err == nil || exitCodeOf(err) != exitUsage {
			t.Errorf("berth %v: %v, want a usage error", args, err)
		}
	}
	root := NewRoot()
	root.SetArgs([]string{"pul", "x"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "pull") {
		t.Errorf("a typo: %v, want a suggestion of pull", err)
	}
	// Help is no error.
	for _, args := range [][]string{{}, {"user"}, {"--help"}, {"serve", "--help"}} {
		root := NewRoot()
		root.SetOut(&bytes.Buffer{})
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Errorf("berth %v: %v", args, err)
		}
	}
	// Every command's help shows the table, subcommands of server commands too.
	root = NewRoot()
	for _, path := range [][]string{{"user", "add"}, {"serve"}, {"gc"}, {"version"}, {"tags"}} {
		cmd, _, err := root.Find(path)
		if err != nil || !strings.Contains(cmd.Long, "2  usage") {
			t.Errorf("berth %v --help lacks the exit codes: %v", path, err)
		}
	}
	if exitCodeOf(errorString("disk full")) != exitFailure {
		t.Error("a plain failure is not exit 1")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestVersion(t *testing.T) {
	t.Parallel()
	b := readBuildInfo()
	if b.Version == "" || b.GoVersion != runtime.Version() || b.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("build info %+v", b)
	}
	if userAgent() != "berth/"+b.Version {
		t.Errorf("User-Agent %q", userAgent())
	}
	settings := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-05-06T07:08:09Z"}, {Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}}
	for _, tc := range []struct {
		flag, module string
		want         buildInfo
	}{
		{"", "(devel)", buildInfo{Version: "devel", Commit: "0123abcd", CommitTime: "2026-05-06T07:08:09Z", Modified: true}},
		{"", "v1.4.0", buildInfo{Version: "v1.4.0", Commit: "0123abcd", CommitTime: "2026-05-06T07:08:09Z", Modified: true}},
		{"1.5.0-rc.1", "v1.4.0", buildInfo{Version: "1.5.0-rc.1", Commit: "0123abcd", CommitTime: "2026-05-06T07:08:09Z", Modified: true}},
	} {
		got := buildInfoFrom(tc.flag, &debug.BuildInfo{Main: debug.Module{Version: tc.module}, Settings: settings}, true)
		tc.want.GoVersion, tc.want.Platform = runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
		if got != tc.want {
			t.Errorf("buildInfoFrom(%q, %q) = %+v, want %+v", tc.flag, tc.module, got, tc.want)
		}
	}
	if got := buildInfoFrom("", nil, false); got.Version != "devel" || got.Commit != "" {
		t.Errorf("without build info: %+v", got)
	}
	var text bytes.Buffer
	writeVersion(&text, buildInfo{Version: "1.2.3", Commit: "abc123", CommitTime: "2026-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64"})
	want := "berth 1.2.3\ncommit: abc123 (modified)\ncommit time: 2026-01-02T03:04:05Z\ngo: go1.26.8 linux/amd64\n"
	if text.String() != want {
		t.Errorf("version text:\n%s\nwant:\n%s", text.String(), want)
	}
	// berth --version and berth version print the same.
	outputs := map[string]string{}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		outputs[args[0]] = out.String()
	}
	if outputs["--version"] != outputs["version"] || !strings.HasPrefix(outputs["version"], "berth "+b.Version+"\n") {
		t.Errorf("--version %q, version %q", outputs["--version"], outputs["version"])
	}
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var got buildInfo
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Version != b.Version || got.GoVersion != b.GoVersion {
		t.Errorf("version --json: %s (%v)", out.String(), err)
	}
}

// TestPullOutputChecks: the output is checked before anything is downloaded.
func TestPullOutputChecks(t *testing.T) {
	t.Parallel()
	missingDir := filepath.Join(t.TempDir(), "no", "such")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pull", "127.0.0.1:1/a:v1", "-o", filepath.Join(missingDir, "x.tar")}, exitFailure, "directory " + missingDir + " does not exist"},
		{[]string{"pull", "127.0.0.1:1/a:v1", "-o", "-", "--format", "oci"}, exitUsage, "-o - writes a docker archive"},
		{[]string{"pull", "127.0.0.1:1/a:v1", "-o", "-", "--json"}, exitUsage, "--json"},
		{[]string{"search", "127.0.0.1:1", "x", "--filter", "stars=many"}, exitUsage, "stars=many"},
		{[]string{"search", "127.0.0.1:1", "x", "-f", "name=x"}, exitUsage, "is-official"},
		{[]string{"pull", "127.0.0.1:1/a:v1", "-o", "x.tar", "--platform", "linux/arm64/v8/extra"}, exitUsage, "platform"},
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want exit %d with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
