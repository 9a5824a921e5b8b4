package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// chunkedUpload is an upload session fed with PATCH requests.
type chunkedUpload struct {
	data     []byte
	acked    int    // bytes the server has acknowledged with a Range header
	location string // latest Location the server gave
}

// patch sends data[acked:end] and checks that the server acknowledges exactly 0-(end-1).
func (c *regClient) patch(u *chunkedUpload, end int) {
	c.t.Helper()
	r := c.expect(c.request("PATCH", u.location, u.data[u.acked:end],
		"Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", u.acked, end-1)), http.StatusAccepted)
	if got, want := r.Header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
		c.t.Fatalf("PATCH acknowledged Range %q, want %q:\n%s", got, want, r)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		u.location = loc
	}
	u.acked = end
}

// resume checks that the session reports exactly the acknowledged bytes, sends the rest,
// completes it, and checks the blob.
func (c *regClient) resume(repo string, u *chunkedUpload) {
	c.t.Helper()
	r := c.expect(c.request("GET", u.location, nil), http.StatusNoContent)
	if got, want := r.Header.Get("Range"), fmt.Sprintf("0-%d", u.acked-1); got != want {
		c.t.Fatalf("upload status Range %q, want %q (acknowledged before): \n%s", got, want, r)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		u.location = loc
	}
	c.patch(u, len(u.data))
	dgst := sha256Digest(u.data)
	r = c.expect(c.request("PUT", c.withQuery(u.location, "digest", dgst), nil), http.StatusCreated)
	if h := r.Header.Get("Docker-Content-Digest"); h != dgst {
		c.t.Errorf("completed upload answered Docker-Content-Digest %q, want %s", h, dgst)
	}
	if got := c.blob(repo, dgst); !bytes.Equal(got, u.data) {
		c.t.Fatalf("blob %s differs from the bytes uploaded", dgst)
	}
	head := c.expect(c.request("HEAD", "/v2/"+repo+"/blobs/"+dgst, nil), http.StatusOK)
	if got := head.Header.Get("Content-Length"); got != strconv.Itoa(len(u.data)) {
		c.t.Errorf("HEAD %s Content-Length %q, want %d", dgst, got, len(u.data))
	}
}

// startChunked opens n sessions, the i-th fed with i+1 chunks of different sizes.
func startChunked(t testing.TB, reg *regClient, repo string, n int) []*chunkedUpload {
	t.Helper()
	uploads := make([]*chunkedUpload, n)
	for i := range uploads {
		u := &chunkedUpload{data: randomBytes(t, 256<<10+i*1001), location: reg.startUpload(repo)}
		chunk := 32<<10 + i*777
		for range i + 1 {
			reg.patch(u, u.acked+chunk)
		}
		uploads[i] = u
	}
	return uploads
}

// TestCrashRecovery kills berth with SIGKILL during uploads and checks, after a restart on the
// same data, that committed content survived, that no unfinished upload became a blob, and
// that interrupted chunked uploads resume from the bytes acknowledged.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	const repo = "e2e/crash"

	img := newImage(t, "linux", "amd64", 2)
	reg.pushImage(repo, "kept", img)
	uploads := startChunked(t, reg, repo, 3)

	// A monolithic upload (POST, then PUT with the whole body) whose body stops half way.
	mono := randomBytes(t, 1<<20)
	monoDigest := sha256Digest(mono)
	monoURL := reg.withQuery(reg.startUpload(repo), "digest", monoDigest)
	body, feed := io.Pipe()
	monoDone := make(chan error, 1)
	go func() {
		req, err := http.NewRequest("PUT", monoURL, body)
		if err != nil {
			monoDone <- err
			return
		}
		req.ContentLength = int64(len(mono))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := reg.hc.Do(req)
		if err != nil {
			monoDone <- nil // cut off by the crash, as intended
			return
		}
		resp.Body.Close()
		monoDone <- fmt.Errorf("PUT with half its body answered %s", resp.Status)
	}()
	fed := make(chan error, 1)
	go func() {
		_, err := feed.Write(mono[:len(mono)/2])
		fed <- err
	}()
	select {
	case err := <-fed:
		if err != nil {
			t.Fatalf("feeding the monolithic upload: %v", err)
		}
	case err := <-monoDone:
		t.Fatalf("monolithic upload ended before the crash: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not read the first half of a monolithic upload within a minute")
	}

	srv.Kill()
	feed.CloseWithError(errors.New("server killed"))
	if err := <-monoDone; err != nil {
		t.Fatal(err)
	}
	srv.Restart()

	reg.checkImage(repo, img)
	if _, _, dgst := reg.manifest(repo, "kept"); dgst != img.Manifest.Digest() {
		t.Errorf("tag kept is %s after the crash, want %s", dgst, img.Manifest.Digest())
	}
	if st := reg.blobStatus(repo, monoDigest); st != http.StatusNotFound {
		t.Errorf("HEAD blob of the cut monolithic upload: %d, want 404", st)
	}
	for i, u := range uploads {
		if st := reg.blobStatus(repo, sha256Digest(u.data)); st != http.StatusNotFound {
			t.Errorf("HEAD blob of unfinished upload %d: %d, want 404", i, st)
		}
	}
	for _, u := range uploads {
		reg.resume(repo, u)
	}
}

// TestGracefulRestart stops berth with SIGTERM, expects a clean exit, and checks that content
// and an open upload session are intact after the restart.
func TestGracefulRestart(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	const repo = "e2e/restart"

	img := newImage(t, "linux", "arm64", 1)
	reg.pushImage(repo, "v1", img)
	uploads := startChunked(t, reg, repo, 1)

	srv.Stop()
	srv.Restart()

	reg.checkImage(repo, img)
	if got := reg.tags(repo); !equalSorted(got, []string{"v1"}) {
		t.Errorf("tags after restart %v, want [v1]", got)
	}
	reg.resume(repo, uploads[0])
}
