package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestConnectorExampleBinary runs `berth serve --config examples/connectors.yaml` (only the
// upstream's address changed) in front of another berth.
func TestConnectorExampleBinary(t *testing.T) {
	t.Parallel()
	up := startBerth(t)
	cfg := writeFile(t, t.TempDir(), "connectors.yaml", connectorsExample(t, up.Addr))
	b := startBerth(t, "--config", cfg)
	checkConnectorsExample(t, newClient(t, b), newClient(t, up))
}

// TestConnectorConfigErrors: a wrong registries section stops berth with a message naming
// each problem.
func TestConnectorConfigErrors(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, t.TempDir(), "bad.yaml", []byte(`registries:
  - name: hub
    type: cache
    prefix: hub/
  - name: all
    type: virtual
    prefix: all/
    members: [hub, nope]
    pushTo: hub
`))
	out, err := exec.Command(berthBinary(t), "serve", "--config", cfg, "--addr", freeAddr(t), "--data", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatalf("berth started with an invalid registries section:\n%s", out)
	}
	for _, want := range []string{"registries[0] (hub): upstream.url: required", `member "nope": no registry`, `pushTo "hub": must be a hosted registry`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
