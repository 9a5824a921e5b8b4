package drivertest

import (
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berthhq/berth/storage/driver"
)

// resumeSize is the size of the files written across several writers:
// past several parts or blocks of an object store driver, provided its
// tests configure small ones (S3's smallest part is 5 MiB; GCS and Azure
// drivers take 256 KiB).
func resumeSize() int {
	if testing.Short() {
		return 3<<20 + 12345
	}
	return 12<<20 + 12345
}

// testWriterResumeLarge writes a file larger than a driver's part in four
// writers, each closed without Commit at an offset that is no multiple of
// anything, as the requests of a chunked upload would, then commits it and
// reads it back from the start and from the middle.
func testWriterResumeLarge(e *env) {
	size := resumeSize()
	content := randomBytes(size)
	cuts := []int{0, size/7 + 3, size/2 + 1, size - size/5 - 11, size}
	p := e.p("upload")
	for i := 0; i+1 < len(cuts); i++ {
		w := e.writer(p, i > 0)
		if w.Size() != int64(cuts[i]) {
			e.t.Fatalf("writer %d: Size() = %d, want %d", i, w.Size(), cuts[i])
		}
		e.write(w, chunk(content[cuts[i]:cuts[i+1]])...)
		if i+2 < len(cuts) {
			if err := w.Close(); err != nil {
				e.t.Fatalf("writer %d: Close() = %v", i, err)
			}
			continue
		}
		e.commit(w)
	}
	e.wantContent(p, content)
	off := int64(size/3 + 77)
	sameContent(e.t, "Reader from the middle", e.read(p, off), content[off:])
	if fi := e.stat(p); fi.Size() != int64(size) {
		e.t.Errorf("Stat(%q).Size() = %d, want %d", p, fi.Size(), size)
	}
}

// testWriterAppendLarge appends to a committed file larger than a part:
// object store drivers have the service copy it rather than reading it.
func testWriterAppendLarge(e *env) {
	size := resumeSize()
	first, more := randomBytes(size/2+3), randomBytes(size/2)
	p := e.p("file")
	w := e.writer(p, false)
	e.write(w, chunk(first)...)
	e.commit(w)
	w = e.writer(p, true)
	if w.Size() != int64(len(first)) {
		e.t.Fatalf("Writer(%q, true).Size() = %d, want %d", p, w.Size(), len(first))
	}
	e.write(w, chunk(more)...)
	if err := w.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}
	w = e.writer(p, true)
	if w.Size() != int64(len(first)+len(more)) {
		e.t.Fatalf("resumed Writer(%q, true).Size() = %d, want %d", p, w.Size(), len(first)+len(more))
	}
	e.commit(w)
	e.wantContent(p, concat(first, more))
}

// testRedirect fetches the redirect URL a driver.Redirector offers with a
// plain HTTP client: it must serve the file's exact bytes, and a ranged
// request the exact range. Drivers that do not redirect pass trivially.
func testRedirect(e *env) {
	rd, ok := e.d.(driver.Redirector)
	if !ok {
		return
	}
	p := e.p("blob")
	content := randomBytes(100_003)
	e.put(p, content)
	req := httptest.NewRequestWithContext(e.ctx, http.MethodGet, "http://registry.example/v2/r/blobs/sha256:0", nil)
	u, err := rd.RedirectURL(req, p)
	if err != nil {
		e.t.Fatalf("RedirectURL(%q) = %v", p, err)
	}
	if u == "" {
		e.t.Logf("%s offers no redirect for %s", e.d.Name(), p)
		return
	}
	client := &http.Client{Timeout: time.Minute}
	get := func(rangeHeader string) (int, []byte) {
		e.t.Helper()
		r, err := http.NewRequestWithContext(e.ctx, http.MethodGet, u, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		if rangeHeader != "" {
			r.Header.Set("Range", rangeHeader)
		}
		resp, err := client.Do(r)
		if err != nil {
			e.t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(content))+1))
		if err != nil {
			e.t.Fatalf("GET %s: %v", u, err)
		}
		return resp.StatusCode, b
	}
	if status, b := get(""); status != http.StatusOK || sha256.Sum256(b) != sha256.Sum256(content) {
		e.t.Errorf("GET of the redirect URL: %d with %d bytes, want 200 with the %d bytes", status, len(b), len(content))
	}
	if status, b := get("bytes=1000-1999"); status != http.StatusPartialContent || string(b) != string(content[1000:2000]) {
		e.t.Errorf("ranged GET of the redirect URL: %d with %d bytes, want 206 with bytes 1000-1999", status, len(b))
	}
}
