package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
)

// testPartSize is the smallest part size, so that modest files span
// several parts and compose trees.
const testPartSize = MinPartSize

func testOptions(g testenv.GCS) Options {
	return Options{Endpoint: g.Endpoint, Bucket: g.Bucket, Anonymous: true, PartSize: testPartSize}
}

func newTestDriver(t *testing.T, opts Options) *Driver {
	t.Helper()
	d, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New(%+v) = %v", opts, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestSuite runs the shared suite with a new Driver per test, all on one
// bucket and root, as replicas sharing a bucket would. Afterwards the
// bucket must hold nothing: no file, no pending state, no part.
func TestSuite(t *testing.T) {
	g := testenv.StartGCS(t)
	opts := testOptions(g)
	opts.RootDirectory = "registry/test"
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newTestDriver(t, opts) })
	wantKeys(t, newTestDriver(t, opts))
}

// wantKeys checks that d's bucket holds exactly the objects of paths.
func wantKeys(t *testing.T, d *Driver, paths ...string) {
	t.Helper()
	keys, err := d.listKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(paths))
	for i, p := range paths {
		want[i] = d.key(p)
	}
	slices.Sort(want)
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Errorf("the bucket holds %q, want %q", keys, want)
	}
}

// partCount is how many part objects uploads of p have.
func partCount(t *testing.T, d *Driver, p string) int {
	t.Helper()
	keys, err := d.listKeys(t.Context(), d.partsPrefix(p))
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, w driver.FileWriter, b []byte) {
	t.Helper()
	// Irregular chunks, so that writes straddle part boundaries.
	for i, sizes := 0, []int{1, 4096, 300 << 10, 65537, 700 << 10}; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if k, err := w.Write(b[:n]); err != nil || k != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
		}
		b = b[n:]
	}
}

func wantContent(t *testing.T, d driver.Driver, p string, want []byte) {
	t.Helper()
	r, err := d.Reader(t.Context(), p, 0)
	if err != nil {
		t.Fatalf("Reader(%q) = %v", p, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("reading %q: %v", p, err)
	}
	if got, exp := h.Sum(nil), sha256.Sum256(want); n != int64(len(want)) || !bytes.Equal(got, exp[:]) {
		t.Fatalf("%s: read %d bytes with sha256 %x, want %d bytes with %x", p, n, got, len(want), exp)
	}
}

// TestResumeOnAnotherReplica writes one file through two drivers, as two
// replicas behind a load balancer would serve the requests of one upload:
// each request opens the writer with append, writes and closes it.
func TestResumeOnAnotherReplica(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(g)), newTestDriver(t, testOptions(g))
	const p = "/uploads/u1/data"
	content := randomBytes(t, 19*testPartSize/2+12345)
	cuts := []int{len(content) / 5, len(content) / 2, len(content)/2 + 1}
	chunks := [][]byte{content[:cuts[0]], content[cuts[0]:cuts[1]], content[cuts[1]:cuts[2]], content[cuts[2]:]}

	// As berth's uploads do: an empty file first, then appends.
	if err := a.PutContent(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	done := int64(0)
	for i, c := range chunks {
		d := []*Driver{a, b, a, b}[i]
		w, err := d.Writer(ctx, p, true)
		if err != nil {
			t.Fatalf("Writer(append) on replica %d = %v", i%2, err)
		}
		if w.Size() != done {
			t.Fatalf("resumed Size() = %d, want %d", w.Size(), done)
		}
		write(t, w, c)
		done += int64(len(c))
		if i < len(chunks)-1 {
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			// Not committed: readers see the empty file.
			if fi, err := b.Stat(ctx, p); err != nil || fi.Size() != 0 {
				t.Fatalf("Stat before Commit = %v, %v; want the empty file", fi, err)
			}
			continue
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit() = %v", err)
		}
	}
	wantContent(t, a, p, content)
	wantKeys(t, a, p) // no pending state, no parts
	if err := a.Delete(ctx, "/uploads"); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, a)
}

// TestWriterDiesBeforeClose drops a writer that uploaded parts after its
// last Close, as a process that dies would. The next writer resumes where
// that Close left the file, and the parts uploaded since are replaced.
func TestWriterDiesBeforeClose(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(g)), newTestDriver(t, testOptions(g))
	const p = "/f"
	kept := randomBytes(t, 3*testPartSize/2)
	lost := randomBytes(t, 3*testPartSize)
	rest := randomBytes(t, testPartSize/3)

	w, err := a.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, kept)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = a.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, lost) // more parts uploaded, then the process dies
	if n := partCount(t, a, p); n < 4 {
		t.Fatalf("%d parts stored, want at least 4", n)
	}

	w, err = b.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(kept)) {
		t.Fatalf("Size() after the crash = %d, want %d (the last Close)", w.Size(), len(kept))
	}
	write(t, w, rest)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, p, slices.Concat(kept, rest))
	wantKeys(t, b, p)
	if err := b.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, b)
}

// TestComposeTree writes a file of more parts than one compose request
// takes, so that Commit composes in two levels, and reads it back across
// part boundaries.
func TestComposeTree(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	const p = "/blobs/big"
	content := randomBytes(t, (2*maxComposeSources+3)*testPartSize+777)
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, content)
	if w.Size() != int64(len(content)) {
		t.Fatalf("Size() = %d, want %d", w.Size(), len(content))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, p, content)
	fi, err := d.Stat(ctx, p)
	if err != nil || fi.Size() != int64(len(content)) {
		t.Fatalf("Stat = %v, %v; want %d bytes", fi, err, len(content))
	}
	r, err := d.Reader(ctx, p, 3*testPartSize-7)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !bytes.Equal(head, content[3*testPartSize-7:3*testPartSize+93]) {
		t.Error("Reader at an offset across a part boundary read other bytes")
	}
	wantKeys(t, d, p) // intermediate composites are gone too
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// TestAppendToLargeCommitted appends to a committed file larger than a
// part: the server copies it into the upload's head.
func TestAppendToLargeCommitted(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	const p = "/appended"
	first, more := randomBytes(t, 5*testPartSize/2), randomBytes(t, 2*testPartSize)
	if err := d.PutContent(ctx, p, first); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(first)) {
		t.Fatalf("Size() = %d, want %d", w.Size(), len(first))
	}
	write(t, w, more)
	if err := w.Close(); err != nil { // and resume once more, elsewhere
		t.Fatal(err)
	}
	wantContent(t, d, p, first) // still the committed file
	if w, err = newTestDriver(t, testOptions(g)).Writer(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(first)+len(more)) {
		t.Fatalf("resumed Size() = %d, want %d", w.Size(), len(first)+len(more))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, p, slices.Concat(first, more))
	wantKeys(t, d, p)
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// TestCancelAndDeleteRemoveParts checks that discarding a file in progress
// leaves no part and no pending object, whether by Cancel or by deleting
// the directory that holds it.
func TestCancelAndDeleteRemoveParts(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	for _, viaDelete := range []bool{false, true} {
		const p = "/uploads/u2/data"
		w, err := d.Writer(ctx, p, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, randomBytes(t, 3*testPartSize))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if n := partCount(t, d, p); n != 3 {
			t.Fatalf("%d parts stored, want 3", n)
		}
		if viaDelete {
			if err := d.Delete(ctx, "/uploads/u2"); err != nil {
				t.Fatalf("Delete = %v", err)
			}
		} else {
			w, err := d.Writer(ctx, p, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Cancel(ctx); err != nil {
				t.Fatalf("Cancel = %v", err)
			}
		}
		if _, err := d.Writer(ctx, p, true); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Writer(append) after discarding = %v, want ErrNotFound", err)
		}
		wantKeys(t, d)
	}
}

// TestStalePending: a file replaced after a writer closed without Commit
// is appended to as it is now; the older pending state is dropped.
func TestStalePending(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	const p = "/f"
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, randomBytes(t, testPartSize+5))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if w, err = d.Writer(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if w.Size() != 3 {
		t.Fatalf("Size() = %d, want 3 (the file put after the pending state)", w.Size())
	}
	write(t, w, []byte("+more"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, p, []byte("new+more"))
	wantKeys(t, d, p)
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// TestPartsGone: when a part a pending state names is gone, its content
// is lost; appending continues the committed file, or finds nothing.
func TestPartsGone(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	for _, base := range [][]byte{nil, []byte("committed")} {
		const p = "/uploads/u3/data"
		if base != nil {
			if err := d.PutContent(ctx, p, base); err != nil {
				t.Fatal(err)
			}
		}
		w, err := d.Writer(ctx, p, base != nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, randomBytes(t, 2*testPartSize))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		keys, err := d.listKeys(ctx, d.partsPrefix(p))
		if err != nil || len(keys) != 2 {
			t.Fatalf("parts = %q, %v; want two", keys, err)
		}
		if err := d.obj(keys[1]).Delete(ctx); err != nil {
			t.Fatal(err)
		}
		w, err = d.Writer(ctx, p, true)
		if base == nil {
			if !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Writer(append) with a part gone = %v, want ErrNotFound", err)
			}
			wantKeys(t, d)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if w.Size() != int64(len(base)) {
			t.Errorf("Writer(append) with a part gone: Size() = %d, want %d (the committed file)", w.Size(), len(base))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		wantKeys(t, d, p)
		if err := d.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptPending: a pending object this driver cannot read stops an
// append rather than losing data silently; a new writer or a Delete
// removes it.
func TestCorruptPending(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	for _, p := range []string{"/a", "/b/c"} {
		if err := d.upload(ctx, d.obj(d.pendingKey(p)), []byte("junk"), map[string]string{metaFormat: "99"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Writer(ctx, p, true); err == nil || errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Writer(%q, true) over corrupt state = %v, want a failure", p, err)
		}
	}
	w, err := d.Writer(ctx, "/a", false)
	if err != nil {
		t.Fatalf("Writer(false) over corrupt state = %v", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d, "/a", "/~pending/b/c")
	if err := d.Delete(ctx, "/b"); err != nil {
		t.Errorf("Delete(/b) = %v", err)
	}
	if err := d.Delete(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// TestBucketTopLevel uses the bucket's top level as root: the driver's
// state then sits next to the files, and must not show.
func TestBucketTopLevel(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(g))
	w, err := d.Writer(ctx, "/x/y", false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, randomBytes(t, testPartSize+1))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/z", []byte("z")); err != nil {
		t.Fatal(err)
	}
	if names, err := d.List(ctx, "/"); err != nil || !slices.Equal(names, []string{"/z"}) {
		t.Errorf(`List("/") = %q, %v; want ["/z"]`, names, err)
	}
	var walked []string
	err = d.Walk(ctx, "/", func(fi driver.FileInfo) error { walked = append(walked, fi.Path()); return nil })
	if err != nil || !slices.Equal(walked, []string{"/z"}) {
		t.Errorf(`Walk("/") visited %q, %v; want ["/z"]`, walked, err)
	}
	for _, p := range []string{"/x", "/x/y"} {
		if _, err := d.Stat(ctx, p); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", p, err)
		}
	}
	if err := d.Delete(ctx, "/x"); err != nil {
		t.Errorf(`Delete("/x") = %v`, err)
	}
	if err := d.Delete(ctx, "/z"); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// writeServiceAccount writes a service account key file with a new RSA
// key, as the Cloud console hands them out.
func writeServiceAccount(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":         "service_account",
		"project_id":   "berth-test",
		"client_email": "berth@berth-test.iam.gserviceaccount.com",
		"client_id":    "1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":    "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRedirect signs a URL with a service account key and fetches it with
// a plain HTTP client. (The emulator serves signed URLs without checking
// the signature; what is checked here is that the URL is a V4 signature
// for the object on the configured endpoint.)
func TestRedirect(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	opts := testOptions(g)
	opts.RootDirectory = "root"
	opts.Redirect = true
	opts.CredentialsFile = writeServiceAccount(t)
	d := newTestDriver(t, opts)
	const p = "/blobs/sha256/ab/abc/data"
	content := randomBytes(t, 100_000)
	if err := d.PutContent(ctx, p, content); err != nil {
		t.Fatal(err)
	}
	get := httpRequest(t, http.MethodGet)
	u, err := d.RedirectURL(get, p)
	if err != nil || u == "" {
		t.Fatalf("RedirectURL = %q, %v", u, err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := parsed.Query()
	if !strings.HasPrefix(u, g.Endpoint+"/"+g.Bucket+"/root/blobs/") || q.Get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256" ||
		!strings.HasPrefix(q.Get("X-Goog-Credential"), "berth@berth-test.iam.gserviceaccount.com/") || !slices.Contains([]string{"1199", "1200"}, q.Get("X-Goog-Expires")) ||
		len(q.Get("X-Goog-Signature")) != 512 {
		t.Errorf("RedirectURL = %s, want a V4 signed URL of the object on %s", u, g.Endpoint)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("GET signed URL: %s, %d bytes, %v; want 200 with the %d bytes", resp.Status, len(body), err, len(content))
	}
	if u, err := d.RedirectURL(httpRequest(t, http.MethodHead), p); u != "" || err != nil {
		t.Errorf("RedirectURL for HEAD = %q, %v; want none", u, err)
	}
	if _, err := d.RedirectURL(get, "/bad//path"); !errors.Is(err, driver.ErrInvalidPath) {
		t.Errorf("RedirectURL of an invalid path = %v", err)
	}
	if u, err := newTestDriver(t, testOptions(g)).RedirectURL(get, p); u != "" || err != nil {
		t.Errorf("RedirectURL without Options.Redirect = %q, %v; want none", u, err)
	}
	if err := d.Delete(ctx, "/blobs"); err != nil {
		t.Fatal(err)
	}
}

func httpRequest(t *testing.T, method string) *http.Request {
	r, err := http.NewRequestWithContext(t.Context(), method, "http://registry.example/v2/x/blobs/sha256:abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// flakyProxy forwards requests to the emulator, but answers every
// third one with 503 itself, as a throttled service would.
func flakyProxy(t *testing.T, target string) (*httptest.Server, *atomic.Int64) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	// SetURL also sets the Host header: the emulator takes a Host it does
	// not know for a bucket name.
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }}
	var n, failed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			failed.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, `{"error":{"code":503,"message":"try again"}}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &failed
}

// TestRetries runs a whole upload, move, read, list and delete through a
// proxy that fails every third request with 503: every operation must
// succeed on retries.
func TestRetries(t *testing.T) {
	g := testenv.StartGCS(t)
	ctx := t.Context()
	proxy, failed := flakyProxy(t, g.Endpoint)
	opts := testOptions(g)
	opts.Endpoint = proxy.URL
	opts.MaxBackoff = 1 // no need to wait: the next attempt succeeds
	d := newTestDriver(t, opts)
	content := randomBytes(t, 3*testPartSize+10)
	const src, dst = "/uploads/r/data", "/blobs/r"
	if err := d.PutContent(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(content); i += testPartSize {
		w, err := d.Writer(ctx, src, true)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, content[i:min(i+testPartSize, len(content))])
		if i+testPartSize < len(content) {
			err = w.Close()
		} else {
			err = w.Commit(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Move(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, dst, content)
	if names, err := d.List(ctx, "/"); err != nil || !slices.Equal(names, []string{"/blobs", "/uploads"}) && !slices.Equal(names, []string{"/blobs"}) {
		t.Errorf("List = %q, %v", names, err)
	}
	for _, p := range []string{"/uploads", "/blobs"} {
		if err := d.Delete(ctx, p); err != nil && !errors.Is(err, driver.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if failed.Load() < 5 {
		t.Errorf("only %d requests failed: the test exercised few retries", failed.Load())
	}
	wantKeys(t, newTestDriver(t, testOptions(g)))
}

func TestOptionsValidation(t *testing.T) {
	ok := Options{Bucket: "b", Anonymous: true}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no bucket", func(o *Options) { o.Bucket = "" }, "bucket is required"},
		{"bad endpoint", func(o *Options) { o.Endpoint = "127.0.0.1:4443" }, "endpoint"},
		{"bad root", func(o *Options) { o.RootDirectory = "a b" }, "root directory"},
		{"small parts", func(o *Options) { o.PartSize = MinPartSize - 1 }, "part size"},
		{"huge parts", func(o *Options) { o.PartSize = MaxPartSize + 1 }, "part size"},
		{"long expiry", func(o *Options) { o.RedirectExpiry = 8 * 24 * 3600e9 }, "redirect expiry"},
		{"negative attempts", func(o *Options) { o.MaxAttempts = -1 }, "max attempts"},
		{"missing credentials file", func(o *Options) { o.CredentialsFile = "/nonexistent/key.json" }, "credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := newDriver(t.Context(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newDriver = %v, want an error about %q", err, tc.want)
			}
		})
	}
	notKey := filepath.Join(t.TempDir(), "user.json")
	if err := os.WriteFile(notKey, []byte(`{"type":"authorized_user"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := ok
	o.CredentialsFile = notKey
	if _, err := newDriver(t.Context(), o); err == nil || !strings.Contains(err.Error(), "not a service account key") {
		t.Errorf("newDriver with a user credentials file = %v", err)
	}
	for _, root := range []string{"", "/", "a", "/a/b/", "a.b/c-d_e"} {
		o := ok
		o.RootDirectory = root
		d, err := newDriver(t.Context(), o)
		if err != nil {
			t.Errorf("RootDirectory %q: %v", root, err)
			continue
		}
		if got, want := d.key("/x"), strings.TrimPrefix(strings.Trim(root, "/")+"/x", "/"); got != want {
			t.Errorf("RootDirectory %q: key(/x) = %q, want %q", root, got, want)
		}
		d.Close()
	}
}

func TestNewChecksBucket(t *testing.T) {
	g := testenv.StartGCS(t)
	opts := testOptions(g)
	opts.Bucket = "no-such-bucket"
	opts.MaxAttempts = 1
	if _, err := New(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("New with a missing bucket = %v", err)
	}
}

func ExampleNew() {
	d, err := New(context.Background(), Options{
		Bucket:        "registry",
		RootDirectory: "berth",
		// Application Default Credentials, or:
		// CredentialsFile: "/etc/berth/gcs-key.json",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
}
