package e2e

import (
	"path/filepath"
	"testing"
)

// TestSkopeo pushes a two-platform index from an OCI layout with skopeo, copies it between
// repositories registry-to-registry, and checks that both serve the same index, images and
// blobs.
func TestSkopeo(t *testing.T) {
	t.Parallel()
	skopeo := newTool(t, lookPath(t, "skopeo"), clientEnv(t))
	srv := startBerth(t)
	reg := newClient(t, srv)

	ix := newIndex(t, "linux/amd64", "linux/arm64")
	layout := filepath.Join(t.TempDir(), "layout")
	ix.writeLayout(t, layout, "v1")
	policy := writeFile(t, t.TempDir(), "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))

	skopeo.run("--policy", policy, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
		"oci:"+layout+":v1", "docker://"+srv.Addr+"/e2e/multi:v1")
	reg.checkIndex("e2e/multi", "v1", ix)

	skopeo.run("--policy", policy, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+srv.Addr+"/e2e/multi:v1", "docker://"+srv.Addr+"/e2e/multi-copy:v1")
	reg.checkIndex("e2e/multi-copy", "v1", ix)

	// skopeo's own view of the copy: the raw index it reads back is the one pushed.
	raw := skopeo.run("inspect", "--raw", "--tls-verify=false", "docker://"+srv.Addr+"/e2e/multi-copy:v1")
	if got := sha256Digest([]byte(raw)); got != ix.Manifest.Digest() {
		t.Errorf("skopeo inspect --raw reads index %s, want %s", got, ix.Manifest.Digest())
	}
}
