package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/gc"
)

const (
	mtEmpty        = "application/vnd.oci.empty.v1+json"
	typeSignature  = "application/vnd.example.signature.v1"
	typeSBOM       = "application/spdx+json"
	mtOctetStream  = "application/octet-stream"
	gcGrace        = time.Hour
	gcTombstoneTTL = 100 * time.Hour
)

// artifact is a referrer of subject (an image's or index's manifest): an OCI artifact with an
// empty config, one layer of random content and the subject.
func artifact(t testing.TB, subject blob, artifactType string) image {
	t.Helper()
	cfg := blob{MediaType: mtEmpty, Data: []byte("{}")}
	layer := blob{MediaType: mtOctetStream, Data: randomBytes(t, 512)}
	cd, sd := cfg.Descriptor(), subject.Descriptor()
	return image{
		Config: cfg,
		Layers: []blob{layer},
		Manifest: blob{MediaType: mtOCIManifest, Data: mustJSON(t, manifestDoc{
			SchemaVersion: 2, MediaType: mtOCIManifest, ArtifactType: artifactType,
			Config: &cd, Layers: []descriptor{layer.Descriptor()}, Subject: &sd,
		})},
	}
}

// imageOver is an image of a new config over existing layers.
func imageOver(t testing.TB, layers []blob) image {
	t.Helper()
	img := image{Layers: layers, Config: blob{MediaType: mtOCIConfig, Data: mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux", "nonce": sha256Digest(randomBytes(t, 16)),
	})}}
	cd := img.Config.Descriptor()
	var ls []descriptor
	for _, l := range layers {
		ls = append(ls, l.Descriptor())
	}
	img.Manifest = blob{MediaType: mtOCIManifest, Data: mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIManifest, Config: &cd, Layers: ls})}
	return img
}

// referrers lists the digests the referrers API returns for subject.
func (c *regClient) referrers(repo, subject string) []string {
	c.t.Helper()
	r := c.expect(c.request("GET", "/v2/"+repo+"/referrers/"+subject, nil), http.StatusOK)
	var ix manifestDoc
	if err := json.Unmarshal(r.Body, &ix); err != nil {
		c.t.Fatalf("referrers: %v\n%s", err, r)
	}
	var out []string
	for _, m := range ix.Manifests {
		out = append(out, m.Digest)
	}
	slices.Sort(out)
	return out
}

// later returns collection options whose clock is three hours ahead: everything pushed so far
// is past the grace period and the untagged period of untaggedPolicy.
func later(t testing.TB) gc.Options {
	return gc.Options{
		Grace: gcGrace, TombstoneTTL: gcTombstoneTTL, Policy: untaggedPolicy(t),
		Now: func() time.Time { return time.Now().Add(3 * gcGrace) },
	}
}

// TestGCKeepsWhatIsReachable pushes through the API a multi-platform image, referrers, an image
// over blobs mounted from another repository, an untagged image and a deleted one, then
// collects: what a tag reaches pulls completely, the rest is gone from the API and from
// storage.
func TestGCKeepsWhatIsReachable(t *testing.T) {
	t.Parallel()
	b := startGCBerth(t)
	c := b.client(t)

	ix := newIndex(t, "linux/amd64", "linux/arm64")
	c.pushIndex("app", "multi", ix)
	v1 := newImage(t, "linux", "amd64", 2)
	c.pushImage("app", "v1", v1)
	sig := artifact(t, v1.Manifest, typeSignature)
	c.pushImage("app", "", sig)
	sbom := artifact(t, ix.Manifest, typeSBOM)
	c.pushImage("app", "", sbom)
	loose := newImage(t, "linux", "amd64", 1)
	c.pushImage("app", "", loose)

	// lib mounts v1's layers from app and pushes an image over them.
	for _, l := range v1.Layers {
		c.expect(c.request("POST", "/v2/lib/blobs/uploads/?mount="+l.Digest()+"&from=app", nil), http.StatusCreated)
	}
	lib := imageOver(t, v1.Layers)
	c.pushBlob("lib", lib.Config.Data)
	c.pushManifest("lib", "stable", mtOCIManifest, lib.Manifest.Data)

	// Deleting v1 through the API leaves its blobs until a collection.
	c.expect(c.request("DELETE", "/v2/app/manifests/"+v1.Manifest.Digest(), nil), http.StatusAccepted)
	if st := c.blobStatus("app", v1.Config.Digest()); st != http.StatusOK {
		t.Errorf("v1's config after deleting v1: HEAD %d, want 200 until a collection", st)
	}

	// A collection now, with nothing old, removes nothing.
	now := gc.Options{Grace: gcGrace, TombstoneTTL: gcTombstoneTTL, Policy: untaggedPolicy(t)}
	if rep := b.collect(t, now); len(rep.Blobs)+len(rep.Manifests)+len(rep.Links) != 0 {
		t.Fatalf("a collection of fresh content: %s", rep.Summary())
	}
	rep := b.collect(t, later(t))
	t.Log(rep.Summary())

	c.checkIndex("app", "multi", ix)
	c.checkImage("app", sbom)
	if got := c.referrers("app", ix.Manifest.Digest()); !slices.Equal(got, []string{sbom.Manifest.Digest()}) {
		t.Errorf("referrers of the index = %v, want the SBOM", got)
	}
	c.checkImage("lib", lib)
	for _, m := range []image{v1, sig, loose} {
		if st := c.manifestStatus("app", m.Manifest.Digest()); st != http.StatusNotFound {
			t.Errorf("manifest %s after the collection: %d, want 404", m.Manifest.Digest(), st)
		}
		for _, bl := range append([]blob{m.Config}, m.Layers...) {
			if bl.Digest() == sbom.Config.Digest() {
				continue // the empty config, which the SBOM needs
			}
			if st := c.blobStatus("app", bl.Digest()); st != http.StatusNotFound {
				t.Errorf("blob %s in app after the collection: %d, want 404", bl.Digest(), st)
			}
		}
	}

	// Storage holds exactly the blobs of what survived.
	want := map[digest.Digest]bool{}
	for _, img := range append(append([]image{}, ix.Images...), sbom, lib) {
		for _, bl := range append([]blob{img.Config}, img.Layers...) {
			want[digest.Digest(bl.Digest())] = true
		}
	}
	got := b.stored(t)
	for d := range got {
		if !want[d] {
			t.Errorf("blob %s, which nothing reachable needs, is still stored", d)
		}
	}
	for d := range want {
		if !got[d] {
			t.Errorf("blob %s, which a tag reaches, is not stored", d)
		}
	}
	if failures := b.failures.take(); len(failures) > 0 {
		t.Errorf("request failures: %q", failures)
	}
}

// TestGCManifestAfterCheck is a client that checks its blobs (HEAD), then a collection
// removes them from the repository, then the client pushes the manifest. The push must fail,
// not store an image whose layers 404; pushing the blobs again makes it work.
func TestGCManifestAfterCheck(t *testing.T) {
	t.Parallel()
	b := startGCBerth(t)
	c := b.client(t)
	img := newImage(t, "linux", "amd64", 1)
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		c.pushBlob("app", bl.Data)
	}
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		if st := c.blobStatus("app", bl.Digest()); st != http.StatusOK {
			t.Fatalf("HEAD %s: %d", bl.Digest(), st)
		}
	}
	if rep := b.collect(t, later(t)); len(rep.Links) != 2 {
		t.Fatalf("collection removed links %v, want the config and the layer", rep.Links)
	}

	// The config is gone: the registry's own check refuses the manifest.
	r := c.request("PUT", "/v2/app/manifests/v1", img.Manifest.Data, "Content-Type", mtOCIManifest)
	if r.Status != http.StatusBadRequest || !json.Valid(r.Body) {
		t.Errorf("manifest whose config was collected: want 400 MANIFEST_BLOB_UNKNOWN, got:\n%s", r)
	}
	// The client pushes the config again but, having seen the layer, not the layer: the
	// tombstone of the layer refuses the manifest.
	c.pushBlob("app", img.Config.Data)
	r = c.request("PUT", "/v2/app/manifests/v1", img.Manifest.Data, "Content-Type", mtOCIManifest)
	if r.Status == http.StatusCreated {
		t.Fatalf("a manifest whose layer was collected was accepted:\n%s", r)
	}
	for _, f := range b.failures.take() {
		if !collected(f) {
			t.Errorf("unexpected failure: %s", f)
		}
	}
	if st := c.manifestStatus("app", "v1"); st != http.StatusNotFound {
		t.Errorf("tag of the refused push: %d, want 404", st)
	}
	c.pushImage("app", "v1", img)
	c.checkImage("app", img)
}
