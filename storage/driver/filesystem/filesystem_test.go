package filesystem

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
)

// TestSuite runs the shared suite with a new Driver per test, all over the
// same root, as separate processes sharing a disk would.
func TestSuite(t *testing.T) {
	root := t.TempDir()
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newDriver(t, root) })

	// Nothing may remain on disk either: no data, no staged files.
	for _, dir := range []string{"data", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left on disk: %s/%s", dir, e.Name())
		}
	}
}

func newDriver(t *testing.T, root string) *Driver {
	t.Helper()
	d, err := New(root)
	if err != nil {
		t.Fatalf("New(%q) = %v", root, err)
	}
	return d
}

// TestOpenReturnsFile checks that Open hands out the *os.File itself, which
// is what lets net/http serve it with sendfile.
func TestOpenReturnsFile(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, t.TempDir())
	if err := d.PutContent(ctx, "/a/b", []byte("content")); err != nil {
		t.Fatal(err)
	}
	rsc, size, err := d.Open(ctx, "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	defer rsc.Close()
	if _, ok := rsc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File", rsc)
	}
	if size != 7 {
		t.Errorf("Open size = %d, want 7", size)
	}
	r, err := d.Reader(ctx, "/a/b", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(*os.File); !ok {
		t.Errorf("Reader returned %T, want *os.File", r)
	}
}

// TestCrashedWriterResumes drops a writer without Close or Commit, losing
// whatever was still buffered, as a crashed process would. A new writer
// must resume from what reached the disk.
func TestCrashedWriterResumes(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, t.TempDir())
	content := bytes.Repeat([]byte("0123456789abcdef"), 200_000/16)
	w, err := d.Writer(ctx, "/upload/data", false)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(content); i += 1000 {
		if _, err := w.Write(content[i : i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	// The crash: the descriptor goes away, the buffer is never flushed.
	if err := w.(*fileWriter).f.Close(); err != nil {
		t.Fatal(err)
	}

	w, err = d.Writer(ctx, "/upload/data", true)
	if err != nil {
		t.Fatal(err)
	}
	done := w.Size()
	if done <= 0 || done >= int64(len(content)) {
		t.Fatalf("resumed at %d of %d bytes; some but not all should have reached the disk", done, len(content))
	}
	got, err := d.GetContent(ctx, "/upload/data")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content[:done]) {
		t.Fatalf("on disk after the crash: %d bytes, not a prefix of what was written", len(got))
	}
	if _, err := w.Write(content[done:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = d.GetContent(ctx, "/upload/data")
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("after resume: %d bytes, %v; want the whole %d bytes", len(got), err, len(content))
	}
}

// TestConflicts checks what the shared suite leaves open: a file cannot be
// put where a directory is, or below a file, and nothing is damaged trying.
func TestConflicts(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, t.TempDir())
	if err := d.PutContent(ctx, "/f", []byte("f")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/d/g", []byte("g")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/f/x", nil); err == nil {
		t.Error("PutContent below a file succeeded")
	}
	if err := d.PutContent(ctx, "/d", nil); err == nil {
		t.Error("PutContent over a directory succeeded")
	}
	if _, err := d.Writer(ctx, "/d", false); err == nil {
		t.Error("Writer over a directory succeeded")
	}
	if err := d.Move(ctx, "/f", "/d"); err == nil {
		t.Error("Move onto a directory succeeded")
	}
	if b, err := d.GetContent(ctx, "/f"); err != nil || string(b) != "f" {
		t.Errorf("GetContent(/f) = %q, %v", b, err)
	}
	if b, err := d.GetContent(ctx, "/d/g"); err != nil || string(b) != "g" {
		t.Errorf("GetContent(/d/g) = %q, %v", b, err)
	}
	// Failed puts must not leave staged files behind.
	entries, err := os.ReadDir(d.tmp)
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp holds %d entries, %v", len(entries), err)
	}
}

// TestNewRemovesStaleTemps checks that staged files abandoned by a crash
// are cleaned up at start, while recent ones, possibly in use by another
// driver on the same root, are kept.
func TestNewRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	stale := filepath.Join(d.tmp, "put-stale")
	fresh := filepath.Join(d.tmp, "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	newDriver(t, root)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file survived: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
}
