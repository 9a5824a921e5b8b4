package drivertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
)

// errInjected is the failure the fault wrapper injects.
var errInjected = errors.New("injected fault")

// faulty wraps the driver under test for the storage package's tests: it
// maps the store's absolute layout below a private prefix, fails the
// failAt-th call (counting every method of the driver and of its writers
// and readers' creation), and can make readers deliver a few bytes per
// Read (legal, and what networks do) or end early with
// io.ErrUnexpectedEOF (a connection that broke).
type faulty struct {
	d        driver.Driver
	prefix   string
	failAt   int64
	calls    atomic.Int64
	short    bool
	truncate int64 // readers break after this many bytes; 0: never
}

// faultyOpener is faulty over a driver that is a driver.Opener, so the
// store above takes the same path as over the driver itself.
type faultyOpener struct{ *faulty }

func (f faultyOpener) Open(ctx context.Context, p string) (io.ReadSeekCloser, int64, error) {
	if err := f.call("Open"); err != nil {
		return nil, 0, err
	}
	return f.d.(driver.Opener).Open(ctx, f.path(p))
}

// newFaulty returns the wrapper as a driver.Driver, an Opener if d is.
func newFaulty(d driver.Driver, prefix string, failAt int64) (driver.Driver, *faulty) {
	f := &faulty{d: d, prefix: prefix, failAt: failAt}
	if _, ok := d.(driver.Opener); ok {
		return faultyOpener{f}, f
	}
	return f, f
}

func (f *faulty) call(op string) error {
	if n := f.calls.Add(1); n == f.failAt {
		return fmt.Errorf("%w: call %d (%s)", errInjected, n, op)
	}
	return nil
}

func (f *faulty) path(p string) string {
	if p == "/" {
		return f.prefix
	}
	return f.prefix + p
}

func (f *faulty) unpath(p string) string {
	if r := strings.TrimPrefix(p, f.prefix); r != "" {
		return r
	}
	return "/"
}

func (f *faulty) Name() string { return f.d.Name() }

func (f *faulty) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := f.call("GetContent"); err != nil {
		return nil, err
	}
	return f.d.GetContent(ctx, f.path(p))
}

func (f *faulty) PutContent(ctx context.Context, p string, b []byte) error {
	if err := f.call("PutContent"); err != nil {
		return err
	}
	return f.d.PutContent(ctx, f.path(p), b)
}

func (f *faulty) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := f.call("Reader"); err != nil {
		return nil, err
	}
	r, err := f.d.Reader(ctx, f.path(p), off)
	if err != nil {
		return nil, err
	}
	return &faultyReader{ReadCloser: r, f: f}, nil
}

func (f *faulty) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if err := f.call("Writer"); err != nil {
		return nil, err
	}
	w, err := f.d.Writer(ctx, f.path(p), append)
	if err != nil {
		return nil, err
	}
	return &faultyWriter{FileWriter: w, f: f}, nil
}

func (f *faulty) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := f.call("Stat"); err != nil {
		return nil, err
	}
	fi, err := f.d.Stat(ctx, f.path(p))
	if err != nil {
		return nil, err
	}
	return f.info(fi), nil
}

func (f *faulty) info(fi driver.FileInfo) driver.FileInfo {
	return driver.FileInfoFields{P: f.unpath(fi.Path()), Sz: fi.Size(), MT: fi.ModTime(), Dir: fi.IsDir()}
}

func (f *faulty) List(ctx context.Context, p string) ([]string, error) {
	if err := f.call("List"); err != nil {
		return nil, err
	}
	names, err := f.d.List(ctx, f.path(p))
	for i := range names {
		names[i] = f.unpath(names[i])
	}
	return names, err
}

func (f *faulty) Move(ctx context.Context, src, dst string) error {
	if err := f.call("Move"); err != nil {
		return err
	}
	return f.d.Move(ctx, f.path(src), f.path(dst))
}

func (f *faulty) Delete(ctx context.Context, p string) error {
	if err := f.call("Delete"); err != nil {
		return err
	}
	return f.d.Delete(ctx, f.path(p))
}

func (f *faulty) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if err := f.call("Walk"); err != nil {
		return err
	}
	return f.d.Walk(ctx, f.path(p), func(fi driver.FileInfo) error { return fn(f.info(fi)) })
}

type faultyWriter struct {
	driver.FileWriter
	f *faulty
}

func (w *faultyWriter) Write(p []byte) (int, error) {
	if err := w.f.call("FileWriter.Write"); err != nil {
		return 0, err
	}
	return w.FileWriter.Write(p)
}

func (w *faultyWriter) Close() error {
	if err := w.f.call("FileWriter.Close"); err != nil {
		// The writer is gone as a process that died would leave it.
		return err
	}
	return w.FileWriter.Close()
}

func (w *faultyWriter) Commit(ctx context.Context) error {
	if err := w.f.call("FileWriter.Commit"); err != nil {
		return err
	}
	return w.FileWriter.Commit(ctx)
}

func (w *faultyWriter) Cancel(ctx context.Context) error {
	if err := w.f.call("FileWriter.Cancel"); err != nil {
		return err
	}
	return w.FileWriter.Cancel(ctx)
}

type faultyReader struct {
	io.ReadCloser
	f    *faulty
	read int64
	n    int
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if r.f.truncate > 0 && r.read >= r.f.truncate {
		return 0, fmt.Errorf("%w: connection broke after %d bytes: %w", errInjected, r.read, io.ErrUnexpectedEOF)
	}
	if r.f.short && len(p) > 0 {
		r.n++
		p = p[:min(len(p), 1+r.n%13)]
	}
	if r.f.truncate > 0 {
		p = p[:min(int64(len(p)), r.f.truncate-r.read)]
	}
	n, err := r.ReadCloser.Read(p)
	r.read += int64(n)
	return n, err
}

// storeRun is one push of content through a storage.Store in three
// requests (start, append, finish with the rest), as a chunked upload is.
func storeRun(ctx context.Context, s *storage.Store, content []byte, d digest.Digest) error {
	u, err := s.StartUpload(ctx, "drivertest/repo")
	if err != nil {
		return err
	}
	cut := len(content) / 3
	if _, err := s.Append(ctx, u.Repo, u.ID, 0, bytes.NewReader(content[:cut])); err != nil {
		return err
	}
	_, err = s.Finish(ctx, u.Repo, u.ID, int64(cut), bytes.NewReader(content[cut:]), d)
	return err
}

// wantWholeOrNone checks that blob d is either unknown or exactly
// content, through a store without faults over the same files.
func wantWholeOrNone(e *env, s *storage.Store, d digest.Digest, content []byte, what string) (stored bool) {
	e.t.Helper()
	size, err := s.Stat(e.ctx, d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		return false
	}
	if err != nil {
		e.t.Errorf("%s: Stat(blob) = %v", what, err)
		return false
	}
	rc, n, err := s.Open(e.ctx, d)
	if err != nil {
		e.t.Errorf("%s: Open(blob) = %v", what, err)
		return false
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || size != int64(len(content)) || n != size || sha256.Sum256(got) != sha256.Sum256(content) {
		e.t.Errorf("%s: the store exposes a blob of %d bytes (Stat %d, read %d, %v), want none or all %d bytes",
			what, n, size, len(got), err, len(content))
	}
	return true
}

// testStoreFaults pushes a blob through the storage package on top of
// the driver while each driver call in turn fails, and while readers
// deliver a few bytes at a time or break off. Whatever fails, the store
// reports an error that carries the cause and never exposes a partial
// blob; the failure-free runs store the blob whole.
func testStoreFaults(e *env) {
	t := e.t
	content := randomBytes(20_000)
	d := digest.FromBytes(content)

	// A run without faults counts the calls one push makes.
	base := e.p("clean")
	drv, f := newFaulty(e.d, base, 0)
	if err := storeRun(e.ctx, storage.New(drv), content, d); err != nil {
		t.Fatalf("push without faults: %v", err)
	}
	clean, _ := newFaulty(e.d, base, 0)
	if !wantWholeOrNone(e, storage.New(clean), d, content, "push without faults") {
		t.Fatal("push without faults stored no blob")
	}
	total := f.calls.Load()
	if total < 4 {
		t.Fatalf("a push made %d driver calls", total)
	}

	for n := int64(1); n <= total; n++ {
		prefix := e.p(fmt.Sprintf("fail-%d", n))
		drv, _ := newFaulty(e.d, prefix, n)
		err := storeRun(e.ctx, storage.New(drv), content, d)
		what := fmt.Sprintf("push with call %d of %d failing", n, total)
		if err != nil && !errors.Is(err, errInjected) {
			t.Errorf("%s: error %v does not carry the injected failure", what, err)
		}
		clean, _ := newFaulty(e.d, prefix, 0)
		if stored := wantWholeOrNone(e, storage.New(clean), d, content, what); !stored && err == nil {
			t.Errorf("%s: no error, but no blob either", what)
		}
	}

	// Short reads are legal: the push must succeed and store the blob.
	prefix := e.p("short")
	drv, f = newFaulty(e.d, prefix, 0)
	f.short = true
	if err := storeRun(e.ctx, storage.New(drv), content, d); err != nil {
		t.Errorf("push with short reads: %v", err)
	}
	if !wantWholeOrNone(e, storage.New(drv), d, content, "push with short reads") {
		t.Error("push with short reads stored no blob")
	}

	// Readers that break off: an error or the whole blob, never part.
	for _, after := range []int64{1, int64(len(content)) / 2, int64(len(content)) - 1} {
		prefix := e.p(fmt.Sprintf("truncate-%d", after))
		drv, f := newFaulty(e.d, prefix, 0)
		f.truncate = after
		err := storeRun(e.ctx, storage.New(drv), content, d)
		what := fmt.Sprintf("push with readers breaking after %d bytes", after)
		if err != nil && !errors.Is(err, errInjected) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: error %v does not carry the broken read", what, err)
		}
		clean, _ := newFaulty(e.d, prefix, 0)
		if stored := wantWholeOrNone(e, storage.New(clean), d, content, what); !stored && err == nil {
			t.Errorf("%s: no error, but no blob either", what)
		}
	}
}
