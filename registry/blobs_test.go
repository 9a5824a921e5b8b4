package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// forEachDriver runs fn as a parallel subtest over each driver.
func forEachDriver(t *testing.T, opts Options, fn func(t *testing.T, e *testEnv)) {
	for _, kind := range driverKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnvKind(t, kind, opts))
		})
	}
}

// wantUploadState checks a 202/204 upload answer: Location, Range and
// Docker-Upload-UUID for a session holding size bytes.
func wantUploadState(t *testing.T, res *response, loc string, size int) {
	t.Helper()
	wantHeader(t, res, "Location", loc)
	wantHeader(t, res, "Docker-Upload-UUID", path.Base(loc))
	want := "0-0"
	if size > 0 {
		want = "0-" + strconv.Itoa(size-1)
	}
	wantHeader(t, res, "Range", want)
}

// wantCreated checks a 201 answer for blob d of repo.
func wantCreated(t *testing.T, res *response, repo string, d digest.Digest) {
	t.Helper()
	wantStatus(t, res, http.StatusCreated)
	wantHeader(t, res, "Location", "/v2/"+repo+"/blobs/"+d.String())
	wantHeader(t, res, "Docker-Content-Digest", d.String())
}

// wantNoBlob checks that repo does not serve d.
func wantNoBlob(t *testing.T, e *testEnv, repo string, d digest.Digest) {
	t.Helper()
	res := e.head("/v2/" + repo + "/blobs/" + d.String())
	wantStatus(t, res, http.StatusNotFound)
}

func TestMonolithicUpload(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("a monolithic blob")
		d := digest.FromBytes(data)
		res := e.do(req{Method: "POST", Path: "/v2/mono/blobs/uploads/?digest=" + d.String(), Body: data})
		wantCreated(t, res, "mono", d)
		wantHeader(t, res, "Content-Length", "0")
		e.wantBlob("mono", d, data)

		res = e.head("/v2/mono/blobs/" + d.String())
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Length", strconv.Itoa(len(data)))
		wantHeader(t, res, "Docker-Content-Digest", d.String())
		wantHeader(t, res, "Content-Type", "application/octet-stream")
		if len(res.Body) != 0 {
			t.Errorf("HEAD has a body: %q", res.Body)
		}

		// Uploading it again is harmless.
		res = e.do(req{Method: "POST", Path: "/v2/mono/blobs/uploads/?digest=" + d.String(), Body: data})
		wantCreated(t, res, "mono", d)
		e.wantBlob("mono", d, data)

		// A streamed monolithic upload (no Content-Length).
		data2 := []byte("streamed monolithic blob")
		d2 := digest.FromBytes(data2)
		res = e.do(req{Method: "POST", Path: "/v2/mono/blobs/uploads/?digest=" + d2.String(), Body: data2, Stream: true})
		wantCreated(t, res, "mono", d2)
		e.wantBlob("mono", d2, data2)

		// The blob is not served by other repositories.
		wantNoBlob(t, e, "other", d)
	})
}

func TestPostThenPut(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		res := e.do(req{Method: "POST", Path: "/v2/pp/blobs/uploads/"})
		wantStatus(t, res, http.StatusAccepted)
		loc := res.Header.Get("Location")
		if !strings.HasPrefix(loc, "/v2/pp/blobs/uploads/") {
			t.Fatalf("Location = %q", loc)
		}
		wantUploadState(t, res, loc, 0)
		wantHeader(t, res, "Content-Length", "0")

		data := []byte("post then put")
		d := digest.FromBytes(data)
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data})
		wantCreated(t, res, "pp", d)
		e.wantBlob("pp", d, data)

		// The session is gone once finished.
		wantError(t, e.get(loc), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")

		// The same without the trailing slash on POST.
		res = e.do(req{Method: "POST", Path: "/v2/pp/blobs/uploads"})
		wantStatus(t, res, http.StatusAccepted)
		loc = res.Header.Get("Location")
		data = []byte("post without slash")
		d = digest.FromBytes(data)
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data, Stream: true})
		wantCreated(t, res, "pp", d)
		e.wantBlob("pp", d, data)
	})
}

func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("0123456789abcdefghijKLMNOPQRST")
		d := digest.FromBytes(data)
		loc := e.startUpload("chunked")

		res := e.do(req{Method: "PATCH", Path: loc, Body: data[:5], Header: []string{"Content-Range: 0-4", "Content-Type: application/octet-stream"}})
		wantStatus(t, res, http.StatusAccepted)
		wantUploadState(t, res, loc, 5)

		// The RFC 9110 form of Content-Range is tolerated.
		res = e.do(req{Method: "PATCH", Path: loc, Body: data[5:10], Header: []string{"Content-Range: bytes 5-9/*"}})
		wantStatus(t, res, http.StatusAccepted)
		wantUploadState(t, res, loc, 10)

		// A streamed chunk: no Content-Range, no Content-Length.
		res = e.do(req{Method: "PATCH", Path: loc, Body: data[10:15], Stream: true})
		wantStatus(t, res, http.StatusAccepted)
		wantUploadState(t, res, loc, 15)

		// A chunk without Content-Range but with a length.
		res = e.do(req{Method: "PATCH", Path: loc, Body: data[15:20]})
		wantStatus(t, res, http.StatusAccepted)
		wantUploadState(t, res, loc, 20)

		res = e.get(loc)
		wantStatus(t, res, http.StatusNoContent)
		wantUploadState(t, res, loc, 20)
		if len(res.Body) != 0 {
			t.Errorf("status has a body: %q", res.Body)
		}

		// PUT carries the last chunk.
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data[20:], Header: []string{"Content-Range: 20-29"}})
		wantCreated(t, res, "chunked", d)
		e.wantBlob("chunked", d, data)
		wantError(t, e.get(loc), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})
}

func TestUploadPutWithStreamedLastChunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	data := []byte("first part|last part")
	d := digest.FromBytes(data)
	loc := e.startUpload("r")
	wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data[:11]}), http.StatusAccepted)
	res := e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data[11:], Stream: true})
	wantCreated(t, res, "r", d)
	e.wantBlob("r", d, data)
}

func TestUploadPutWithoutDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	loc := e.startUpload("r")
	wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: []byte("abc")}), http.StatusAccepted)
	wantError(t, e.do(req{Method: "PUT", Path: loc}), http.StatusBadRequest, "DIGEST_INVALID")
	// The session survives a PUT without a digest.
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 3)
}

func TestCancelUpload(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		loc := e.startUpload("cancel")
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: []byte("doomed")}), http.StatusAccepted)
		res := e.do(req{Method: "DELETE", Path: loc})
		wantStatus(t, res, http.StatusNoContent)
		d := digest.FromString("doomed")
		for _, r := range []req{
			{Method: "GET", Path: loc},
			{Method: "PATCH", Path: loc, Body: []byte("more")},
			{Method: "PUT", Path: loc + "?digest=" + d.String()},
			{Method: "DELETE", Path: loc},
		} {
			res := e.do(r)
			wantError(t, res, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		}
		wantNoBlob(t, e, "cancel", d)
	})
}

func TestOutOfOrderChunk(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("0123456789abcdef")
		d := digest.FromBytes(data)
		loc := e.startUpload("ooo")
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data[:5], Header: []string{"Content-Range: 0-4"}}), http.StatusAccepted)

		for _, r := range []req{
			// A gap.
			{Method: "PATCH", Path: loc, Body: data[10:15], Header: []string{"Content-Range: 10-14"}},
			// A repeat of the chunk already received.
			{Method: "PATCH", Path: loc, Body: data[:5], Header: []string{"Content-Range: 0-4"}},
			// An overlap.
			{Method: "PATCH", Path: loc, Body: data[3:8], Header: []string{"Content-Range: 3-7"}},
			// A last chunk at the wrong offset.
			{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data[6:], Header: []string{"Content-Range: 6-15"}},
		} {
			res := e.do(r)
			wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
			wantUploadState(t, res, loc, 5)
		}

		// The session is unharmed and goes on from offset 5.
		res := e.get(loc)
		wantStatus(t, res, http.StatusNoContent)
		wantUploadState(t, res, loc, 5)
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data[5:10], Header: []string{"Content-Range: 5-9"}}), http.StatusAccepted)
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String(), Body: data[10:], Header: []string{"Content-Range: 10-15"}})
		wantCreated(t, res, "ooo", d)
		e.wantBlob("ooo", d, data)
	})
}

func TestMalformedContentRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	loc := e.startUpload("r")
	wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: []byte("abc"), Header: []string{"Content-Range: 0-2"}}), http.StatusAccepted)
	for _, cr := range []string{"abc", "3", "-3", "3-", "3-x", "x-5", "5-3", "3--5", "+3-5", "3-+5", "bytes", "3-99999999999999999999", " - "} {
		for _, method := range []string{"PATCH", "PUT"} {
			p := loc
			if method == "PUT" {
				p += "?digest=" + digest.FromString("abcdef").String()
			}
			res := e.do(req{Method: method, Path: p, Body: []byte("def"), Header: []string{"Content-Range: " + cr}})
			if res.Status < 400 || res.Status >= 500 {
				t.Errorf("%s Content-Range %q: status %d, want 4xx", method, cr, res.Status)
				continue
			}
			code := errorCode(t, res)
			if res.Status != http.StatusRequestedRangeNotSatisfiable && res.Status != http.StatusBadRequest {
				t.Errorf("%s Content-Range %q: status %d (%s), want 416 or 400", method, cr, res.Status, code)
			}
		}
	}
	// Nothing was appended.
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 3)
}

func TestContentLengthMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	loc := e.startUpload("r")
	for _, r := range []req{
		{Method: "PATCH", Path: loc, Body: []byte("12345"), Header: []string{"Content-Range: 0-9"}},
		{Method: "PATCH", Path: loc, Body: []byte("12345"), Header: []string{"Content-Range: 0-1"}},
		{Method: "PUT", Path: loc + "?digest=" + digest.FromString("12345").String(), Body: []byte("12345"), Header: []string{"Content-Range: 0-9"}},
	} {
		wantError(t, e.do(r), http.StatusBadRequest, "SIZE_INVALID")
	}
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 0)
	wantNoBlob(t, e, "r", digest.FromString("12345"))
}

func TestDigestMismatch(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("the real content")
		claimed := digest.FromString("something else")
		claimed512 := sha512Digest([]byte("something else"))

		// Monolithic.
		for _, c := range []digest.Digest{claimed, claimed512} {
			res := e.do(req{Method: "POST", Path: "/v2/dm/blobs/uploads/?digest=" + c.String(), Body: data})
			wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
			wantNoBlob(t, e, "dm", c)
		}

		// Chunked, wrong digest on PUT.
		for _, c := range []digest.Digest{claimed, claimed512} {
			loc := e.startUpload("dm")
			wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data[:4]}), http.StatusAccepted)
			res := e.do(req{Method: "PUT", Path: loc + "?digest=" + c.String(), Body: data[4:]})
			wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
			wantNoBlob(t, e, "dm", c)
		}
		wantNoBlob(t, e, "dm", digest.FromBytes(data))
		wantNoBlob(t, e, "dm", sha512Digest(data))

		// Nothing reached storage either.
		if _, err := e.reg.blobs.Stat(t.Context(), claimed); err == nil {
			t.Error("claimed digest is in storage")
		}
		if _, err := e.reg.blobs.Stat(t.Context(), digest.FromBytes(data)); err == nil {
			t.Error("content's digest is in storage")
		}
		res := e.get("/v2/_catalog")
		wantStatus(t, res, http.StatusOK)
		if string(res.Body) != `{"repositories":[]}` {
			t.Errorf("catalog after failed uploads = %s", res.Body)
		}
	})
}

func TestUploadOfAnotherRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	loc := e.startUpload("owner")
	wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: []byte("mine")}), http.StatusAccepted)
	id := path.Base(loc)
	other := "/v2/thief/blobs/uploads/" + id
	d := digest.FromString("mine")
	for _, r := range []req{
		{Method: "GET", Path: other},
		{Method: "PATCH", Path: other, Body: []byte("theirs")},
		{Method: "PUT", Path: other + "?digest=" + d.String()},
		{Method: "DELETE", Path: other},
	} {
		wantError(t, e.do(r), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	wantNoBlob(t, e, "thief", d)
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 4)
	wantCreated(t, e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String()}), "owner", d)
	e.wantBlob("owner", d, []byte("mine"))
}

func TestInvalidUploadIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	loc := e.startUpload("r")
	id := path.Base(loc)
	for _, bad := range []string{
		"abc", "..", ".", "info", "data", "0", strings.ToUpper(id), "urn:uuid:" + id, "{" + id + "}",
		strings.ReplaceAll(id, "-", ""), id + "x", id[:35], "%2e%2e",
	} {
		p := "/v2/r/blobs/uploads/" + bad
		for _, r := range []req{
			{Method: "GET", Path: p},
			{Method: "PATCH", Path: p, Body: []byte("x")},
			{Method: "PUT", Path: p + "?digest=" + digest.FromString("x").String(), Body: []byte("x")},
			{Method: "DELETE", Path: p},
		} {
			res := e.do(r)
			if res.Status != http.StatusNotFound || errorCode(t, res) != "BLOB_UPLOAD_UNKNOWN" {
				t.Errorf("%s %s: status %d body %s, want 404 BLOB_UPLOAD_UNKNOWN", r.Method, r.Path, res.Status, res.Body)
			}
		}
	}
	// The real session was not touched.
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantUploadState(t, res, loc, 0)
}

func TestSHA512Blobs(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := bytes.Repeat([]byte("sha512 content "), 1000)
		d := sha512Digest(data)
		res := e.do(req{Method: "POST", Path: "/v2/s512/blobs/uploads/?digest=" + d.String(), Body: data})
		wantCreated(t, res, "s512", d)
		e.wantBlob("s512", d, data)

		// Chunked, finished with a sha512 digest.
		data2 := append([]byte("another "), data...)
		d2 := sha512Digest(data2)
		loc := e.startUpload("s512")
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data2[:100], Header: []string{"Content-Range: 0-99"}}), http.StatusAccepted)
		wantStatus(t, e.do(req{Method: "PATCH", Path: loc, Body: data2[100:5000], Stream: true}), http.StatusAccepted)
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d2.String(), Body: data2[5000:]})
		wantCreated(t, res, "s512", d2)
		e.wantBlob("s512", d2, data2)

		res = e.get("/v2/s512/blobs/"+d2.String(), "Range: bytes=8-20")
		wantStatus(t, res, http.StatusPartialContent)
		if string(res.Body) != string(data2[8:21]) {
			t.Errorf("range of sha512 blob = %q", res.Body)
		}

		// A manifest may reference sha512 blobs.
		layer := desc{MediaType: mtOCILayer, Digest: d, Size: int64(len(data))}
		cfg := desc{MediaType: mtOCIConfig, Digest: d2, Size: int64(len(data2))}
		body := mustJSON(t, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: cfg, Layers: []desc{layer}})
		e.pushManifest("s512", "v1", MediaTypeOCIManifest, body)
		md := sha512Digest(body)
		res = e.do(req{Method: "PUT", Path: "/v2/s512/manifests/" + md.String(), Body: body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "Docker-Content-Digest", md.String())
		res = e.get("/v2/s512/manifests/" + md.String())
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Docker-Content-Digest", md.String())
		if !bytes.Equal(res.Body, body) {
			t.Error("sha512-addressed manifest differs")
		}
	})
}

func TestEmptyBlob(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		d := digest.FromBytes(nil)
		res := e.do(req{Method: "POST", Path: "/v2/empty/blobs/uploads/?digest=" + d.String()})
		wantCreated(t, res, "empty", d)
		res = e.get("/v2/empty/blobs/" + d.String())
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Length", "0")
		if len(res.Body) != 0 {
			t.Errorf("empty blob has %d bytes", len(res.Body))
		}
		res = e.head("/v2/empty/blobs/" + d.String())
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Length", "0")

		// POST then an empty PUT.
		loc := e.startUpload("empty2")
		res = e.do(req{Method: "PUT", Path: loc + "?digest=" + d.String()})
		wantCreated(t, res, "empty2", d)
		e.wantBlob("empty2", d, nil)

		// sha512 of nothing.
		d512 := sha512Digest(nil)
		loc = e.startUpload("empty2")
		wantCreated(t, e.do(req{Method: "PUT", Path: loc + "?digest=" + d512.String()}), "empty2", d512)
		e.wantBlob("empty2", d512, nil)

		// Any range of an empty blob is unsatisfiable.
		res = e.get("/v2/empty/blobs/"+d.String(), "Range: bytes=0-0")
		wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
		wantHeader(t, res, "Content-Range", "bytes */0")
	})
}

func TestCrossRepositoryMount(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("shared layer")
		d := e.pushBlob("src", data)

		// With from.
		res := e.do(req{Method: "POST", Path: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=src"})
		wantCreated(t, res, "dst", d)
		e.wantBlob("dst", d, data)

		// Without from: it exists somewhere.
		res = e.do(req{Method: "POST", Path: "/v2/dst2/a/blobs/uploads/?mount=" + d.String()})
		wantCreated(t, res, "dst2/a", d)
		e.wantBlob("dst2/a", d, data)

		// From a repository that does not have it: a new session.
		res = e.do(req{Method: "POST", Path: "/v2/dst3/blobs/uploads/?mount=" + d.String() + "&from=unrelated"})
		wantStatus(t, res, http.StatusAccepted)
		wantNoBlob(t, e, "dst3", d)
		loc := res.Header.Get("Location")
		wantUploadState(t, res, loc, 0)

		// A blob nobody has: a new session, which works.
		missing := []byte("not pushed yet")
		md := digest.FromBytes(missing)
		for _, q := range []string{"?mount=" + md.String() + "&from=src", "?mount=" + md.String()} {
			res = e.do(req{Method: "POST", Path: "/v2/dst4/blobs/uploads/" + q})
			wantStatus(t, res, http.StatusAccepted)
			loc = res.Header.Get("Location")
			if !strings.HasPrefix(loc, "/v2/dst4/blobs/uploads/") {
				t.Fatalf("Location = %q", loc)
			}
			wantUploadState(t, res, loc, 0)
		}
		wantNoBlob(t, e, "dst4", md)
		wantCreated(t, e.do(req{Method: "PUT", Path: loc + "?digest=" + md.String(), Body: missing}), "dst4", md)
		e.wantBlob("dst4", md, missing)

		// An invalid from.
		res = e.do(req{Method: "POST", Path: "/v2/dst5/blobs/uploads/?mount=" + d.String() + "&from=Bad..Name"})
		wantError(t, res, http.StatusBadRequest, "NAME_INVALID")
		wantNoBlob(t, e, "dst5", d)

		// Deleting the source's link leaves the mounted copy.
		res = e.do(req{Method: "DELETE", Path: "/v2/src/blobs/" + d.String()})
		wantStatus(t, res, http.StatusAccepted)
		wantHeader(t, res, "Docker-Content-Digest", d.String())
		wantNoBlob(t, e, "src", d)
		e.wantBlob("dst", d, data)
	})
}

func TestBlobRanges(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		data := []byte("0123456789abcdefghij")
		d := e.pushBlob("rng", data)
		p := "/v2/rng/blobs/" + d.String()
		for _, tc := range []struct {
			rng          string
			first, last  int
			contentRange string
		}{
			{"bytes=0-9", 0, 9, "bytes 0-9/20"},
			{"bytes=5-", 5, 19, "bytes 5-19/20"},
			{"bytes=-3", 17, 19, "bytes 17-19/20"},
			{"bytes=19-19", 19, 19, "bytes 19-19/20"},
			{"bytes=15-100", 15, 19, "bytes 15-19/20"},
			{"bytes=-100", 0, 19, "bytes 0-19/20"},
			{"bytes=0-0", 0, 0, "bytes 0-0/20"},
		} {
			t.Run(tc.rng, func(t *testing.T) {
				e := e.with(t)
				res := e.get(p, "Range: "+tc.rng)
				wantStatus(t, res, http.StatusPartialContent)
				if want := string(data[tc.first : tc.last+1]); string(res.Body) != want {
					t.Errorf("body = %q, want %q", res.Body, want)
				}
				wantHeader(t, res, "Content-Range", tc.contentRange)
				wantHeader(t, res, "Content-Length", strconv.Itoa(tc.last-tc.first+1))
			})
		}
		for _, rng := range []string{"bytes=20-", "bytes=20-25", "bytes=100-", "bytes=5-2", "bytes=-0"} {
			t.Run(rng, func(t *testing.T) {
				e := e.with(t)
				res := e.get(p, "Range: "+rng)
				wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
				wantHeader(t, res, "Content-Range", "bytes */20")
			})
		}
		for _, rng := range []string{
			"bytes=0-1,3-4", "bytes=0-1, 5-", "bytes=abc", "items=0-1", "bytes=", "bytes=-", "0-5",
			"bytes=+1-2", "bytes=1-+2", "bytes=a-5", "bytes=0-99999999999999999999",
		} {
			t.Run(rng, func(t *testing.T) {
				e := e.with(t)
				res := e.get(p, "Range: "+rng)
				wantStatus(t, res, http.StatusOK)
				if !bytes.Equal(res.Body, data) {
					t.Errorf("body = %q, want the whole blob", res.Body)
				}
				wantHeader(t, res, "Content-Length", "20")
				wantHeader(t, res, "Content-Range", "")
			})
		}
		res := e.head(p, "Range: bytes=0-4")
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Length", "20")
		wantHeader(t, res, "Accept-Ranges", "bytes")
		if len(res.Body) != 0 {
			t.Errorf("HEAD has a body: %q", res.Body)
		}
	})
}

func TestDeleteBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	data := []byte("deleted blob")
	d := e.pushBlob("a", data)
	e.pushBlob("b", data)
	res := e.do(req{Method: "DELETE", Path: "/v2/a/blobs/" + d.String()})
	wantStatus(t, res, http.StatusAccepted)
	wantError(t, e.get("/v2/a/blobs/"+d.String()), http.StatusNotFound, "BLOB_UNKNOWN")
	e.wantBlob("b", d, data)
	// Pushing it again brings it back.
	e.pushBlob("a", data)
	e.wantBlob("a", d, data)
}

// breakingBody returns its content and then fails, as the body of a
// client that disconnects mid-request does.
type breakingBody struct{ r io.Reader }

func (b *breakingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestBrokenUploadBody: a request body that breaks off is the client's
// failure: it is answered with a 4xx, not 500, and a chunk keeps the bytes
// received so the client can resume after them.
func TestBrokenUploadBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	serve := func(method, p string, body string) *response {
		r := httptest.NewRequest(method, p, &breakingBody{strings.NewReader(body)})
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		return &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	}
	loc := e.startUpload("r")
	d := digest.FromString("hello")
	for _, tc := range []struct{ method, path string }{
		{"PATCH", loc},
		{"PUT", loc + "?digest=" + d.String()},
		{"POST", "/v2/r/blobs/uploads/?digest=" + d.String()},
	} {
		res := serve(tc.method, tc.path, "hello")
		if res.Status < 400 || res.Status >= 500 {
			t.Errorf("%s with a broken body: status %d (%s), want 4xx", tc.method, res.Status, short(res.Body))
		} else {
			errorCode(t, res)
		}
		if tc.method == "PATCH" {
			res := e.get(loc)
			wantStatus(t, res, http.StatusNoContent)
			wantUploadState(t, res, loc, 5)
		}
	}
	wantNoBlob(t, e, "r", d)
}

// TestMountWithoutFromFromIndex checks that a mount without from judges only the repositories
// that hold the blob (found through metadata's index), however many repositories there are,
// and only mounts from one the caller may read.
func TestMountWithoutFromFromIndex(t *testing.T) {
	t.Parallel()
	var asked []string
	allowed := "holder/b"
	e := newEnv(t, Options{MayMount: func(_ *http.Request, name string) bool {
		asked = append(asked, name)
		return name == allowed
	}})
	data := []byte("a layer two repositories hold")
	d := e.pushBlob("holder/a", data)
	e.pushBlob("holder/b", data)
	for i := range 300 {
		e.pushBlob(fmt.Sprintf("other/%03d", i), []byte(fmt.Sprintf("unrelated %d", i)))
	}
	res := e.do(req{Method: "POST", Path: "/v2/dst/blobs/uploads/?mount=" + d.String()})
	wantCreated(t, res, "dst", d)
	e.wantBlob("dst", d, data)
	for _, name := range asked {
		if !strings.HasPrefix(name, "holder/") {
			t.Errorf("MayMount was asked about %s, which does not hold the blob", name)
		}
	}
	if len(asked) == 0 || len(asked) > 2 {
		t.Errorf("MayMount asked about %q, want one or both holders", asked)
	}
	// Nobody readable holds it: a new session.
	allowed = "nobody"
	res = e.do(req{Method: "POST", Path: "/v2/dst2/blobs/uploads/?mount=" + d.String()})
	wantStatus(t, res, http.StatusAccepted)
	wantNoBlob(t, e, "dst2", d)
}
