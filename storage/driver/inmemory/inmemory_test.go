package inmemory_test

import (
	"context"
	"testing"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// TestSuite shares one driver between all tests of the suite, so that
// they also race against each other.
func TestSuite(t *testing.T) {
	d := inmemory.New()
	drivertest.Run(t, func(*testing.T) driver.Driver { return d })
}

// TestConflicts checks what the shared suite leaves open: like a
// filesystem, this driver refuses to put a file where a directory is, or
// below a file.
func TestConflicts(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	if err := d.PutContent(ctx, "/f", []byte("f")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/d/g", []byte("g")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/f/x", nil); err == nil {
		t.Error("PutContent below a file succeeded")
	}
	if _, err := d.Writer(ctx, "/d", false); err == nil {
		t.Error("Writer over a directory succeeded")
	}
	if err := d.Move(ctx, "/f", "/d"); err == nil {
		t.Error("Move onto a directory succeeded")
	}
	if err := d.Move(ctx, "/f", "/f/x"); err == nil {
		t.Error("Move below itself succeeded")
	}
	if b, err := d.GetContent(ctx, "/f"); err != nil || string(b) != "f" {
		t.Errorf("GetContent(/f) = %q, %v", b, err)
	}
	if names, err := d.List(ctx, "/"); err != nil || len(names) != 2 {
		t.Errorf("List(/) = %q, %v; want /d and /f", names, err)
	}
}

// TestReaderSnapshot checks that a reader keeps seeing the content it was
// opened on while the file is appended to and replaced.
func TestReaderSnapshot(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	if err := d.PutContent(ctx, "/f", []byte("old")); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/f", true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Reader(ctx, "/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("-appended")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/f", []byte("new")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "old" {
		t.Errorf("reader saw %q, want %q", buf[:n], "old")
	}
}
