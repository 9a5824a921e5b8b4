package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
)

// TestBadInputCorruptsNothing pushes content, throws a batch of bad
// requests at the same names and digests, and checks that everything
// still reads back byte-identical, through the API and from storage.
func TestBadInputCorruptsNothing(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		img := e.pushImage("victim", "v1", MediaTypeOCIManifest, "victim")
		layerD := digest.FromBytes(img.Layer)
		big := bytes.Repeat([]byte("0123456789"), 10000)
		bigD := e.pushBlob("victim", big)
		idx := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{manifestDesc(MediaTypeOCIManifest, img.Body)}})
		idxD := e.pushManifest("victim", "idx", MediaTypeOCIIndex, idx)

		// An upload in progress must survive too.
		loc := e.startUpload("victim")
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: []byte("partial")}), http.StatusAccepted)

		other := e.startUpload("attacker")
		bad := []req{
			// Claiming existing digests for other content.
			{Method: "POST", Path: "/v2/victim/blobs/uploads/?digest=" + layerD.String(), Body: []byte("evil")},
			{Method: "POST", Path: "/v2/attacker/blobs/uploads/?digest=" + bigD.String(), Body: big[:len(big)-1]},
			{Method: "POST", Path: "/v2/victim/blobs/uploads/?digest=" + bigD.String(), Body: append(append([]byte{}, big...), 'x')},
			{Method: "PUT", Path: other + "?digest=" + layerD.String(), Body: []byte("evil layer")},
			{Method: "PUT", Path: "/v2/victim/manifests/" + img.Digest.String(), Body: idx, Header: []string{"Content-Type: " + MediaTypeOCIIndex}},
			{Method: "PUT", Path: "/v2/victim/manifests/" + idxD.String(), Body: []byte("{}")},
			// Bad manifests under existing tags.
			{Method: "PUT", Path: "/v2/victim/manifests/v1", Body: []byte("not json"), Header: []string{"Content-Type: " + MediaTypeOCIManifest}},
			{Method: "PUT", Path: "/v2/victim/manifests/v1", Body: img.Body[:20], Header: []string{"Content-Type: " + MediaTypeOCIManifest}},
			{Method: "PUT", Path: "/v2/victim/manifests/idx", Body: img.Body, Header: []string{"Content-Type: " + MediaTypeDockerManifest}},
			{Method: "PUT", Path: "/v2/victim/manifests/v1?tag=-bad", Body: idx, Header: []string{"Content-Type: " + MediaTypeOCIIndex}},
			// Hostile names, digests and upload ids.
			{Method: "PUT", Path: "/v2/victim/../victim/manifests/v1", Body: idx},
			{Method: "DELETE", Path: "/v2/victim/blobs/sha256:" + layerD.Encoded()[:63]},
			{Method: "DELETE", Path: "/v2/victim/manifests/sha256:xyz"},
			{Method: "PATCH", Path: "/v2/victim/blobs/uploads/..", Body: []byte("x")},
			{Method: "PATCH", Path: "/v2/attacker/blobs/uploads/" + path.Base(loc), Body: []byte("x")},
			{Method: "PUT", Path: "/v2/attacker/blobs/uploads/" + path.Base(loc) + "?digest=" + digest.FromString("partial").String()},
			{Method: "DELETE", Path: "/v2/attacker/blobs/uploads/" + path.Base(loc)},
			{Method: "PATCH", Path: loc, Body: []byte("wrong offset"), Header: []string{"Content-Range: 100-111"}},
			{Method: "PATCH", Path: loc, Body: []byte("short"), Header: []string{"Content-Range: 7-100"}},
			{Method: "PATCH", Path: loc, Body: []byte("x"), Header: []string{"Content-Range: bogus"}},
			{Method: "POST", Path: "/v2/victim/blobs/uploads/?mount=sha256:bad&from=attacker"},
			{Method: "POST", Path: "/v2/attacker/blobs/uploads/?mount=" + layerD.String() + "&from=../victim"},
			{Method: "GET", Path: "/v2/victim/blobs/" + bigD.String(), Header: []string{"Range: bytes=99999999-"}},
		}
		for _, r := range bad {
			res := e.do(r)
			if res.Status < 400 || res.Status >= 500 {
				t.Errorf("%s %s: status %d, want 4xx (body %s)", r.Method, r.Path, res.Status, short(res.Body))
			} else if r.Method != "HEAD" && len(res.Body) > 0 {
				errorCode(t, res)
			}
		}

		// Through the API.
		e.wantBlob("victim", layerD, img.Layer)
		e.wantBlob("victim", digest.FromBytes(img.Config), img.Config)
		e.wantBlob("victim", bigD, big)
		wantManifest(t, e, "victim", "v1", MediaTypeOCIManifest, img.Body)
		wantManifest(t, e, "victim", img.Digest.String(), MediaTypeOCIManifest, img.Body)
		wantManifest(t, e, "victim", "idx", MediaTypeOCIIndex, idx)
		wantNoBlob(t, e, "attacker", layerD)
		res := e.get(loc)
		wantStatus(t, res, http.StatusNoContent)
		wantUploadState(t, res, loc, len("partial"))
		// The session still finishes.
		wantCreated(t, e.do(req{Method: "PUT", Path: loc + "?digest=" + digest.FromString("partial!").String(), Body: []byte("!")}),
			"victim", digest.FromString("partial!"))

		// From storage.
		for d, want := range map[digest.Digest][]byte{layerD: img.Layer, bigD: big} {
			f, size, err := e.reg.blobs.Open(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || size != int64(len(want)) || !bytes.Equal(got, want) {
				t.Errorf("stored blob %s: %d bytes (size %d, err %v), want %d identical", d, len(got), size, err, len(want))
			}
		}
	})
}

// TestConcurrentPushes uploads one blob and pushes manifests to one tag from
// many goroutines at once.
func TestConcurrentPushes(t *testing.T) {
	t.Parallel()
	const workers = 16
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		layer := bytes.Repeat([]byte("concurrent layer "), 4096)
		layerD := digest.FromBytes(layer)
		cfg := []byte(`{"os":"linux"}`)
		cfgD := digest.FromBytes(cfg)

		bodies := make([][]byte, workers)
		for i := range bodies {
			bodies[i] = mustJSON(t, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
				Config: blobDesc(mtOCIConfig, cfg), Layers: []desc{blobDesc(mtOCILayer, layer)},
				Annotations: map[string]string{"worker": strconv.Itoa(i)}})
		}

		var wg sync.WaitGroup
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				check := func(what string, res *response, want int) bool {
					if res.Status != want {
						t.Errorf("worker %d: %s: status %d, want %d: %s", i, what, res.Status, want, short(res.Body))
						return false
					}
					return true
				}
				// Config: monolithic.
				res := e.do(req{Method: "POST", Path: "/v2/race/blobs/uploads/?digest=" + cfgD.String(), Body: cfg})
				check("config", res, http.StatusCreated)

				// Layer: chunked for even workers, monolithic for odd ones.
				if i%2 == 1 {
					res = e.do(req{Method: "POST", Path: "/v2/race/blobs/uploads/?digest=" + layerD.String(), Body: layer})
					check("layer", res, http.StatusCreated)
				} else {
					res = e.do(req{Method: "POST", Path: "/v2/race/blobs/uploads/"})
					if !check("start", res, http.StatusAccepted) {
						return
					}
					loc := res.Header.Get("Location")
					const chunk = 10000
					for off := 0; off < len(layer)-chunk; off += chunk {
						res = e.do(req{Method: "PATCH", Path: loc, Body: layer[off : off+chunk],
							Header: []string{fmt.Sprintf("Content-Range: %d-%d", off, off+chunk-1)}})
						if !check("patch", res, http.StatusAccepted) {
							return
						}
					}
					rest := len(layer) / chunk * chunk
					if rest == len(layer) {
						rest -= chunk
					}
					res = e.do(req{Method: "PUT", Path: loc + "?digest=" + layerD.String(), Body: layer[rest:],
						Header: []string{fmt.Sprintf("Content-Range: %d-%d", rest, len(layer)-1)}})
					check("finish", res, http.StatusCreated)
				}

				res = e.do(req{Method: "PUT", Path: "/v2/race/manifests/latest", Body: bodies[i], Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
				check("manifest", res, http.StatusCreated)
				res = e.do(req{Method: "PUT", Path: "/v2/race/manifests/w" + strconv.Itoa(i), Body: bodies[i], Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
				check("own tag", res, http.StatusCreated)
				res = e.do(req{Method: "GET", Path: "/v2/race/blobs/" + layerD.String()})
				if check("read layer", res, http.StatusOK) && !bytes.Equal(res.Body, layer) {
					t.Errorf("worker %d: layer read back differs", i)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}

		e.wantBlob("race", layerD, layer)
		e.wantBlob("race", cfgD, cfg)
		res := e.get("/v2/race/manifests/latest")
		wantStatus(t, res, http.StatusOK)
		winner := -1
		for i, b := range bodies {
			if bytes.Equal(res.Body, b) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("latest is none of the pushed manifests: %s", res.Body)
		}
		wantHeader(t, res, "Docker-Content-Digest", digest.FromBytes(bodies[winner]).String())
		for i, b := range bodies {
			wantManifest(t, e, "race", "w"+strconv.Itoa(i), MediaTypeOCIManifest, b)
		}
		if got := len(tagList(t, e, "race")); got != workers+1 {
			t.Errorf("%d tags, want %d", got, workers+1)
		}
		// No upload session is left behind.
		if ids, err := e.drv.List(t.Context(), "/uploads"); err == nil && len(ids) != 0 {
			t.Errorf("%d upload sessions left: %v", len(ids), ids)
		}
	})
}

// restartEnv opens a registry over the same directory and database as a
// previous one, after closing that one's metadata store.
func restartEnv(t *testing.T, prev *testEnv, dir, db string) *testEnv {
	t.Helper()
	if prev != nil {
		if err := prev.meta.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return newFSEnv(t, dir, db, Options{})
}

func TestUploadSurvivesRestart(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, db := filepath.Join(base, "storage"), filepath.Join(base, "metadata.db")
	data := bytes.Repeat([]byte("resumable "), 3000)
	d := digest.FromBytes(data)

	e1 := restartEnv(t, nil, dir, db)
	img := e1.pushImage("app", "v1", MediaTypeOCIManifest, "before restart")
	loc := e1.startUpload("app")
	wantStatus(t, e1.do(req{Method: "PATCH", Path: loc, Body: data[:10000], Header: []string{"Content-Range: 0-9999"}}), http.StatusAccepted)

	e2 := restartEnv(t, e1, dir, db)
	wantManifest(t, e2, "app", "v1", MediaTypeOCIManifest, img.Body)
	res := e2.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 10000)
	// The out-of-order check uses the persisted size.
	res = e2.do(req{Method: "PATCH", Path: loc, Body: data[:10], Header: []string{"Content-Range: 0-9"}})
	wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
	wantUploadState(t, res, loc, 10000)
	wantStatus(t, e2.do(req{Method: "PATCH", Path: loc, Body: data[10000:20000], Header: []string{"Content-Range: 10000-19999"}}), http.StatusAccepted)

	e3 := restartEnv(t, e2, dir, db)
	res = e3.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data[20000:], Header: []string{"Content-Range: 20000-29999"}})
	wantCreated(t, res, "app", d)
	e3.wantBlob("app", d, data)

	e4 := restartEnv(t, e3, dir, db)
	e4.wantBlob("app", d, data)
	wantError(t, e4.get(loc), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

// TestUploadResumeWithStaleHashState simulates a crash between writing a
// chunk's bytes and saving the session's hash state: the data file holds
// more than the saved state has hashed. The upload must still finish with
// the digest of the bytes really stored.
func TestUploadResumeWithStaleHashState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sha512 bool
		// patchAfter sends one more chunk after the crash before the PUT.
		patchAfter bool
	}{
		{"sha256 patch then put", false, true},
		{"sha256 put", false, false},
		{"sha512 patch then put", true, true},
		{"sha512 put", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir, db := filepath.Join(base, "storage"), filepath.Join(base, "metadata.db")
			first := bytes.Repeat([]byte("first chunk "), 500)
			crashed := []byte("bytes written before the crash, never hashed")
			last := bytes.Repeat([]byte("last chunk "), 500)

			e1 := restartEnv(t, nil, dir, db)
			loc := e1.startUpload("app")
			wantStatus(t, e1.do(req{Method: "PATCH", Path: loc, Body: first}), http.StatusAccepted)

			// Append behind the session's back, as the crashed request did.
			w, err := e1.drv.Writer(t.Context(), "/uploads/"+path.Base(loc)+"/data", true)
			if err != nil {
				t.Fatal(err)
			}
			if w.Size() != int64(len(first)) {
				t.Fatalf("data file has %d bytes, want %d", w.Size(), len(first))
			}
			if _, err := w.Write(crashed); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var info struct {
				HashOffset int64 `json:"hashOffset"`
			}
			b, err := e1.drv.GetContent(t.Context(), "/uploads/"+path.Base(loc)+"/info")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &info); err != nil || info.HashOffset != int64(len(first)) {
				t.Fatalf("saved state: %s (%v): want hashOffset %d", b, err, len(first))
			}

			e2 := restartEnv(t, e1, dir, db)
			size := len(first) + len(crashed)
			res := e2.get(loc)
			wantStatus(t, res, http.StatusNoContent)
			wantUploadState(t, res, loc, size)

			all := append(append(append([]byte{}, first...), crashed...), last...)
			d := digest.FromBytes(all)
			if tc.sha512 {
				d = sha512Digest(all)
			}
			cr := fmt.Sprintf("Content-Range: %d-%d", size, len(all)-1)
			if tc.patchAfter {
				wantStatus(t, e2.do(req{Method: "PATCH", Path: loc, Body: last, Header: []string{cr}}), http.StatusAccepted)
				res = e2.do(req{Method: "PUT", Path: loc + "?digest=" + d.String()})
			} else {
				res = e2.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: last, Header: []string{cr}})
			}
			wantCreated(t, res, "app", d)
			e2.wantBlob("app", d, all)

			// The digest of the content without the crashed bytes must not
			// have been stored.
			without := append(append([]byte{}, first...), last...)
			wantNoBlob(t, e2, "app", digest.FromBytes(without))
		})
	}
}

// TestBlobMissingFromStorage: the blob bytes are gone but metadata still
// links the blob; the registry answers BLOB_UNKNOWN, not a 500.
func TestBlobMissingFromStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	data := []byte("soon lost")
	d := e.pushBlob("r", data)
	if err := e.reg.blobs.Delete(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.get("/v2/r/blobs/"+d.String()), http.StatusNotFound, "BLOB_UNKNOWN")
	// The driver really lost it.
	if _, err := e.drv.Stat(t.Context(), "/blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()+"/data"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("blob still in driver: %v", err)
	}
}
