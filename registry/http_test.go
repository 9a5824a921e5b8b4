package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestOverHTTP runs a push and pull through a real HTTP server, so the
// server's own ResponseWriter (sendfile, HEAD handling, chunked bodies) is
// in the path, over each driver.
func TestOverHTTP(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		srv := httptest.NewServer(e.h)
		t.Cleanup(srv.Close)
		c := srv.Client()
		do := func(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
			t.Helper()
			r, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hdr {
				k, v, _ := strings.Cut(h, ": ")
				r.Header.Set(k, v)
			}
			res, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			return res, b
		}

		data := bytes.Repeat([]byte("over the wire "), 100000)
		d := digest.FromBytes(data)
		res, _ := do("POST", "/v2/wire/blobs/uploads/", nil)
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("start: %d", res.StatusCode)
		}
		loc := res.Header.Get("Location")
		// A chunked request body: the client cannot know its length.
		res, _ = do("PATCH", loc, io.MultiReader(bytes.NewReader(data[:700000])))
		if res.StatusCode != http.StatusAccepted || res.Header.Get("Range") != "0-699999" {
			t.Fatalf("patch: %d Range %q", res.StatusCode, res.Header.Get("Range"))
		}
		res, b := do("PATCH", loc, bytes.NewReader(data[:10]), "Content-Range: 0-9")
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable || res.Header.Get("Range") != "0-699999" {
			t.Fatalf("out of order: %d Range %q %s", res.StatusCode, res.Header.Get("Range"), b)
		}
		res, _ = do("PUT", loc+"?digest="+d.String(), bytes.NewReader(data[700000:]),
			fmt.Sprintf("Content-Range: 700000-%d", len(data)-1))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("finish: %d", res.StatusCode)
		}

		p := "/v2/wire/blobs/" + d.String()
		res, b = do("GET", p, nil)
		if res.StatusCode != http.StatusOK || !bytes.Equal(b, data) || res.ContentLength != int64(len(data)) {
			t.Fatalf("GET: %d, %d bytes (Content-Length %d)", res.StatusCode, len(b), res.ContentLength)
		}
		res, b = do("HEAD", p, nil)
		if res.StatusCode != http.StatusOK || len(b) != 0 || res.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Fatalf("HEAD: %d, %d bytes, Content-Length %q", res.StatusCode, len(b), res.Header.Get("Content-Length"))
		}
		res, b = do("GET", p, nil, "Range: bytes=1000000-1000009")
		if res.StatusCode != http.StatusPartialContent || !bytes.Equal(b, data[1000000:1000010]) ||
			res.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000000-1000009/%d", len(data)) {
			t.Fatalf("range: %d %q %q", res.StatusCode, b, res.Header.Get("Content-Range"))
		}
		res, b = do("GET", p, nil, fmt.Sprintf("Range: bytes=%d-", len(data)))
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(string(b), "RANGE_INVALID") ||
			res.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
			t.Fatalf("unsatisfiable: %d %s %q", res.StatusCode, b, res.Header.Get("Content-Range"))
		}
		res, b = do("HEAD", "/v2/wire/blobs/"+digest.FromString("none").String(), nil)
		if res.StatusCode != http.StatusNotFound || len(b) != 0 {
			t.Fatalf("HEAD of unknown: %d, %d bytes", res.StatusCode, len(b))
		}

		// A manifest sent chunked.
		cfg := []byte("{}")
		res, _ = do("POST", "/v2/wire/blobs/uploads/?digest="+digest.FromBytes(cfg).String(), bytes.NewReader(cfg))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("config: %d", res.StatusCode)
		}
		m := mustJSON(t, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: blobDesc(mtOCIConfig, cfg),
			Layers: []desc{{MediaType: mtOCILayer, Digest: d, Size: int64(len(data))}}})
		res, b = do("PUT", "/v2/wire/manifests/v1", io.MultiReader(bytes.NewReader(m)), "Content-Type: "+MediaTypeOCIManifest)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("manifest: %d %s", res.StatusCode, b)
		}
		res, b = do("GET", "/v2/wire/manifests/v1", nil, "Accept: "+MediaTypeOCIManifest)
		if res.StatusCode != http.StatusOK || !bytes.Equal(b, m) || res.Header.Get("Docker-Content-Digest") != digest.FromBytes(m).String() {
			t.Fatalf("manifest GET: %d %s", res.StatusCode, b)
		}
	})
}

// TestCatalogDefaultPage: without n the catalog answers at most
// defaultCatalogPage names, with a Link to the rest.
func TestCatalogDefaultPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	d := digest.FromString("x")
	for i := range defaultCatalogPage + 1 {
		if err := e.meta.PutBlob(t.Context(), fmt.Sprintf("repo%05d", i), d, 1); err != nil {
			t.Fatal(err)
		}
	}
	got, res := catalog(t, e, "")
	if len(got) != defaultCatalogPage || got[0] != "repo00000" || got[len(got)-1] != fmt.Sprintf("repo%05d", defaultCatalogPage-1) {
		t.Fatalf("first page: %d names, %v ... %v", len(got), got[:1], got[len(got)-1:])
	}
	next := nextLink(t, res)
	if want := fmt.Sprintf("/v2/_catalog?last=repo%05d&n=%d", defaultCatalogPage-1, defaultCatalogPage); next != want {
		t.Fatalf("Link target %q, want %q", next, want)
	}
	got, res = catalog(t, e, strings.TrimPrefix(next, "/v2/_catalog"))
	if len(got) != 1 || got[0] != fmt.Sprintf("repo%05d", defaultCatalogPage) || res.Header.Get("Link") != "" {
		t.Fatalf("second page: %v, Link %q", got, res.Header.Get("Link"))
	}
}
