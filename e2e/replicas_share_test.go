package e2e

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplicasShareContent runs three replicas on one bucket and one database: what is
// pushed through one replica is served by the others, over HTTP and to crane.
func TestReplicasShareContent(t *testing.T) {
	t.Parallel()
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	srvs, regs := startReplicas(t, 3, newSharedBackend(t).configFile(t))

	// An image pushed over HTTP through replica 0 is served, byte for byte, by all three.
	const imgRepo = "e2e/replicas/image"
	img := newImage(t, "linux", "amd64", 2)
	regs[0].pushImage(imgRepo, "v1", img)
	for i, reg := range regs {
		reg.checkImage(imgRepo, img)
		if _, _, dgst := reg.manifest(imgRepo, "v1"); dgst != img.Manifest.Digest() {
			t.Errorf("replica %d serves %s:v1 as %s, want %s", i, imgRepo, dgst, img.Manifest.Digest())
		}
		if got := reg.tags(imgRepo); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("replica %d lists tags %v of %s, want [v1]", i, got, imgRepo)
		}
		if !slices.Contains(reg.catalog(), imgRepo) {
			t.Errorf("replica %d's catalog lacks %s", i, imgRepo)
		}
	}

	// A two-platform index pushed with crane through replica 1 is pulled with crane through
	// replicas 2 and 0.
	const ixRepo = "e2e/replicas/multi"
	ix := newIndex(t, "linux/amd64", "linux/arm64")
	layout := filepath.Join(t.TempDir(), "layout")
	ix.writeLayout(t, layout, "v1")
	crane.run("push", layout, srvs[1].Addr+"/"+ixRepo+":v1", "--insecure")
	for _, i := range []int{2, 0} {
		ref := srvs[i].Addr + "/" + ixRepo + ":v1"
		if got := strings.TrimSpace(crane.run("digest", ref, "--insecure")); got != ix.Manifest.Digest() {
			t.Errorf("crane digest through replica %d: %s, want %s", i, got, ix.Manifest.Digest())
		}
		out := filepath.Join(t.TempDir(), "pulled")
		crane.run("pull", "--format=oci", ref, out, "--insecure")
		if !bytes.Equal(layoutBlob(t, out, ix.Manifest.Digest()), ix.Manifest.Data) {
			t.Errorf("index pulled through replica %d differs from the one pushed", i)
		}
		for _, im := range ix.Images {
			checkLayoutImage(t, out, im)
		}
		regs[i].checkIndex(ixRepo, "v1", ix)
	}

	// A tag moved and a manifest deleted through one replica change what the others serve:
	// at once on the replica that made the change; on the others once PostgreSQL's
	// notification reaches their manifest caches, within replicaCacheBound. Every replica
	// has the old answer cached first.
	for _, reg := range regs {
		reg.manifest(imgRepo, "v1")
		reg.manifest(imgRepo, img.Manifest.Digest())
	}
	img2 := newImage(t, "linux", "amd64", 1)
	regs[2].pushImage(imgRepo, "v1", img2)
	regs[1].expect(regs[1].request("DELETE", "/v2/"+imgRepo+"/manifests/"+img.Manifest.Digest(), nil), http.StatusAccepted)
	if _, _, dgst := regs[2].manifest(imgRepo, "v1"); dgst != img2.Manifest.Digest() {
		t.Errorf("the replica that moved the tag serves %s:v1 as %s, want %s at once", imgRepo, dgst, img2.Manifest.Digest())
	}
	if st := regs[1].manifestStatus(imgRepo, img.Manifest.Digest()); st != http.StatusNotFound {
		t.Errorf("the replica that deleted the manifest answers %d for it, want 404 at once", st)
	}
	for i, reg := range regs {
		ok := eventually(replicaCacheBound, func() bool {
			_, _, dgst := reg.manifest(imgRepo, "v1")
			return dgst == img2.Manifest.Digest() && reg.manifestStatus(imgRepo, img.Manifest.Digest()) == http.StatusNotFound
		})
		if !ok {
			t.Errorf("replica %d still serves the old %s:v1 or the deleted manifest after %v", i, imgRepo, replicaCacheBound)
		}
	}
}

// replicaCacheBound is how soon a change made through one replica must be served by the
// others: the delay of PostgreSQL's notification to their manifest caches, with room for a
// loaded machine.
const replicaCacheBound = 2 * time.Second

// eventually reports whether cond holds within limit, asking it again each time it did not
// (a replica's answer changes on its own, with nothing to wait on in between).
func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // the pace of asking again, not a synchronisation
	}
}

// TestReplicasChunkedUpload feeds one upload session through three replicas: started and
// first chunk on one, more chunks on a second, finished on the third. The chunks cross S3
// part boundaries, so each replica continues a multipart upload another one began, with the
// hash state the previous one saved.
func TestReplicasChunkedUpload(t *testing.T) {
	t.Parallel()
	_, regs := startReplicas(t, 3, newSharedBackend(t).configFile(t))
	const repo = "e2e/replicas/chunked"

	{
		data := randomBytes(t, 2*replicaPartSize+3<<20+12345)
		u := &chunkedUpload{data: data, location: regs[0].startUpload(repo)}
		regs[0].patch(u, 3<<20)                 // within the first part
		checkUploadStatus(t, regs[1], u)        // visible to the others at once
		regs[1].patch(u, replicaPartSize+2<<20) // completes part 1
		checkUploadStatus(t, regs[2], u)
		checkUploadStatus(t, regs[0], u)
		regs[1].patch(u, 2*replicaPartSize+1<<20) // completes part 2
		dgst := sha256Digest(data)
		finishUpload(t, regs[2], repo, u, dgst)
		for i, reg := range regs {
			if got := reg.blob(repo, dgst); !bytes.Equal(got, data) {
				t.Errorf("replica %d serves blob %s with other bytes", i, dgst)
			}
			head := reg.expect(reg.request("HEAD", "/v2/"+repo+"/blobs/"+dgst, nil), http.StatusOK)
			if got := head.Header.Get("Content-Length"); got != strconv.Itoa(len(data)) {
				t.Errorf("replica %d: HEAD Content-Length %q, want %d", i, got, len(data))
			}
			if r := reg.request("GET", u.location, nil); r.Status != http.StatusNotFound {
				t.Errorf("replica %d still knows the finished session:\n%s", i, r)
			}
		}
	}

	// sha512 digests are checked by re-reading the committed content, not from the saved
	// hash state.
	{
		data := randomBytes(t, replicaPartSize+1<<20)
		u := &chunkedUpload{data: data, location: regs[2].startUpload(repo)}
		regs[2].patch(u, 1<<20)
		regs[0].patch(u, len(data))
		sum := sha512.Sum512(data)
		dgst := "sha512:" + hex.EncodeToString(sum[:])
		finishUpload(t, regs[1], repo, u, dgst)
		for i, reg := range regs {
			r := reg.expect(reg.request("GET", "/v2/"+repo+"/blobs/"+dgst, nil), http.StatusOK)
			if !bytes.Equal(r.Body, data) {
				t.Errorf("replica %d serves blob %s with other bytes (%d of %d)", i, dgst, len(r.Body), len(data))
			}
		}
	}
}

// checkUploadStatus checks that reg reports exactly the bytes acknowledged so far.
func checkUploadStatus(t testing.TB, reg *regClient, u *chunkedUpload) {
	t.Helper()
	r := reg.expect(reg.request("GET", u.location, nil), http.StatusNoContent)
	if got, want := r.Header.Get("Range"), fmt.Sprintf("0-%d", u.acked-1); got != want {
		t.Fatalf("upload status through %s: Range %q, want %q:\n%s", reg.base.Host, got, want, r)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		u.location = loc
	}
}

// finishUpload completes the session through reg with a PUT carrying the bytes not yet sent.
func finishUpload(t testing.TB, reg *regClient, repo string, u *chunkedUpload, dgst string) {
	t.Helper()
	r := reg.expect(reg.request("PUT", reg.withQuery(u.location, "digest", dgst), u.data[u.acked:],
		"Content-Type", "application/octet-stream"), http.StatusCreated)
	if h := r.Header.Get("Docker-Content-Digest"); h != dgst {
		t.Errorf("completed upload answered Docker-Content-Digest %q, want %s", h, dgst)
	}
	if loc, want := r.Header.Get("Location"), "/v2/"+repo+"/blobs/"+dgst; !strings.HasSuffix(loc, want) {
		t.Errorf("completed upload answered Location %q, want %s", loc, want)
	}
	u.acked = len(u.data)
}

// TestReplicasConcurrentPush pushes the same image through the three replicas at once, each
// under a shared tag and a tag of its own: every push succeeds (the same blob completed by
// several replicas, the same manifest and tag written by several), and every replica then
// serves the image under all four tags.
func TestReplicasConcurrentPush(t *testing.T) {
	t.Parallel()
	_, regs := startReplicas(t, 3, newSharedBackend(t).configFile(t))
	const repo = "e2e/replicas/concurrent"
	big, bigDiff := tarGz(t, map[string][]byte{"big.bin": randomBytes(t, replicaPartSize+1<<20)})
	img := imageOf(t, []blob{{MediaType: mtOCILayerGzip, Data: big}}, []string{bigDiff})

	errs := make(chan error, len(regs))
	for i, reg := range regs {
		go func() {
			errs <- pushImageOver(reg.hc, reg.base.String(), repo, []string{"shared", fmt.Sprintf("r%d", i)}, img)
		}()
	}
	for range regs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	for i, reg := range regs {
		reg.checkImage(repo, img)
		for _, tag := range []string{"shared", "r0", "r1", "r2"} {
			if _, _, dgst := reg.manifest(repo, tag); dgst != img.Manifest.Digest() {
				t.Errorf("replica %d serves %s:%s as %s, want %s", i, repo, tag, dgst, img.Manifest.Digest())
			}
		}
	}
}

// pushImageOver pushes img's blobs (POST, then PUT with the whole body) and its manifest
// under each tag to the registry at base, returning the first failure. Unlike regClient it
// may run on any goroutine.
func pushImageOver(hc *http.Client, base, repo string, tags []string, img image) error {
	send := func(method, target string, body []byte, contentType string, want int) (*http.Response, error) {
		u, err := url.Parse(base)
		if err != nil {
			return nil, err
		}
		if u, err = u.Parse(target); err != nil {
			return nil, err
		}
		req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode != want {
			return nil, fmt.Errorf("%s %s through %s: %s, want %d: %s", method, target, base, resp.Status, want, msg)
		}
		return resp, nil
	}
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		resp, err := send("POST", "/v2/"+repo+"/blobs/uploads/", nil, "", http.StatusAccepted)
		if err != nil {
			return err
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			return err
		}
		q := loc.Query()
		q.Set("digest", b.Digest())
		loc.RawQuery = q.Encode()
		if _, err := send("PUT", loc.String(), b.Data, "application/octet-stream", http.StatusCreated); err != nil {
			return err
		}
	}
	for _, tag := range tags {
		if _, err := send("PUT", "/v2/"+repo+"/manifests/"+tag, img.Manifest.Data, img.Manifest.MediaType, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}
