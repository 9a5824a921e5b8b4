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

// TestAuthOCIConformance runs the OCI conformance suite against berth in token mode (the
// example configuration) as the admin user, and accepts nothing short of all passed: the
// suite gets its tokens from the challenges berth sends, so every challenge's scope must be
// what the request needs.
func TestAuthOCIConformance(t *testing.T) {
	t.Parallel()
	script := filepath.Join(suite.tools, "oci-conformance.sh")
	if _, err := os.Stat(script); err != nil {
		missing(t, "conformance runner: %v", err)
	}
	peer(t, "conformance")
	srv := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)

	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, srv.Addr, results)
	cmd.Env = append(os.Environ(), "OCI_USERNAME="+adminUser, "OCI_PASSWORD="+adminPass)
	out, runErr := cmd.CombinedOutput()
	m := conformanceSummary.FindAllStringSubmatch(string(out), -1)
	if m == nil {
		t.Fatalf("no summary from %s (%v):\n%s", script, runErr, out)
	}
	last := m[len(m)-1]
	passed, _ := strconv.Atoi(last[1])
	failed, _ := strconv.Atoi(last[2])
	skipped, _ := strconv.Atoi(last[3])
	t.Logf("OCI conformance in token mode: %d passed, %d failed, %d skipped", passed, failed, skipped)
	if failed == 0 && skipped == 0 && passed > 0 && runErr == nil {
		if !strings.Contains(srv.log.String(), "token issued") {
			t.Error("the suite passed without ever getting a token: was authentication on?")
		}
		return
	}
	detail, _ := os.ReadFile(filepath.Join(results, "output.txt"))
	t.Errorf("OCI conformance in token mode: %d passed, %d failed, %d skipped (runner: %v)\nrunner output:\n%s\ntail of the suite's output:\n%s",
		passed, failed, skipped, runErr, out, tail(string(detail), 16<<10))
}
