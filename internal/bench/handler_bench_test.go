package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// These benchmarks run berth's handler in process, without the network,
// so that `go test -bench . -cpuprofile` shows where a request's time goes.
// They measure; they assert nothing about speed.

func newHandler(b *testing.B) http.Handler {
	b.Helper()
	dir := b.TempDir()
	drv, err := filesystem.New(filepath.Join(dir, "storage"))
	if err != nil {
		b.Fatal(err)
	}
	meta, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { meta.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	blobs := storage.New(drv)
	return registry.Handler(registry.New(blobs, gc.Guard(meta, blobs), registry.Options{Logger: log}), registry.HandlerOptions{Logger: log})
}

func serve(b *testing.B, h http.Handler, method, target string, body []byte, hdr map[string]string, want int) *httptest.ResponseRecorder {
	b.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequestWithContext(context.Background(), method, target, r)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
	}
	return w
}

func pushImage(b *testing.B, h http.Handler, repo string, img image, tags ...string) {
	b.Helper()
	for _, blob := range [][]byte{img.config, img.layer} {
		d := fmt.Sprintf("sha256:%x", sha256sum(blob))
		serve(b, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, blob, nil, http.StatusCreated)
	}
	for _, t := range tags {
		serve(b, h, http.MethodPut, "/v2/"+repo+"/manifests/"+t, img.manifest, map[string]string{"Content-Type": mediaTypeManifest}, http.StatusCreated)
	}
}

func BenchmarkManifestGetByTag(b *testing.B) {
	h := newHandler(b)
	pushImage(b, h, "bench/manifest", newImage(1, true), "latest")
	hdr := map[string]string{"Accept": acceptManifests}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve(b, h, http.MethodGet, "/v2/bench/manifest/manifests/latest", nil, hdr, http.StatusOK)
	}
}

func BenchmarkCatalogPage(b *testing.B) {
	h := newHandler(b)
	img := newImage(2, true)
	pushImage(b, h, "repo-0000", img)
	d := fmt.Sprintf("sha256:%x", sha256sum(img.layer))
	for i := 1; i < 2000; i++ {
		serve(b, h, http.MethodPost, fmt.Sprintf("/v2/repo-%04d/blobs/uploads/?mount=%s&from=repo-0000", i, d), nil, nil, http.StatusCreated)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve(b, h, http.MethodGet, "/v2/_catalog?n=1000&last=repo-0500", nil, nil, http.StatusOK)
	}
}

func BenchmarkTagList(b *testing.B) {
	h := newHandler(b)
	img := newImage(3, true)
	pushImage(b, h, "bench/tags", img)
	d := fmt.Sprintf("sha256:%x", sha256sum(img.manifest))
	for lo := 0; lo < 10000; lo += 100 {
		q := ""
		for i := lo; i < lo+100; i++ {
			q += fmt.Sprintf("&tag=%s", tagName(i))
		}
		serve(b, h, http.MethodPut, "/v2/bench/tags/manifests/"+d+"?"+q[1:], img.manifest, map[string]string{"Content-Type": mediaTypeManifest}, http.StatusCreated)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve(b, h, http.MethodGet, "/v2/bench/tags/tags/list", nil, nil, http.StatusOK)
	}
}
