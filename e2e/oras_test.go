package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	sbomType  = "application/vnd.example.sbom"
	fileType  = "application/vnd.example.file"
	otherType = "application/vnd.example.other"
)

// TestOras pushes a file artifact, attaches an SBOM to an image through the referrers API,
// discovers it with oras and over HTTP, and pulls both back byte for byte.
func TestOras(t *testing.T) {
	t.Parallel()
	oras := newTool(t, peer(t, "oras"), clientEnv(t))
	srv := startBerth(t)
	reg := newClient(t, srv)
	host := srv.Addr
	type pushed struct {
		Digest       string `json:"digest"`
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
	}
	orasJSON := func(v any, args ...string) {
		t.Helper()
		out := oras.run(append(args, "--plain-http", "--format", "json")...)
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("oras %s: output is not JSON: %v\n%s", args[0], err, out)
		}
	}

	// push: a file artifact.
	payload := randomBytes(t, 20000)
	writeFile(t, oras.dir, "payload.bin", payload)
	var art pushed
	orasJSON(&art, "push", "--artifact-type", fileType, host+"/e2e/oras/artifact:v1", "payload.bin:application/octet-stream")
	body, _, dgst := reg.manifest("e2e/oras/artifact", "v1")
	if dgst != art.Digest {
		t.Fatalf("oras pushed %s, berth serves artifact:v1 as %s", art.Digest, dgst)
	}
	man := parseManifest(t, body)
	if man.ArtifactType != fileType || len(man.Layers) != 1 || man.Layers[0].Digest != sha256Digest(payload) {
		t.Fatalf("artifact manifest %s, want artifactType %s and one layer %s", body, fileType, sha256Digest(payload))
	}
	if !bytes.Equal(reg.blob("e2e/oras/artifact", sha256Digest(payload)), payload) {
		t.Fatal("artifact layer differs from the file pushed")
	}

	// attach: an SBOM to an image, through the referrers API.
	img := newImage(t, "linux", "amd64", 1)
	reg.pushImage("e2e/oras/app", "v1", img)
	subject := img.Manifest.Digest()
	sbom := []byte(`{"bomFormat":"CycloneDX","serialNumber":"` + sha256Digest(randomBytes(t, 16)) + `"}`)
	writeFile(t, oras.dir, "sbom.json", sbom)
	var att pushed
	orasJSON(&att, "attach", "--distribution-spec", "v1.1-referrers-api", "--artifact-type", sbomType,
		host+"/e2e/oras/app@"+subject, "sbom.json:application/json")
	attBody, _, attDigest := reg.manifest("e2e/oras/app", att.Digest)
	attMan := parseManifest(t, attBody)
	if attDigest != att.Digest || attMan.Subject == nil || attMan.Subject.Digest != subject || attMan.ArtifactType != sbomType {
		t.Fatalf("attached manifest %s: %s, want subject %s and artifactType %s", attDigest, attBody, subject, sbomType)
	}

	// discover: oras finds it through the referrers API.
	var disc struct {
		Referrers []descriptor `json:"referrers"`
		Manifests []descriptor `json:"manifests"`
	}
	orasJSON(&disc, "discover", "--distribution-spec", "v1.1-referrers-api", host+"/e2e/oras/app@"+subject)
	found := append(disc.Referrers, disc.Manifests...)
	if len(found) != 1 || found[0].Digest != att.Digest || found[0].ArtifactType != sbomType {
		t.Errorf("oras discover found %+v, want only %s (%s)", found, att.Digest, sbomType)
	}

	// The referrers API directly: the index lists the SBOM with its artifact type and size.
	refs := reg.expect(reg.request("GET", "/v2/e2e/oras/app/referrers/"+subject, nil), http.StatusOK)
	if ct := refs.Header.Get("Content-Type"); ct != mtOCIIndex {
		t.Errorf("referrers Content-Type %q, want %q", ct, mtOCIIndex)
	}
	list := parseManifest(t, refs.Body)
	want := descriptor{MediaType: mtOCIManifest, Digest: att.Digest, Size: int64(len(attBody)), ArtifactType: sbomType}
	if len(list.Manifests) != 1 || list.Manifests[0].Digest != want.Digest || list.Manifests[0].Size != want.Size ||
		list.Manifests[0].MediaType != want.MediaType || list.Manifests[0].ArtifactType != want.ArtifactType {
		t.Errorf("referrers of %s:\n%s\nwant exactly %+v", subject, refs.Body, want)
	}
	// Filtering by another artifact type, when the server says it filtered, leaves nothing.
	filtered := reg.expect(reg.request("GET", "/v2/e2e/oras/app/referrers/"+subject+"?artifactType="+otherType, nil), http.StatusOK)
	if strings.Contains(filtered.Header.Get("OCI-Filters-Applied"), "artifactType") {
		if m := parseManifest(t, filtered.Body).Manifests; len(m) != 0 {
			t.Errorf("referrers filtered by %s returned %+v", otherType, m)
		}
	}
	// A digest nothing refers to has an empty list, not an error.
	none := reg.expect(reg.request("GET", "/v2/e2e/oras/app/referrers/"+img.Config.Digest(), nil), http.StatusOK)
	if m := parseManifest(t, none.Body).Manifests; len(m) != 0 {
		t.Errorf("referrers of an unreferenced digest: %+v", m)
	}

	// pull: both artifacts come back as pushed.
	out := t.TempDir()
	oras.run("pull", "--plain-http", "-o", filepath.Join(out, "artifact"), host+"/e2e/oras/artifact:v1")
	oras.run("pull", "--plain-http", "-o", filepath.Join(out, "sbom"), host+"/e2e/oras/app@"+att.Digest)
	for file, want := range map[string][]byte{"artifact/payload.bin": payload, "sbom/sbom.json": sbom} {
		got, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("oras pull %s: %d bytes (%v), want %d bytes as pushed", file, len(got), err, len(want))
		}
	}
}
