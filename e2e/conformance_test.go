package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var conformanceSummary = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed, (\d+) skipped$`)

// TestOCIConformance runs the official OCI distribution-spec conformance suite, with every
// optional API switched on, and accepts nothing short of all passed.
func TestOCIConformance(t *testing.T) {
	t.Parallel()
	script := filepath.Join(suite.tools, "oci-conformance.sh")
	if _, err := os.Stat(script); err != nil {
		missing(t, "conformance runner: %v", err)
	}
	peer(t, "conformance")
	srv := startBerth(t)

	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, srv.Addr, results)
	out, runErr := cmd.CombinedOutput()
	m := conformanceSummary.FindAllStringSubmatch(string(out), -1)
	if m == nil {
		t.Fatalf("no summary from %s (%v):\n%s", script, runErr, out)
	}
	last := m[len(m)-1]
	passed, _ := strconv.Atoi(last[1])
	failed, _ := strconv.Atoi(last[2])
	skipped, _ := strconv.Atoi(last[3])
	t.Logf("OCI conformance: %d passed, %d failed, %d skipped", passed, failed, skipped)
	if failed == 0 && skipped == 0 && passed > 0 && runErr == nil {
		return
	}

	detail, _ := os.ReadFile(filepath.Join(results, "output.txt"))
	var failing []string // the first 200 are enough to see the pattern
	for _, l := range strings.Split(string(detail), "\n") {
		if len(failing) < 200 && (strings.Contains(l, "FAIL") || strings.Contains(l, "Skip") || strings.Contains(l, "Disabled")) {
			failing = append(failing, l)
		}
	}
	t.Errorf("OCI conformance: %d passed, %d failed, %d skipped (runner: %v)\nrunner output:\n%s\nfailing lines:\n%s\ntail of the suite's output:\n%s",
		passed, failed, skipped, runErr, out, strings.Join(failing, "\n"), tail(string(detail), 16<<10))
}
