package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCrane drives berth with crane: push of an OCI layout, append, copy, ls, digest,
// manifest, delete and catalog, each checked against what berth serves over HTTP.
func TestCrane(t *testing.T) {
	t.Parallel()
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	srv := startBerth(t)
	reg := newClient(t, srv)
	host := srv.Addr
	cr := func(args ...string) string { return strings.TrimSpace(crane.run(append(args, "--insecure")...)) }

	// push: an OCI layout whose only entry is a two-platform index.
	ix := newIndex(t, "linux/amd64", "linux/arm64")
	layout := filepath.Join(t.TempDir(), "layout")
	ix.writeLayout(t, layout, "v1")
	if out := cr("push", layout, host+"/e2e/crane/multi:v1"); !strings.HasSuffix(out, "@"+ix.Manifest.Digest()) {
		t.Errorf("crane push printed %q, want a reference to %s", out, ix.Manifest.Digest())
	}
	reg.checkIndex("e2e/crane/multi", "v1", ix)

	// append: two layers on top of an empty base; crane keeps gzipped tarballs as they are.
	gz1, _ := tarGz(t, map[string][]byte{"one.txt": randomBytes(t, 3000)})
	gz2, _ := tarGz(t, map[string][]byte{"two.txt": randomBytes(t, 5000)})
	dir := t.TempDir()
	l1, l2 := writeFile(t, dir, "one.tar.gz", gz1), writeFile(t, dir, "two.tar.gz", gz2)
	v1Ref := cr("append", "--oci-empty-base", "-f", l1, "-t", host+"/e2e/crane/app:v1")
	_, _, v1 := reg.manifest("e2e/crane/app", "v1")
	if v1Ref != host+"/e2e/crane/app@"+v1 {
		t.Errorf("crane append printed %q, berth serves v1 as %s", v1Ref, v1)
	}
	cr("append", "-b", host+"/e2e/crane/app:v1", "-f", l2, "-t", host+"/e2e/crane/app:v2")
	v2Body, _, v2 := reg.manifest("e2e/crane/app", "v2")
	v2Man := parseManifest(t, v2Body)
	if len(v2Man.Layers) != 2 || v2Man.Layers[0].Digest != sha256Digest(gz1) || v2Man.Layers[1].Digest != sha256Digest(gz2) {
		t.Fatalf("v2 layers %+v, want %s then %s", v2Man.Layers, sha256Digest(gz1), sha256Digest(gz2))
	}
	if !bytes.Equal(reg.blob("e2e/crane/app", sha256Digest(gz2)), gz2) {
		t.Error("layer two differs from the file appended")
	}

	// digest and manifest agree with HTTP.
	if got := cr("digest", host+"/e2e/crane/app:v2"); got != v2 {
		t.Errorf("crane digest app:v2 = %s, berth serves %s", got, v2)
	}
	if got := crane.run("manifest", host+"/e2e/crane/app:v2", "--insecure"); got != string(v2Body) {
		t.Errorf("crane manifest app:v2 differs from the HTTP body:\n%s\n%s", got, v2Body)
	}

	// copy an image and an index to another repository.
	cr("copy", host+"/e2e/crane/app:v1", host+"/e2e/crane/copy:v1")
	cr("copy", host+"/e2e/crane/multi:v1", host+"/e2e/crane/copy:multi")
	if _, _, got := reg.manifest("e2e/crane/copy", "v1"); got != v1 {
		t.Errorf("copy:v1 is %s, want %s", got, v1)
	}
	reg.checkIndex("e2e/crane/copy", "multi", ix)

	// ls agrees with tags/list.
	if got, want := lines(cr("ls", host+"/e2e/crane/app")), []string{"v1", "v2"}; !equalSorted(got, want) || !equalSorted(reg.tags("e2e/crane/app"), want) {
		t.Errorf("crane ls app = %v, tags/list = %v, want %v", got, reg.tags("e2e/crane/app"), want)
	}

	// delete by digest removes the manifest and the tag that named it.
	cr("delete", host+"/e2e/crane/copy@"+v1)
	if st := reg.manifestStatus("e2e/crane/copy", v1); st != http.StatusNotFound {
		t.Errorf("GET copy@%s after delete: %d, want 404", v1, st)
	}
	if st := reg.manifestStatus("e2e/crane/copy", "v1"); st != http.StatusNotFound {
		t.Errorf("GET copy:v1 after its manifest was deleted: %d, want 404", st)
	}
	if got := lines(cr("ls", host+"/e2e/crane/copy")); !equalSorted(got, []string{"multi"}) {
		t.Errorf("crane ls copy after delete = %v, want [multi]", got)
	}
	// Deleting from one repository leaves the same manifest elsewhere alone.
	if _, _, got := reg.manifest("e2e/crane/app", v1); got != v1 {
		t.Errorf("app@%s changed after delete in another repository", v1)
	}

	// catalog lists every repository, as HTTP does.
	want := []string{"e2e/crane/app", "e2e/crane/copy", "e2e/crane/multi"}
	if got := lines(cr("catalog", host)); !equalSorted(got, want) || !equalSorted(reg.catalog(), want) {
		t.Errorf("crane catalog = %v, /v2/_catalog = %v, want %v", got, reg.catalog(), want)
	}
}

func equalSorted(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
