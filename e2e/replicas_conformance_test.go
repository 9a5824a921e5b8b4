package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplicasOCIConformance runs the OCI conformance suite, every optional API on, against
// berth with blobs in S3 (MinIO) and metadata in PostgreSQL, and accepts nothing short of all
// passed.
func TestReplicasOCIConformance(t *testing.T) {
	t.Parallel()
	script := filepath.Join(suite.tools, "oci-conformance.sh")
	if _, err := os.Stat(script); err != nil {
		missing(t, "conformance runner: %v", err)
	}
	peer(t, "conformance")
	srvs, _ := startReplicas(t, 1, newSharedBackend(t).configFile(t))

	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, runErr := exec.CommandContext(ctx, "bash", script, srvs[0].Addr, results).CombinedOutput()
	m := conformanceSummary.FindAllStringSubmatch(string(out), -1)
	if m == nil {
		t.Fatalf("no summary from %s (%v):\n%s", script, runErr, out)
	}
	last := m[len(m)-1]
	passed, _ := strconv.Atoi(last[1])
	failed, _ := strconv.Atoi(last[2])
	skipped, _ := strconv.Atoi(last[3])
	t.Logf("OCI conformance on MinIO and PostgreSQL: %d passed, %d failed, %d skipped", passed, failed, skipped)
	if failed == 0 && skipped == 0 && passed > 0 && runErr == nil {
		return
	}
	detail, _ := os.ReadFile(filepath.Join(results, "output.txt"))
	var failing []string
	for _, l := range strings.Split(string(detail), "\n") {
		if len(failing) < 200 && (strings.Contains(l, "FAIL") || strings.Contains(l, "Skip") || strings.Contains(l, "Disabled")) {
			failing = append(failing, l)
		}
	}
	t.Errorf("OCI conformance on MinIO and PostgreSQL: %d passed, %d failed, %d skipped (runner: %v)\nrunner output:\n%s\nfailing lines:\n%s\ntail of the suite's output:\n%s",
		passed, failed, skipped, runErr, out, strings.Join(failing, "\n"), tail(string(detail), 16<<10))
}
