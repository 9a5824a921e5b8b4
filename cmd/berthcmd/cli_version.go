package berthcmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Version is berth's version. Release builds set it:
//
//	go build -ldflags "-X github.com/berthhq/berth/cmd/berthcmd.Version=1.2.3" ./cmd/berth
//
// Left empty, it is the module version the binary was built at (go install …@v1.2.3), or
// "devel" for a build from a checkout.
var Version string

// buildInfo is what `berth version` reports.
type buildInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// readBuildInfo collects the version and what the Go toolchain recorded of the build: the
// VCS revision and time, and whether the tree had local changes.
func readBuildInfo() buildInfo {
	info, ok := debug.ReadBuildInfo()
	return buildInfoFrom(Version, info, ok)
}

// buildInfoFrom is readBuildInfo with its inputs given: the -X version and what
// debug.ReadBuildInfo returned.
func buildInfoFrom(version string, info *debug.BuildInfo, ok bool) buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && info != nil {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.CommitTime = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// version returns berth's version string.
func version() string { return readBuildInfo().Version }

// userAgent is the User-Agent of the client commands' requests.
func userAgent() string { return "berth/" + version() }

// writeVersion prints the build information, one item a line.
func writeVersion(w io.Writer, b buildInfo) {
	fmt.Fprintf(w, "berth %s\n", b.Version)
	if b.Commit != "" {
		modified := ""
		if b.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(w, "commit: %s%s\n", b.Commit, modified)
	}
	if b.CommitTime != "" {
		fmt.Fprintf(w, "commit time: %s\n", b.CommitTime)
	}
	fmt.Fprintf(w, "go: %s %s\n", b.GoVersion, b.Platform)
}

// addVersion gives root `berth version` and `berth --version`.
func addVersion(root *cobra.Command) {
	b := readBuildInfo()
	root.Version = b.Version
	var text strings.Builder
	writeVersion(&text, b)
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	// --version prints the same lines as `berth version`: cobra's template reads them here.
	root.Annotations["berth.version"] = text.String()
	root.SetVersionTemplate(`{{index .Annotations "berth.version"}}`)
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print berth's version, commit and Go version",
		Long: `Print berth's version (set at build time, else the module version, else
"devel"), the commit it was built from with its time and whether the tree had
local changes, and the Go version and platform.` + "\n\n" + exitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), b)
			}
			writeVersion(cmd.OutOrStdout(), b)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the build information as JSON")
	root.AddCommand(cmd)
}
