package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
)

// testPartSize is the smallest block size, so that modest files span
// several blocks.
const testPartSize = MinBlockSize

func testOptions(a testenv.Azurite) Options {
	return Options{Endpoint: a.Endpoint, AccountName: a.AccountName, AccountKey: a.AccountKey, Container: a.Container, BlockSize: testPartSize}
}

func newTestDriver(t *testing.T, opts Options) *Driver {
	t.Helper()
	d, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New(%+v) = %v", opts, err)
	}
	return d
}

// TestSuite runs the shared suite with a new Driver per test, all on one
// container and root, as replicas sharing a container would. Afterwards the
// container must hold nothing: no file, no pending state, no part.
func TestSuite(t *testing.T) {
	az := testenv.StartAzurite(t)
	opts := testOptions(az)
	opts.RootDirectory = "registry/test"
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newTestDriver(t, opts) })
	wantKeys(t, newTestDriver(t, opts))
}

// wantKeys checks that d's container holds exactly the objects of paths.
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
		t.Errorf("the container holds %q, want %q", keys, want)
	}
}

// partCount is how many uncommitted blocks blob p has.
func partCount(t *testing.T, d *Driver, p string) int {
	t.Helper()
	resp, err := d.blob(d.key(p)).GetBlockList(t.Context(), blockblob.BlockListTypeUncommitted, nil)
	if isNotFound(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.UncommittedBlocks)
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
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(az)), newTestDriver(t, testOptions(az))
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
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(az)), newTestDriver(t, testOptions(az))
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
		t.Fatalf("%d blocks staged, want at least 4", n)
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

// TestManyBlocks writes a file of many blocks and reads it back across
// block boundaries.
func TestManyBlocks(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
	const p = "/blobs/big"
	content := randomBytes(t, 40*testPartSize+777)
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
	wantKeys(t, d, p)
	if n := partCount(t, d, p); n != 0 {
		t.Errorf("%d uncommitted blocks left after Commit", n)
	}
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, d)
}

// TestAppendToLargeCommitted appends to a committed file larger than a
// block: the server stages its full blocks again from it.
func TestAppendToLargeCommitted(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
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
	if w, err = newTestDriver(t, testOptions(az)).Writer(ctx, p, true); err != nil {
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

// TestCancelAndDeleteRemoveState checks that discarding a file in progress
// leaves no pending blob and nothing a later writer could resume, whether
// by Cancel or by deleting the directory that holds it.
func TestCancelAndDeleteRemoveState(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
	for i, viaDelete := range []bool{false, true} {
		p := fmt.Sprintf("/uploads/u%d/data", i)
		w, err := d.Writer(ctx, p, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, randomBytes(t, 3*testPartSize))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if n := partCount(t, d, p); n != 3 {
			t.Fatalf("%d blocks staged, want 3", n)
		}
		if viaDelete {
			if err := d.Delete(ctx, path.Dir(p)); err != nil {
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
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
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

// TestBlocksGone: when a block a pending state names is gone (Azure
// discards uncommitted blocks after a week), its content is lost;
// appending continues the committed file, or finds nothing.
func TestBlocksGone(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
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
		// The state now claims a third block that was never staged.
		st, tail, err := d.readPending(ctx, d.pendingKey(p))
		if err != nil || st == nil {
			t.Fatalf("readPending = %v, %v", st, err)
		}
		st.blocks++
		if err := d.put(ctx, d.pendingKey(p), tail, st.metadata()); err != nil {
			t.Fatal(err)
		}
		w, err = d.Writer(ctx, p, true)
		if base == nil {
			if !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Writer(append) with a block gone = %v, want ErrNotFound", err)
			}
			wantKeys(t, d)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if w.Size() != int64(len(base)) {
			t.Errorf("Writer(append) with a block gone: Size() = %d, want %d (the committed file)", w.Size(), len(base))
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
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
	for _, p := range []string{"/a", "/b/c"} {
		if err := d.put(ctx, d.pendingKey(p), []byte("junk"), map[string]*string{metaFormat: ptr("99")}); err != nil {
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

// TestContainerTopLevel uses the container's top level as root: the driver's
// state then sits next to the files, and must not show.
func TestContainerTopLevel(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(az))
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

// TestRedirect fetches a SAS URL with a plain HTTP client; Azurite checks
// the signature, so a URL signed wrong or for another blob fails.
func TestRedirect(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	opts := testOptions(az)
	opts.RootDirectory = "root"
	opts.Redirect = true
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
	if !strings.HasPrefix(u, az.Endpoint+"/"+az.Container+"/root%2Fblobs%2F") || !strings.Contains(u, "sp=r&") {
		t.Errorf("RedirectURL = %s, want a read-only SAS URL of the blob on %s", u, az.Endpoint)
	}
	// A tampered signature is refused.
	bad := strings.Replace(u, "sig=", "sig=A", 1)
	if resp, err := http.Get(bad); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET with a wrong signature: %v, %v; want 403", resp, err)
	} else {
		resp.Body.Close()
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
	if u, err := newTestDriver(t, testOptions(az)).RedirectURL(get, p); u != "" || err != nil {
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
	// not know for a container name.
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }}
	var n, failed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			failed.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("x-ms-error-code", "ServerBusy")
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &failed
}

// TestRetries runs a whole upload, read, list and delete through a
// proxy that fails every third request with 503: every operation must
// succeed on retries.
func TestRetries(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := t.Context()
	proxy, failed := flakyProxy(t, strings.TrimSuffix(az.Endpoint, "/"+az.AccountName))
	opts := testOptions(az)
	opts.Endpoint = proxy.URL + "/" + az.AccountName
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
	// Azurite reads the source of a copy from the host its URL names,
	// which cannot be this proxy: the move goes to Azurite directly.
	direct := newTestDriver(t, testOptions(az))
	if err := direct.Move(ctx, src, dst); err != nil {
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
	wantKeys(t, newTestDriver(t, testOptions(az)))
}

func TestOptionsValidation(t *testing.T) {
	ok := Options{AccountName: "a", AccountKey: "a2V5", Container: "c"}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no account", func(o *Options) { o.AccountName = "" }, "account name is required"},
		{"no key", func(o *Options) { o.AccountKey = "" }, "account key is required"},
		{"key not base64", func(o *Options) { o.AccountKey = "not base64!" }, "base64"},
		{"no container", func(o *Options) { o.Container = "" }, "container is required"},
		{"bad endpoint", func(o *Options) { o.Endpoint = "127.0.0.1:10000" }, "endpoint"},
		{"bad root", func(o *Options) { o.RootDirectory = "a b" }, "root directory"},
		{"small blocks", func(o *Options) { o.BlockSize = MinBlockSize - 1 }, "block size"},
		{"huge blocks", func(o *Options) { o.BlockSize = MaxBlockSize + 1 }, "block size"},
		{"long expiry", func(o *Options) { o.RedirectExpiry = 8 * 24 * 3600e9 }, "redirect expiry"},
		{"negative attempts", func(o *Options) { o.MaxAttempts = -1 }, "max attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := newDriver(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newDriver = %v, want an error about %q", err, tc.want)
			}
		})
	}
	for _, root := range []string{"", "/", "a", "/a/b/", "a.b/c-d_e"} {
		o := ok
		o.RootDirectory = root
		d, err := newDriver(o)
		if err != nil {
			t.Errorf("RootDirectory %q: %v", root, err)
			continue
		}
		if got, want := d.key("/x"), strings.TrimPrefix(strings.Trim(root, "/")+"/x", "/"); got != want {
			t.Errorf("RootDirectory %q: key(/x) = %q, want %q", root, got, want)
		}
	}
}

func TestNewChecksContainer(t *testing.T) {
	az := testenv.StartAzurite(t)
	opts := testOptions(az)
	opts.Container = "no-such-container"
	opts.MaxAttempts = 1
	if _, err := New(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "no-such-container") {
		t.Errorf("New with a missing container = %v", err)
	}
	opts = testOptions(az)
	opts.AccountKey = "d3Jvbmcga2V5"
	opts.MaxAttempts = 1
	if _, err := New(t.Context(), opts); err == nil {
		t.Error("New with a wrong key succeeded")
	}
}

func ExampleNew() {
	d, err := New(context.Background(), Options{
		AccountName:   "myaccount",
		AccountKey:    os.Getenv("AZURE_STORAGE_KEY"),
		Container:     "registry",
		RootDirectory: "berth",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = d
}
