package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools are the programs a run needs.
type Tools struct {
	Berth        string // the berth binary built from the checkout
	Distribution string // the CNCF registry binary
	Wrk          string
}

// RepoRoot returns the directory of the go.mod of github.com/berthhq/berth,
// searching upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/berthhq/berth\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the berth checkout (no go.mod of github.com/berthhq/berth above the working directory)")
		}
		dir = parent
	}
}

// BuildBerth builds berth from the checkout at root into binDir and
// returns the binary's path.
func BuildBerth(ctx context.Context, root, binDir string, log io.Writer) (string, error) {
	bin := filepath.Join(binDir, "berth")
	fmt.Fprintln(log, "building berth")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/berth")
	build.Dir = root
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth: %w", err)
	}
	return bin, nil
}

// InstallPeers installs the CNCF registry and wrk with the shared tool
// scripts beside the checkout at root (../shared/tools) and returns their
// paths; Tools.Berth is left empty. Progress goes to log.
func InstallPeers(ctx context.Context, root string, log io.Writer) (Tools, error) {
	var t Tools
	tools := filepath.Join(filepath.Dir(root), "shared", "tools")
	fmt.Fprintln(log, "installing the CNCF registry (install-peers.sh distribution)")
	peers := exec.CommandContext(ctx, "bash", filepath.Join(tools, "install-peers.sh"), "distribution")
	peers.Dir = root
	peers.Stderr = log
	out, err := peers.Output()
	if err != nil {
		return t, fmt.Errorf("install-peers.sh distribution: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Distribution = filepath.Join(strings.TrimSpace(lines[len(lines)-1]), "registry")
	if _, err := os.Stat(t.Distribution); err != nil {
		return t, fmt.Errorf("install-peers.sh did not install the registry: %w", err)
	}

	if p, err := exec.LookPath("wrk"); err == nil {
		t.Wrk = p
		return t, nil
	}
	fmt.Fprintln(log, "installing wrk (install-debs.sh wrk)")
	debs := exec.CommandContext(ctx, "bash", filepath.Join(tools, "install-debs.sh"), "wrk")
	debs.Dir = root
	debs.Stdout, debs.Stderr = log, log
	if err := debs.Run(); err != nil {
		return t, fmt.Errorf("install-debs.sh wrk: %w", err)
	}
	if t.Wrk, err = exec.LookPath("wrk"); err != nil {
		return t, fmt.Errorf("wrk not found after install-debs.sh: %w", err)
	}
	return t, nil
}
