// Package drivertest is the conformance suite for storage drivers. Every
// driver, in this tree or outside it, runs it with one call from its tests:
//
//	func TestDriver(t *testing.T) {
//		drivertest.Run(t, func(*testing.T) driver.Driver { return mydriver.New(...) })
//	}
//
// The suite checks the contract documented in package driver, the optional
// driver.Redirector (a redirect URL serves the file's exact bytes), how the
// storage package above a driver behaves when the driver fails (every call
// in turn fails, readers return a few bytes at a time or break off: a push
// fails with the cause or stores the whole blob, never part of it), and
// files of several megabytes written across several writers. Drivers that
// write in parts or blocks should configure small ones in their tests (a
// few hundred KiB), so that these files span many. It adds one rule the
// contract implies: directories exist only while files exist below
// them. Deleting, moving away or cancelling the last file of a directory
// makes the directory disappear, so that a driver emptied of files lists
// nothing at its root.
//
// Each test works below its own random path prefix and never touches paths
// outside it, so the suite can run against a driver that already holds data
// and its tests run in parallel. After each test the suite deletes the
// prefix and fails the test if anything is still visible there; at the end
// it checks that nothing the suite created remains.
package drivertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"path"
	"slices"
	"testing"

	"github.com/berthhq/berth/storage/driver"
)

// Run runs the conformance suite as subtests of t.
//
// factory is called once at the start of every test (and once more for the
// final leftover check) with that test's *testing.T. It may return a fresh
// driver each time or the same shared one; sharing one driver, or several
// drivers over the same backing store, is the more thorough choice since
// the parallel tests then also race against each other. The factory may
// use t for cleanup (t.Cleanup, t.TempDir) and may call t.Fatal.
//
// Tests run in parallel. The biggest file (32 MiB) is written only when
// testing.Short() is false.
func Run(t *testing.T, factory func(t *testing.T) driver.Driver) {
	t.Helper()
	root := "/drivertest-" + randomName()
	t.Run("suite", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				d := factory(t)
				if d == nil {
					t.Fatal("factory returned a nil driver")
				}
				prefix := root + "/" + tc.name + "-" + randomName()
				t.Cleanup(func() { checkGone(t, d, prefix, true) })
				tc.fn(&env{t: t, d: d, ctx: t.Context(), prefix: prefix, root: root})
			})
		}
	})
	// All parallel tests have finished once t.Run returns. Their prefixes
	// were deleted one by one; the shared parent must have gone with the
	// last of them.
	checkGone(t, factory(t), root, false)
}

// tests lists the suite; each runs in parallel with the others.
var tests = []struct {
	name string
	fn   func(e *env)
}{
	{"Name", testName},
	{"InvalidPaths", testInvalidPaths},
	{"ValidUnusualPaths", testValidUnusualPaths},
	{"NotFound", testNotFound},
	{"PutGetSizes", testPutGetSizes},
	{"WriterReaderSizes", testWriterReaderSizes},
	{"ReaderOffsets", testReaderOffsets},
	{"WriterCommit", testWriterCommit},
	{"WriterClosed", testWriterClosed},
	{"WriterResume", testWriterResume},
	{"WriterAppendCommitted", testWriterAppendCommitted},
	{"WriterCancel", testWriterCancel},
	{"Overwrite", testOverwrite},
	{"Stat", testStat},
	{"List", testList},
	{"ListRoot", testListRoot},
	{"Move", testMove},
	{"MoveOverwrite", testMoveOverwrite},
	{"MoveMissing", testMoveMissing},
	{"MoveSelf", testMoveSelf},
	{"Delete", testDelete},
	{"DeleteTree", testDeleteTree},
	{"DeleteSiblings", testDeleteSiblings},
	{"DeletePrunes", testDeletePrunes},
	{"Walk", testWalk},
	{"WalkSkipDir", testWalkSkipDir},
	{"WalkError", testWalkError},
	{"FileDirConflicts", testFileDirConflicts},
	{"Opener", testOpener},
	{"LargeFile", testLargeFile},
	{"WriterResumeLarge", testWriterResumeLarge},
	{"WriterAppendLarge", testWriterAppendLarge},
	{"Redirect", testRedirect},
	{"VerifiedWriter", testVerifiedWriter},
	{"StoreFaults", testStoreFaults},
	{"ContextCanceled", testContextCanceled},
	{"ConcurrentWriters", testConcurrentWriters},
	{"ConcurrentReaders", testConcurrentReaders},
	{"ConcurrentPutAtomic", testConcurrentPutAtomic},
	{"ConcurrentMoveDelete", testConcurrentMoveDelete},
}

// checkGone fails tb unless nothing is visible at p. With del it first
// deletes p, which is how each test's prefix is cleaned up; that also
// exercises Delete on whatever tree the test built. Whatever is found is
// reported and then removed, so one failure does not spill into others.
func checkGone(tb testing.TB, d driver.Driver, p string, del bool) {
	tb.Helper()
	// The test's context is already cancelled when cleanups run.
	ctx := context.Background()
	if del {
		if err := d.Delete(ctx, p); err != nil && !errors.Is(err, driver.ErrNotFound) {
			tb.Errorf("cleanup: Delete(%q) = %v", p, err)
		}
	}
	var left []string
	if fi, err := d.Stat(ctx, p); err == nil {
		left = append(left, fmt.Sprintf("Stat found %s (dir=%v size=%d)", fi.Path(), fi.IsDir(), fi.Size()))
	} else if !errors.Is(err, driver.ErrNotFound) {
		tb.Errorf("cleanup: Stat(%q) = %v, want ErrNotFound", p, err)
	}
	if names, err := d.List(ctx, p); err == nil {
		left = append(left, fmt.Sprintf("List found %q", names))
	} else if !errors.Is(err, driver.ErrNotFound) {
		tb.Errorf("cleanup: List(%q) = %v, want ErrNotFound", p, err)
	}
	err := d.Walk(ctx, p, func(fi driver.FileInfo) error {
		left = append(left, "Walk found "+fi.Path())
		return nil
	})
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		tb.Errorf("cleanup: Walk(%q) = %v, want ErrNotFound", p, err)
	}
	parent := path.Dir(p)
	if names, err := d.List(ctx, parent); err == nil {
		if slices.Contains(names, p) {
			left = append(left, fmt.Sprintf("List(%q) still shows it", parent))
		}
	} else if !errors.Is(err, driver.ErrNotFound) {
		tb.Errorf("cleanup: List(%q) = %v", parent, err)
	}
	if len(left) > 0 {
		tb.Errorf("%s left behind below %s:", d.Name(), p)
		for _, l := range left {
			tb.Errorf("  %s", l)
		}
		_ = d.Delete(ctx, p)
	}
}

// env is what a test works with: its driver, its context and its own path
// prefix. Its helpers stop the test on failure, so they must only be used
// from the test's goroutine.
type env struct {
	t      *testing.T
	d      driver.Driver
	ctx    context.Context
	prefix string // this test's private directory
	root   string // the suite's directory, shared by all tests
}

// p returns a path below the test's prefix.
func (e *env) p(rel string) string { return e.prefix + "/" + rel }

func (e *env) put(p string, content []byte) {
	e.t.Helper()
	if err := e.d.PutContent(e.ctx, p, content); err != nil {
		e.t.Fatalf("PutContent(%q, %d bytes) = %v", p, len(content), err)
	}
}

func (e *env) get(p string) []byte {
	e.t.Helper()
	b, err := e.d.GetContent(e.ctx, p)
	if err != nil {
		e.t.Fatalf("GetContent(%q) = %v", p, err)
	}
	return b
}

// wantContent checks p through both GetContent and Reader.
func (e *env) wantContent(p string, want []byte) {
	e.t.Helper()
	sameContent(e.t, "GetContent("+p+")", e.get(p), want)
	sameContent(e.t, "Reader("+p+")", e.read(p, 0), want)
}

func (e *env) read(p string, offset int64) []byte {
	e.t.Helper()
	r, err := e.d.Reader(e.ctx, p, offset)
	if err != nil {
		e.t.Fatalf("Reader(%q, %d) = %v", p, offset, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatalf("reading %q from %d: %v", p, offset, err)
	}
	return b
}

func (e *env) stat(p string) driver.FileInfo {
	e.t.Helper()
	fi, err := e.d.Stat(e.ctx, p)
	if err != nil {
		e.t.Fatalf("Stat(%q) = %v", p, err)
	}
	if fi.Path() != p {
		e.t.Errorf("Stat(%q).Path() = %q", p, fi.Path())
	}
	return fi
}

// wantMissing checks that Stat reports p as not found.
func (e *env) wantMissing(p string) {
	e.t.Helper()
	_, err := e.d.Stat(e.ctx, p)
	wantNotFound(e.t, "Stat", p, err)
}

func (e *env) list(p string) []string {
	e.t.Helper()
	names, err := e.d.List(e.ctx, p)
	if err != nil {
		e.t.Fatalf("List(%q) = %v", p, err)
	}
	slices.Sort(names)
	return names
}

func (e *env) wantList(p string, want ...string) {
	e.t.Helper()
	got := e.list(p)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		e.t.Errorf("List(%q) = %q, want %q", p, got, want)
	}
}

func (e *env) writer(p string, append bool) driver.FileWriter {
	e.t.Helper()
	w, err := e.d.Writer(e.ctx, p, append)
	if err != nil {
		e.t.Fatalf("Writer(%q, %v) = %v", p, append, err)
	}
	return w
}

// write writes chunks to w, checking Size after each.
func (e *env) write(w driver.FileWriter, chunks ...[]byte) {
	e.t.Helper()
	for _, c := range chunks {
		before := w.Size()
		n, err := w.Write(c)
		if err != nil || n != len(c) {
			e.t.Fatalf("Write(%d bytes) = %d, %v", len(c), n, err)
		}
		if got := w.Size(); got != before+int64(len(c)) {
			e.t.Fatalf("Size() = %d after writing %d bytes to %d", got, len(c), before)
		}
	}
}

func (e *env) commit(w driver.FileWriter) {
	e.t.Helper()
	if err := w.Commit(e.ctx); err != nil {
		e.t.Fatalf("Commit() = %v", err)
	}
}

// walk returns everything Walk visits below p, in order.
func (e *env) walk(p string) []entry {
	e.t.Helper()
	var got []entry
	err := e.d.Walk(e.ctx, p, func(fi driver.FileInfo) error {
		got = append(got, entryOf(fi))
		return nil
	})
	if err != nil {
		e.t.Fatalf("Walk(%q) = %v", p, err)
	}
	return got
}

// entry is the comparable part of a FileInfo.
type entry struct {
	path string
	dir  bool
	size int64
}

func entryOf(fi driver.FileInfo) entry {
	return entry{path: fi.Path(), dir: fi.IsDir(), size: fi.Size()}
}

func (en entry) String() string {
	if en.dir {
		return en.path + "/"
	}
	return fmt.Sprintf("%s(%d)", en.path, en.size)
}

// wantNotFound checks that err reports p as missing, the way package
// driver asks: a *PathNotFoundError naming p.
func wantNotFound(t testing.TB, op, p string, err error) {
	t.Helper()
	if !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("%s(%q) = %v, want ErrNotFound", op, p, err)
		return
	}
	var pe *driver.PathNotFoundError
	if !errors.As(err, &pe) {
		t.Errorf("%s(%q) = %v (%T), want a *driver.PathNotFoundError", op, p, err, err)
	} else if pe.Path != p {
		t.Errorf("%s(%q): PathNotFoundError.Path = %q", op, p, pe.Path)
	}
}

// wantInvalid checks that err rejects p as an invalid path.
func wantInvalid(t testing.TB, op, p string, err error) {
	t.Helper()
	if !errors.Is(err, driver.ErrInvalidPath) {
		t.Errorf("%s(%q) = %v, want ErrInvalidPath", op, p, err)
		return
	}
	var pe *driver.InvalidPathError
	if !errors.As(err, &pe) {
		t.Errorf("%s(%q) = %v (%T), want a *driver.InvalidPathError", op, p, err, err)
	} else if pe.Path != p {
		t.Errorf("%s(%q): InvalidPathError.Path = %q", op, p, pe.Path)
	}
}

// sameContent compares by length and SHA-256 and reports the first
// difference, rather than dumping megabytes.
func sameContent(t testing.TB, what string, got, want []byte) bool {
	t.Helper()
	if len(got) == len(want) && sha256.Sum256(got) == sha256.Sum256(want) {
		return true
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x); first difference at offset %d",
		what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want), i)
	return false
}

// randomBytes returns n bytes that are different on every call, so that
// content left over from another test or run can never match by accident.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = newStream().Read(b)
	return b
}

// newStream returns an endless, cheap random byte stream.
func newStream() *mrand.ChaCha8 {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return newSeededStream(seed)
}

// newSeededStream returns the endless byte stream for seed; the same seed
// gives the same bytes, which lets a test regenerate content instead of
// keeping it.
func newSeededStream(seed [32]byte) *mrand.ChaCha8 { return mrand.NewChaCha8(seed) }

func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
