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

// requireConformance checks that the OCI conformance runner and suite are there, before a
// test starts servers for it.
func requireConformance(t *testing.T) string {
	t.Helper()
	script := filepath.Join(suite.tools, "oci-conformance.sh")
	if _, err := os.Stat(script); err != nil {
		missing(t, "conformance runner: %v", err)
	}
	peer(t, "conformance")
	return script
}

// runConformance runs the official OCI distribution-spec conformance suite, with every
// optional API switched on, against addr (env adds settings such as OCI_USERNAME), and fails
// the test unless everything passed. what names the setup in the messages.
func runConformance(t *testing.T, script, addr, what string, env ...string) {
	t.Helper()
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, addr, results)
	cmd.Env = append(os.Environ(), env...)
	out, runErr := cmd.CombinedOutput()
	m := conformanceSummary.FindAllStringSubmatch(string(out), -1)
	if m == nil {
		t.Fatalf("no summary from %s (%v):\n%s", script, runErr, out)
	}
	last := m[len(m)-1]
	passed, _ := strconv.Atoi(last[1])
	failed, _ := strconv.Atoi(last[2])
	skipped, _ := strconv.Atoi(last[3])
	t.Logf("OCI conformance %s: %d passed, %d failed, %d skipped", what, passed, failed, skipped)
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
	t.Errorf("OCI conformance %s: %d passed, %d failed, %d skipped (runner: %v)\nrunner output:\n%s\nfailing lines:\n%s\ntail of the suite's output:\n%s",
		what, passed, failed, skipped, runErr, out, strings.Join(failing, "\n"), tail(string(detail), 16<<10))
}

// TestOCIConformance runs the conformance suite against berth's defaults and accepts nothing
// short of all passed.
func TestOCIConformance(t *testing.T) {
	t.Parallel()
	script := requireConformance(t)
	srv := startBerth(t)
	runConformance(t, script, srv.Addr, "with the defaults")
}
