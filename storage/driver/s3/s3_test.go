package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
)

// testOptions are the options for a driver on m's bucket, with the
// smallest part size S3 allows so that modest files span several parts.
func testOptions(m testenv.MinIO) Options {
	return Options{
		Endpoint:  m.Endpoint,
		Region:    m.Region,
		Bucket:    m.Bucket,
		AccessKey: m.AccessKey,
		SecretKey: m.SecretKey,
		PathStyle: true,
		PartSize:  MinPartSize,
	}
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
// bucket and root, as replicas sharing a bucket would. Afterwards the
// bucket must hold nothing: no file, no pending state, no upload.
func TestSuite(t *testing.T) {
	m := testenv.StartMinIO(t)
	opts := testOptions(m)
	opts.RootDirectory = "registry/test"
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newTestDriver(t, opts) })
	wantBucketEmpty(t, newTestDriver(t, opts))
}

// wantBucketEmpty fails t if any object is left in d's bucket.
func wantBucketEmpty(t *testing.T, d *Driver) {
	t.Helper()
	wantKeys(t, d)
}

// wantKeys checks that d's bucket holds exactly the objects of paths:
// nothing else, such as pending state.
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
	if !slices.Equal(keys, want) {
		t.Errorf("the bucket holds %q, want %q", keys, want)
	}
}

// uploads returns the ids of the multipart uploads in progress for key.
func uploads(t *testing.T, d *Driver, key string) []string {
	t.Helper()
	out, err := d.client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &d.bucket, Prefix: &key})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) == key {
			ids = append(ids, aws.ToString(u.UploadId))
		}
	}
	return ids
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
	for i, sizes := 0, []int{1, 4096, 3 << 20, 65537, 7 << 20}; len(b) > 0; i++ {
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
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(m)), newTestDriver(t, testOptions(m))
	const p = "/uploads/u1/data"
	content := randomBytes(t, 19<<20+12345)
	chunks := [][]byte{content[:7<<20+123], content[7<<20+123 : 13<<20], content[13<<20 : 16<<20+1], content[16<<20+1:]}

	w, err := a.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, chunks[0])
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	// Not committed: readers do not see it, and it is not a directory.
	if _, err := b.Stat(ctx, p); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Stat before Commit = %v, want ErrNotFound", err)
	}

	done := int64(len(chunks[0]))
	for i, c := range chunks[1:] {
		d := []*Driver{b, a, b}[i]
		w, err := d.Writer(ctx, p, true)
		if err != nil {
			t.Fatalf("Writer(append) on replica %d = %v", i%2, err)
		}
		if w.Size() != done {
			t.Fatalf("resumed Size() = %d, want %d", w.Size(), done)
		}
		write(t, w, c)
		done += int64(len(c))
		if i < 2 {
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			continue
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit() = %v", err)
		}
	}
	wantContent(t, a, p, content)
	if ids := uploads(t, a, a.key(p)); len(ids) != 0 {
		t.Errorf("uploads left after Commit: %q", ids)
	}
	wantKeys(t, a, p) // and no pending state
	if err := a.Delete(ctx, "/uploads"); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, a)
}

// TestWriterDiesBeforeClose drops a writer that uploaded parts after its
// last Close, as a process that dies would. The next writer resumes where
// that Close left the file, and the parts uploaded since are replaced.
func TestWriterDiesBeforeClose(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	a, b := newTestDriver(t, testOptions(m)), newTestDriver(t, testOptions(m))
	const p = "/f"
	kept := randomBytes(t, 6<<20)
	lost := randomBytes(t, 11<<20)
	rest := randomBytes(t, 3<<20)

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
	write(t, w, lost) // two more parts uploaded, then the process dies

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
	if ids := uploads(t, b, b.key(p)); len(ids) != 0 {
		t.Errorf("uploads left after Commit: %q", ids)
	}
	if err := b.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, b)
}

// TestMultipartParts writes 23 MiB in 5 MiB parts and checks the stored
// object: five parts, all but the last of the part size, and the content.
func TestMultipartParts(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	const p = "/blobs/big"
	content := randomBytes(t, 23<<20)
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
	wantParts(t, d, p, MinPartSize, 5)
	wantContent(t, d, p, content)
	fi, err := d.Stat(ctx, p)
	if err != nil || fi.Size() != int64(len(content)) {
		t.Fatalf("Stat = %v, %v; want %d bytes", fi, err, len(content))
	}
	// A ranged read across a part boundary.
	r, err := d.Reader(ctx, p, 10<<20-7)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !bytes.Equal(head, content[10<<20-7:10<<20+93]) {
		t.Error("Reader at an offset across a part boundary read other bytes")
	}
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, d)
}

// wantParts checks that the object at p was stored in count parts, the
// first of partSize bytes.
func wantParts(t *testing.T, d *Driver, p string, partSize int64, count int32) {
	t.Helper()
	out, err := d.client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &d.bucket, Key: aws.String(d.key(p)), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatalf("HeadObject(part 1) = %v", err)
	}
	if got := aws.ToInt32(out.PartsCount); got != count {
		t.Errorf("%s has %d parts, want %d", p, got, count)
	}
	if got := aws.ToInt64(out.ContentLength); got != partSize {
		t.Errorf("%s: part 1 has %d bytes, want %d", p, got, partSize)
	}
}

// TestAppendToLargeCommitted appends to a committed file of more than two
// parts: its full parts are copied by the server into the new upload.
func TestAppendToLargeCommitted(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	const p = "/appended"
	first, more := randomBytes(t, 11<<20+5), randomBytes(t, 4<<20)
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
	if err := w.Close(); err != nil { // and resume once more
		t.Fatal(err)
	}
	wantContent(t, d, p, first) // still the committed file
	if w, err = d.Writer(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, p, slices.Concat(first, more))
	wantParts(t, d, p, MinPartSize, 4)
	wantKeys(t, d, p)
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, d)
}

// TestMoveLarge moves files larger than a part, with CopyObject and, with
// the threshold lowered, part by part with UploadPartCopy.
func TestMoveLarge(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	for _, multipart := range []bool{false, true} {
		d := newTestDriver(t, testOptions(m))
		if multipart {
			d.copyThreshold, d.copyPartSize = MinPartSize, MinPartSize
		}
		content := randomBytes(t, 12<<20+1)
		src, dst := "/uploads/x/data", "/blobs/sha256/ab/abcd/data"
		w, err := d.Writer(ctx, src, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, content)
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Move(ctx, src, dst); err != nil {
			t.Fatalf("Move = %v", err)
		}
		wantContent(t, d, dst, content)
		if multipart {
			wantParts(t, d, dst, MinPartSize, 3)
		}
		if _, err := d.Stat(ctx, src); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Stat(src) after Move = %v, want ErrNotFound", err)
		}
		if err := d.Delete(ctx, "/blobs"); err != nil {
			t.Fatal(err)
		}
		wantBucketEmpty(t, d)
	}
}

// TestCancelAndDeleteAbortUploads checks that discarding a file in
// progress leaves no multipart upload and no pending object, whether by
// Cancel or by deleting the directory that holds it.
func TestCancelAndDeleteAbortUploads(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	for _, viaDelete := range []bool{false, true} {
		const p = "/uploads/u2/data"
		w, err := d.Writer(ctx, p, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, randomBytes(t, 11<<20))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if ids := uploads(t, d, d.key(p)); len(ids) != 1 {
			t.Fatalf("uploads in progress: %q, want one", ids)
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
		if ids := uploads(t, d, d.key(p)); len(ids) != 0 {
			t.Errorf("uploads left: %q", ids)
		}
		if _, err := d.Writer(ctx, p, true); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Writer(append) after discarding = %v, want ErrNotFound", err)
		}
		wantBucketEmpty(t, d)
	}
}

// TestStalePending: a file replaced after a writer closed without Commit
// is appended to as it is now; the older pending state is dropped.
func TestStalePending(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	const p = "/f"
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("old pending"))
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
	wantBucketEmpty(t, d)
}

// TestUploadGone: when the multipart upload of a pending state is gone
// (aborted by a lifecycle rule, say), its content is lost; appending
// continues the committed file, or finds nothing.
func TestUploadGone(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
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
		write(t, w, randomBytes(t, 6<<20))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ids := uploads(t, d, d.key(p))
		if len(ids) != 1 {
			t.Fatalf("uploads = %q, want one", ids)
		}
		if err := d.abortUpload(ctx, d.key(p), ids[0]); err != nil {
			t.Fatal(err)
		}
		w, err = d.Writer(ctx, p, true)
		if base == nil {
			if !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Writer(append) with the upload gone = %v, want ErrNotFound", err)
			}
			wantBucketEmpty(t, d)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if w.Size() != int64(len(base)) {
			t.Errorf("Writer(append) with the upload gone: Size() = %d, want %d (the committed file)", w.Size(), len(base))
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
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	for _, p := range []string{"/a", "/b/c"} {
		if err := d.putObject(ctx, d.pendingKey(p), []byte("junk"), map[string]string{metaFormat: "99"}); err != nil {
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
	wantBucketEmpty(t, d)
}

// TestBucketTopLevel uses the bucket's top level as root: the pending
// state then sits next to the files, and must not show.
func TestBucketTopLevel(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	d := newTestDriver(t, testOptions(m))
	w, err := d.Writer(ctx, "/x/y", false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("pending"))
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
	// Deleting the directory of the pending file removes its state.
	if err := d.Delete(ctx, "/x"); err != nil {
		t.Errorf(`Delete("/x") = %v`, err)
	}
	if err := d.Delete(ctx, "/z"); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, d)
}

// TestRedirect fetches a presigned URL with a plain HTTP client.
func TestRedirect(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	opts := testOptions(m)
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
	if !strings.HasPrefix(u, m.Endpoint+"/") {
		t.Errorf("RedirectURL = %q, not on the endpoint %s", u, m.Endpoint)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("GET presigned URL: %s, %d bytes, %v; want 200 with the %d bytes", resp.Status, len(body), err, len(content))
	}
	// Clients following the redirect send their Range along.
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[10:20]) {
		t.Errorf("ranged GET of presigned URL: %s, %q", resp.Status, body)
	}

	if u, err := d.RedirectURL(httpRequest(t, http.MethodHead), p); u != "" || err != nil {
		t.Errorf("RedirectURL for HEAD = %q, %v; want none", u, err)
	}
	if _, err := d.RedirectURL(get, "/bad//path"); !errors.Is(err, driver.ErrInvalidPath) {
		t.Errorf("RedirectURL of an invalid path = %v", err)
	}
	off := newTestDriver(t, testOptions(m))
	if u, err := off.RedirectURL(get, p); u != "" || err != nil {
		t.Errorf("RedirectURL without Options.Redirect = %q, %v; want none", u, err)
	}
	if err := d.Delete(ctx, "/blobs"); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, d)
}

func httpRequest(t *testing.T, method string) *http.Request {
	r, err := http.NewRequestWithContext(t.Context(), method, "http://registry.example/v2/x/blobs/sha256:abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOptionsValidation(t *testing.T) {
	ok := Options{Bucket: "b", Region: "us-east-1", AccessKey: "a", SecretKey: "s"}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no bucket", func(o *Options) { o.Bucket = "" }, "bucket is required"},
		{"bad endpoint", func(o *Options) { o.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{"bad root", func(o *Options) { o.RootDirectory = "a b" }, "root directory"},
		{"half credentials", func(o *Options) { o.SecretKey = "" }, "access key and secret key"},
		{"small parts", func(o *Options) { o.PartSize = MinPartSize - 1 }, "part size"},
		{"huge parts", func(o *Options) { o.PartSize = MaxPartSize + 1 }, "part size"},
		{"negative attempts", func(o *Options) { o.MaxAttempts = -1 }, "max attempts"},
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
	for _, root := range []string{"", "/", "a", "/a/b/", "a.b/c-d_e"} {
		o := ok
		o.RootDirectory = root
		d, err := newDriver(t.Context(), o)
		if err != nil {
			t.Errorf("RootDirectory %q: %v", root, err)
			continue
		}
		if got, want := d.key("/x"), strings.Trim(root, "/")+"/x"; got != strings.TrimPrefix(want, "/") {
			t.Errorf("RootDirectory %q: key(/x) = %q", root, got)
		}
	}
}

func TestNewChecksBucket(t *testing.T) {
	m := testenv.StartMinIO(t)
	opts := testOptions(m)
	opts.Bucket = "no-such-bucket"
	if _, err := New(t.Context(), opts); err == nil {
		t.Error("New with a missing bucket succeeded")
	}
	opts = testOptions(m)
	opts.SecretKey = "wrong-secret"
	opts.MaxAttempts = 1
	if _, err := New(t.Context(), opts); err == nil {
		t.Error("New with a wrong secret key succeeded")
	}
}

func ExampleNew() {
	d, err := New(context.Background(), Options{
		Endpoint:      "http://127.0.0.1:9000",
		Bucket:        "registry",
		RootDirectory: "berth",
		PathStyle:     true, // MinIO
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = d
}
