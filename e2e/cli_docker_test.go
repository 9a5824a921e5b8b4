package e2e

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCLIDockerArchive loads a docker archive written by `berth pull` into the Docker
// engine, pushes back what `docker save` writes, and has skopeo read the OCI layout and the
// archive berth wrote.
func TestCLIDockerArchive(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	skopeo := newTool(t, lookPath(t, "skopeo"), clientEnv(t))
	engine := startDockerd(t)
	docker := engine.client(t)
	srv := startBerth(t)
	reg := newClient(t, srv)
	c := newCLI(t)

	img := newImage(t, "linux", runtime.GOARCH, 2)
	reg.pushImage("e2e/load", "v1", img)
	ref := srv.Addr + "/e2e/load:v1"
	dir := t.TempDir()

	// docker load reads the archive: the image ID is the config digest, the tag is the
	// reference pulled.
	archive := filepath.Join(dir, "load.tar")
	c.ok("pull", ref, "-o", archive)
	out := docker.run("load", "-i", archive)
	if !strings.Contains(out, ref) {
		t.Errorf("docker load output does not name %s:\n%s", ref, out)
	}
	if id := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", ref)); id != img.Config.Digest() {
		t.Fatalf("docker loaded %s as %s, want image ID %s", ref, id, img.Config.Digest())
	}

	// docker save writes its own format; berth pushes it, with the same config and the
	// same layer contents (the engine saves layers uncompressed).
	saved := filepath.Join(dir, "saved.tar")
	docker.run("save", "-o", saved, ref)
	c.ok("push", saved, srv.Addr+"/e2e/load:saved")
	body, _, _ := reg.manifest("e2e/load", "saved")
	m := parseManifest(t, body)
	if m.Config == nil || m.Config.Digest != img.Config.Digest() || len(m.Layers) != len(img.Layers) {
		t.Fatalf("pushed from docker save: %s", body)
	}
	for i, l := range m.Layers {
		want := untarGz(t, img.Layers[i].Data)
		got := untarFiles(t, reg.blob("e2e/load", l.Digest), l.MediaType)
		for name, data := range want {
			if !bytes.Equal(got[name], data) {
				t.Errorf("layer %d file %s differs after docker save and berth push", i, name)
			}
		}
	}
	// The engine pulls what berth pushed from its archive: the same image.
	docker.run("rmi", ref)
	docker.run("pull", srv.Addr+"/e2e/load:saved")
	if id := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", srv.Addr+"/e2e/load:saved")); id != img.Config.Digest() {
		t.Errorf("docker pull of the pushed archive gave image %s, want %s", id, img.Config.Digest())
	}

	// skopeo reads berth's OCI layout (oci: transport, by the tag as name) and its archive.
	layout := filepath.Join(dir, "layout")
	c.ok("pull", ref, "-o", layout)
	if raw := skopeo.run("inspect", "--raw", "oci:"+layout+":v1"); raw != string(img.Manifest.Data) {
		t.Errorf("skopeo inspect --raw oci:%s:v1 differs from the image manifest:\n%s", layout, raw)
	}
	policy := writeFile(t, t.TempDir(), "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	skopeo.run("--policy", policy, "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":v1", "docker://"+srv.Addr+"/e2e/load:skopeo")
	reg.checkImage("e2e/load", img)
	if _, _, got := reg.manifest("e2e/load", "skopeo"); got != img.Manifest.Digest() {
		t.Errorf("skopeo copied the layout as %s, want %s", got, img.Manifest.Digest())
	}
	if out := skopeo.run("inspect", "docker-archive:"+archive); !strings.Contains(out, `"Architecture": "`+runtime.GOARCH+`"`) {
		t.Errorf("skopeo inspect docker-archive:%s:\n%s", archive, out)
	}
}

// untarFiles returns the regular files of a layer, gzipped or not.
func untarFiles(t testing.TB, data []byte, mediaType string) map[string][]byte {
	t.Helper()
	if strings.HasSuffix(mediaType, "gzip") {
		return untarGz(t, data)
	}
	return untarGz(t, gzipBytes(t, data))
}
