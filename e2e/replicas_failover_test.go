package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplicasKilledDuringChunkedUpload kills (SIGKILL) the replica that is receiving a
// chunk of an upload; the client continues the same session path on a surviving replica
// from the last acknowledged byte and finishes it on the third. The killed replica comes
// back and serves the blob too.
func TestReplicasKilledDuringChunkedUpload(t *testing.T) {
	t.Parallel()
	be := newSharedBackend(t)
	srvs, regs := startReplicas(t, 3, be.configFile(t))
	const repo = "e2e/replicas/killed-upload"

	data := randomBytes(t, 3*replicaPartSize+1<<20)
	u := &chunkedUpload{data: data, location: regs[0].startUpload(repo)}
	acked := replicaPartSize + 1<<20
	regs[0].patch(u, acked) // part 1 stored and recorded, 1 MiB pending

	// The next chunk runs to the end of the data; the client sends all but its last MiB.
	chunk := data[acked:]
	body, feed := io.Pipe()
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequest("PATCH", regs[0].resolve(u.location).String(), body)
		if err != nil {
			done <- err
			return
		}
		req.ContentLength = int64(len(chunk))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", acked, len(data)-1))
		resp, err := regs[0].hc.Do(req)
		if err != nil {
			done <- nil // cut off by the kill, as intended
			return
		}
		resp.Body.Close()
		done <- fmt.Errorf("PATCH with part of its body answered %s", resp.Status)
	}()
	go func() {
		_, _ = feed.Write(chunk[:len(chunk)-1<<20])
	}()
	// Replica 0 is killed once it has stored part 2, which only the request in progress
	// knows of: the session's recorded state still says one part. The upload data's key is
	// the driver path of the session (see storage/upload.go) in the bucket.
	s3c := be.s3Client(t)
	key := "uploads/" + path.Base(u.location) + "/data"
	ended, early := false, error(nil)
	if !pollUntil(time.Minute, func() bool {
		select {
		case early = <-done:
			ended = true
			return true
		default:
		}
		return be.uploadedParts(t, s3c, key) >= 2
	}) {
		t.Fatalf("replica 0 did not store part 2 of %s within a minute", key)
	}
	if ended {
		t.Fatalf("PATCH ended before the kill (%v)", early)
	}
	srvs[0].Kill()
	feed.CloseWithError(errors.New("replica killed"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The session lives in the bucket: replica 1 knows it, up to the last byte replica 0
	// acknowledged, and takes the client's retry of the chunk from there.
	checkUploadStatus(t, regs[1], u)
	if st := regs[1].blobStatus(repo, sha256Digest(data)); st != http.StatusNotFound {
		t.Fatalf("HEAD of the unfinished blob through replica 1: %d, want 404", st)
	}
	regs[1].patch(u, len(data)-1<<19)
	checkUploadStatus(t, regs[2], u)
	dgst := sha256Digest(data)
	finishUpload(t, regs[2], repo, u, dgst)

	srvs[0].Restart()
	for i, reg := range regs {
		if got := reg.blob(repo, dgst); !bytes.Equal(got, data) {
			t.Errorf("replica %d serves blob %s with other bytes", i, dgst)
		}
	}
}

// TestReplicasKilledDuringCranePush kills (SIGKILL) the replica crane is pushing an image
// through while a layer is half sent; crane fails, nothing half-pushed shows, and the same
// push through another replica succeeds and is served by the third.
func TestReplicasKilledDuringCranePush(t *testing.T) {
	t.Parallel()
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	srvs, regs := startReplicas(t, 3, newSharedBackend(t).configFile(t))
	const repo = "e2e/replicas/killed-push"

	// One large layer (random, so gzip does not shrink it) and one small one.
	big, bigDiff := tarGz(t, map[string][]byte{"big.bin": randomBytes(t, 2*replicaPartSize)})
	small, smallDiff := tarGz(t, map[string][]byte{"small.txt": randomBytes(t, 1000)})
	img := imageOf(t, []blob{{MediaType: mtOCILayerGzip, Data: big}, {MediaType: mtOCILayerGzip, Data: small}}, []string{bigDiff, smallDiff})
	layout := filepath.Join(t.TempDir(), "layout")
	writeImageLayout(t, layout, "v1", img)

	// crane pushes through a proxy in front of replica 0, which holds the large layer's body
	// after its first MiB: replica 0 is then in the middle of receiving it.
	gate := startGatedProxy(t, srvs[0], 1<<20)
	type result struct {
		stdout, stderr string
		err            error
	}
	first := make(chan result, 1)
	go func() {
		stdout, stderr, err := crane.exec("push", layout, gate.Addr+"/"+repo+":v1", "--insecure")
		first <- result{stdout, stderr, err}
	}()
	select {
	case <-gate.held:
	case r := <-first:
		t.Fatalf("crane push ended before the large layer was half sent (%v):\n%s%s", r.err, r.stdout, r.stderr)
	case <-time.After(2 * time.Minute):
		t.Fatal("crane did not send the large layer's first MiB within two minutes")
	}
	srvs[0].Kill()
	gate.open()
	start := time.Now()
	r := <-first
	if r.err == nil {
		t.Fatalf("crane push through the killed replica succeeded:\n%s%s", r.stdout, r.stderr)
	}
	t.Logf("crane gave up %v after the kill: %v", time.Since(start).Round(time.Millisecond), r.err)

	for i, reg := range regs[1:] {
		if st := reg.blobStatus(repo, sha256Digest(big)); st != http.StatusNotFound {
			t.Errorf("replica %d: HEAD of the half-pushed layer: %d, want 404", i+1, st)
		}
		if st := reg.manifestStatus(repo, "v1"); st != http.StatusNotFound {
			t.Errorf("replica %d: GET of the tag never pushed: %d, want 404", i+1, st)
		}
	}

	// The retry through replica 1 pushes what is missing; replica 2 serves all of it.
	out := crane.run("push", layout, srvs[1].Addr+"/"+repo+":v1", "--insecure")
	if !strings.HasSuffix(strings.TrimSpace(out), "@"+img.Manifest.Digest()) {
		t.Errorf("crane push printed %q, want a reference to %s", out, img.Manifest.Digest())
	}
	regs[2].checkImage(repo, img)
	if _, _, dgst := regs[2].manifest(repo, "v1"); dgst != img.Manifest.Digest() {
		t.Errorf("replica 2 serves %s:v1 as %s, want %s", repo, dgst, img.Manifest.Digest())
	}
	if got := strings.TrimSpace(crane.run("digest", srvs[2].Addr+"/"+repo+":v1", "--insecure")); got != img.Manifest.Digest() {
		t.Errorf("crane digest through replica 2: %s, want %s", got, img.Manifest.Digest())
	}
}

// imageOf builds a linux/amd64 OCI image of the given layers and their diff IDs.
func imageOf(t testing.TB, layers []blob, diffIDs []string) image {
	t.Helper()
	img := image{Platform: platform{OS: "linux", Architecture: "amd64"}, Layers: layers}
	descs := make([]descriptor, len(layers))
	for i, l := range layers {
		descs[i] = l.Descriptor()
	}
	img.Config = blob{MediaType: mtOCIConfig, Data: mustJSON(t, map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	cfg := img.Config.Descriptor()
	img.Manifest = blob{MediaType: mtOCIManifest, Data: mustJSON(t, manifestDoc{
		SchemaVersion: 2, MediaType: mtOCIManifest, Config: &cfg, Layers: descs,
	})}
	return img
}

// writeImageLayout writes an OCI image layout whose only entry is img under tag.
func writeImageLayout(t testing.TB, dir, tag string, img image) {
	t.Helper()
	for _, b := range img.Blobs() {
		writeFile(t, filepath.Join(dir, "blobs", "sha256"), strings.TrimPrefix(b.Digest(), "sha256:"), b.Data)
	}
	root := img.Manifest.Descriptor()
	root.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	writeFile(t, dir, "index.json", mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: []descriptor{root}}))
	writeFile(t, dir, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
}
