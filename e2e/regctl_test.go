package e2e

import (
	"bytes"
	"strings"
	"testing"
)

// TestRegctl copies an image and a multi-platform index with regctl and reads tags, manifests
// and blobs back through it, comparing with what was pushed over HTTP.
func TestRegctl(t *testing.T) {
	t.Parallel()
	regctl := newTool(t, peer(t, "regctl"), clientEnv(t))
	srv := startBerth(t)
	reg := newClient(t, srv)
	host := srv.Addr
	regctl.run("registry", "set", host, "--tls", "disabled")

	img := newImage(t, "linux", "amd64", 2)
	ix := newIndex(t, "linux/amd64", "linux/arm64", "linux/s390x")
	reg.pushImage("e2e/regctl/src", "single", img)
	reg.pushIndex("e2e/regctl/src", "multi", ix)

	regctl.run("image", "copy", host+"/e2e/regctl/src:single", host+"/e2e/regctl/dst:single")
	regctl.run("image", "copy", host+"/e2e/regctl/src:multi", host+"/e2e/regctl/dst:multi")
	reg.checkImage("e2e/regctl/dst", img)
	reg.checkIndex("e2e/regctl/dst", "multi", ix)

	if got := lines(regctl.run("tag", "ls", host+"/e2e/regctl/dst")); !equalSorted(got, []string{"multi", "single"}) {
		t.Errorf("regctl tag ls dst = %v, want [multi single]", got)
	}
	if got := regctl.run("manifest", "get", "--format", "raw-body", host+"/e2e/regctl/dst:multi"); got != string(ix.Manifest.Data) {
		t.Errorf("regctl manifest get dst:multi differs from the index pushed:\n%s", got)
	}
	if got := strings.TrimSpace(regctl.run("image", "digest", host+"/e2e/regctl/dst:single")); got != img.Manifest.Digest() {
		t.Errorf("regctl image digest dst:single = %s, want %s", got, img.Manifest.Digest())
	}
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		if got := regctl.run("blob", "get", host+"/e2e/regctl/dst", b.Digest()); !bytes.Equal([]byte(got), b.Data) {
			t.Errorf("regctl blob get %s: %d bytes differ from the %d pushed", b.Digest(), len(got), len(b.Data))
		}
	}
}
