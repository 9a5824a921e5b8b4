package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// suite is what TestMain prepares once for every test.
var suite struct {
	root     string // repository root
	tools    string // ../shared/tools beside the repository
	work     string // scratch directory for the whole run
	berth    string // berth binary under test
	berthErr error  // why there is no berth binary

	peersMu sync.Mutex
	peers   map[string]peerResult
}

type peerResult struct {
	path string
	err  error
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	suite.root = root
	suite.tools = filepath.Join(root, "..", "shared", "tools")
	suite.peers = map[string]peerResult{}
	suite.work, err = os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	defer os.RemoveAll(suite.work)

	if bin := os.Getenv("E2E_BERTH_BIN"); bin != "" {
		suite.berth, suite.berthErr = filepath.Abs(bin)
	} else {
		suite.berth = filepath.Join(suite.work, "berth")
		suite.berthErr = buildBerth(suite.berth)
	}
	return m.Run()
}

// buildBerth compiles ./cmd/berth once for the whole run, without cgo as releases and the
// container image are built (the image test ships this binary).
func buildBerth(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/berth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = suite.root
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/berth: %v\n%s", err, output)
	}
	return nil
}

// berthBinary returns the binary under test; a build failure fails the test, in CI or not,
// because it is the project's own code that does not build.
func berthBinary(t testing.TB) string {
	t.Helper()
	if suite.berthErr != nil {
		t.Fatalf("no berth binary: %v", suite.berthErr)
	}
	return suite.berth
}

// inCI reports whether missing dependencies must fail rather than skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// missing fails the test in CI and skips it elsewhere.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "missing dependency: " + fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// lookPath finds a binary on PATH or reports it missing.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not on PATH (scripts/test.sh installs it): %v", name, err)
	}
	return p
}

// peer returns the path of a pinned peer client (crane, regctl, oras, conformance: each binary
// is named as the peer), installing it with install-peers.sh on first use. Installs run one at
// a time: they share a cache.
func peer(t testing.TB, name string) string {
	t.Helper()
	suite.peersMu.Lock()
	r, ok := suite.peers[name]
	if !ok {
		r = installPeer(name)
		suite.peers[name] = r
	}
	suite.peersMu.Unlock()
	if r.err != nil {
		missing(t, "peer %s: %v", name, r.err)
	}
	return r.path
}

// peerBinaries names the binaries of peers not named after themselves.
var peerBinaries = map[string]string{"distribution": "registry"}

func installPeer(name string) peerResult {
	script := filepath.Join(suite.tools, "install-peers.sh")
	if _, err := os.Stat(script); err != nil {
		return peerResult{err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, name)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return peerResult{err: fmt.Errorf("%s %s: %v\n%s", script, name, err, stderr.String())}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	bin := name
	if b, ok := peerBinaries[name]; ok {
		bin = b
	}
	p := filepath.Join(strings.TrimSpace(lines[len(lines)-1]), bin)
	if _, err := os.Stat(p); err != nil {
		return peerResult{err: fmt.Errorf("install-peers.sh printed no usable directory: %v", err)}
	}
	return peerResult{path: p}
}
