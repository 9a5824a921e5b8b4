package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/testenv"
)

// cloudPartSize is the part (GCS) and block (Azure) size the cloud drivers run with here: the
// smallest they take, so that the conformance suite's blobs and chunked uploads span several.
const cloudPartSize = 256 << 10

// writeConfig writes a berth configuration file and returns its path.
func writeConfig(t testing.TB, cfg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gcsConfig is berth's configuration with blobs in a new bucket of fake-gcs-server.
func gcsConfig(t testing.TB) string {
	g := testenv.StartGCS(t)
	q := strconv.Quote
	return writeConfig(t, fmt.Sprintf(`storage:
  driver: gcs
  gcs:
    endpoint: %s
    bucket: %s
    anonymous: true
    rootDirectory: registry
    partSize: %d
`, q(g.Endpoint), q(g.Bucket), cloudPartSize))
}

// azureConfig is berth's configuration with blobs in a new container of Azurite.
func azureConfig(t testing.TB) string {
	a := testenv.StartAzurite(t)
	q := strconv.Quote
	return writeConfig(t, fmt.Sprintf(`storage:
  driver: azure
  azure:
    endpoint: %s
    accountName: %s
    accountKey: %s
    container: %s
    rootDirectory: registry
    blockSize: %d
`, q(a.Endpoint), q(a.AccountName), q(a.AccountKey), q(a.Container), cloudPartSize))
}

// TestGCSOCIConformance runs the OCI conformance suite, every optional API on, against berth
// with blobs on fake-gcs-server, and accepts nothing short of all passed.
func TestGCSOCIConformance(t *testing.T) {
	t.Parallel()
	script := requireConformance(t)
	srv := startBerth(t, "--config", gcsConfig(t))
	runConformance(t, script, srv.Addr, "on fake-gcs-server")
}

// TestAzureOCIConformance runs the OCI conformance suite, every optional API on, against berth
// with blobs on Azurite, and accepts nothing short of all passed.
func TestAzureOCIConformance(t *testing.T) {
	t.Parallel()
	script := requireConformance(t)
	srv := startBerth(t, "--config", azureConfig(t))
	runConformance(t, script, srv.Addr, "on Azurite")
}

// TestCloudDriversPushPullRestart pushes an image with crane to berth on each emulator, restarts
// berth (killed) on the same bucket or container, and pulls the layer back byte for byte.
func TestCloudDriversPushPullRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(testing.TB) string
	}{{"gcs", gcsConfig}, {"azure", azureConfig}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			crane := newTool(t, peer(t, "crane"), clientEnv(t))
			srv := startBerth(t, "--config", tc.cfg(t))
			reg := newClient(t, srv)
			repo := "e2e/cloud/" + tc.name
			// Larger than a few parts, so that the blob is composed (GCS) or committed
			// from blocks (Azure).
			gz, _ := tarGz(t, map[string][]byte{"data.bin": randomBytes(t, 3<<20)})
			layer := writeFile(t, t.TempDir(), "layer.tar.gz", gz)
			crane.run("append", "--insecure", "--oci-empty-base", "-f", layer, "-t", srv.Addr+"/"+repo+":v1")
			_, _, digest := reg.manifest(repo, "v1")

			srv.Kill()
			srv.Restart()
			if got := strings.TrimSpace(crane.run("digest", "--insecure", srv.Addr+"/"+repo+":v1")); got != digest {
				t.Errorf("digest after restart = %s, want %s", got, digest)
			}
			if !bytes.Equal(reg.blob(repo, sha256Digest(gz)), gz) {
				t.Error("the layer read back after a restart differs from the one pushed")
			}
		})
	}
}
