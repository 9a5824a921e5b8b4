package drivertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/berthhq/berth/storage/driver"
)

// The helpers here run in goroutines, so they return errors instead of
// stopping the test; the test reports them with Errorf.

// store writes content to p with PutContent or, with viaWriter, with a
// FileWriter in chunks.
func store(ctx context.Context, d driver.Driver, p string, content []byte, viaWriter bool) error {
	if !viaWriter {
		return d.PutContent(ctx, p, content)
	}
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		return err
	}
	for _, c := range chunk(content) {
		if _, err := w.Write(c); err != nil {
			_ = w.Cancel(ctx)
			return err
		}
	}
	if w.Size() != int64(len(content)) {
		_ = w.Cancel(ctx)
		return fmt.Errorf("%s: Size() = %d after writing %d bytes", p, w.Size(), len(content))
	}
	return w.Commit(ctx)
}

// verify reads p with GetContent or, with viaReader, with Reader, and
// compares it with want.
func verify(ctx context.Context, d driver.Driver, p string, want []byte, viaReader bool) error {
	got, err := load(ctx, d, p, viaReader)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: read %d bytes (sha256 %x), want %d (sha256 %x)",
			p, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
	return nil
}

func load(ctx context.Context, d driver.Driver, p string, viaReader bool) ([]byte, error) {
	if !viaReader {
		return d.GetContent(ctx, p)
	}
	r, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// parallel runs fn(0..n-1) in goroutines and waits for all of them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// testConcurrentWriters writes many files at once, in shared and private
// directories, then reads and deletes them all at once.
func testConcurrentWriters(e *env) {
	t := e.t
	const workers, perWorker = 16, 6
	type file struct {
		path    string
		content []byte
	}
	files := make([][]file, workers)
	for i := range workers {
		for j := range perWorker {
			p := e.p(fmt.Sprintf("g%d/f%d-%d", i%4, i, j))
			if j == 0 {
				p = e.p(fmt.Sprintf("deep/%d/a/b/f", i))
			}
			files[i] = append(files[i], file{p, randomBytes((i*7919 + j*104729) % 40_000)})
		}
	}
	parallel(workers, func(i int) {
		for j, f := range files[i] {
			if err := store(e.ctx, e.d, f.path, f.content, j%2 == 0); err != nil {
				t.Errorf("store: %v", err)
			}
		}
	})
	parallel(workers, func(i int) {
		for j, f := range files[(i+1)%workers] { // read another worker's files
			if err := verify(e.ctx, e.d, f.path, f.content, j%2 == 1); err != nil {
				t.Errorf("verify: %v", err)
			}
		}
	})
	if t.Failed() {
		return
	}
	parallel(workers, func(i int) {
		for _, f := range files[i] {
			if err := e.d.Delete(e.ctx, f.path); err != nil {
				t.Errorf("Delete(%q) = %v", f.path, err)
			}
		}
	})
	// With every file gone, so are all the directories.
	e.wantMissing(e.prefix)
}

// testConcurrentReaders reads one file from many goroutines while other
// files in the same directory are written and deleted.
func testConcurrentReaders(e *env) {
	t := e.t
	shared := e.p("shared")
	content := randomBytes(256 << 10)
	e.put(shared, content)
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			for k := range 8 {
				if err := verify(e.ctx, e.d, shared, content, (r+k)%2 == 0); err != nil {
					t.Errorf("verify: %v", err)
					return
				}
			}
		})
	}
	for w := range 2 {
		wg.Go(func() {
			for k := range 10 {
				p := e.p(fmt.Sprintf("other-%d-%d", w, k))
				c := randomBytes(30_000 + k)
				if err := store(e.ctx, e.d, p, c, k%2 == 0); err != nil {
					t.Errorf("store: %v", err)
					return
				}
				if err := verify(e.ctx, e.d, p, c, k%2 == 1); err != nil {
					t.Errorf("verify: %v", err)
				}
				if err := e.d.Delete(e.ctx, p); err != nil {
					t.Errorf("Delete(%q) = %v", p, err)
				}
			}
		})
	}
	wg.Wait()
	e.wantList(e.prefix, shared)
	e.wantContent(shared, content)
}

// testConcurrentPutAtomic replaces one file over and over, with PutContent
// and with Move, while readers check that they always see one whole
// version and never a mix or a truncated file.
func testConcurrentPutAtomic(e *env) {
	t := e.t
	target := e.p("target")
	versions := [][]byte{randomBytes(128 << 10), randomBytes(96 << 10)}
	e.put(target, versions[0])

	var done atomic.Bool
	var writers, readers sync.WaitGroup
	writers.Go(func() {
		for k := range 30 {
			if err := e.d.PutContent(e.ctx, target, versions[k%2]); err != nil {
				t.Errorf("PutContent(%q) = %v", target, err)
				return
			}
		}
	})
	writers.Go(func() {
		for k := range 30 {
			stage := e.p(fmt.Sprintf("stage/%d", k))
			if err := store(e.ctx, e.d, stage, versions[k%2], true); err != nil {
				t.Errorf("store: %v", err)
				return
			}
			if err := e.d.Move(e.ctx, stage, target); err != nil {
				t.Errorf("Move(%q, %q) = %v", stage, target, err)
				return
			}
		}
	})
	for r := range 4 {
		readers.Go(func() {
			// Read until the writers are done, and a few times even if
			// they finished first.
			for k := 0; k < 3 || !done.Load(); k++ {
				got, err := load(e.ctx, e.d, target, (r+k)%2 == 0)
				if err != nil {
					t.Errorf("reading %q: %v", target, err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("read %d bytes from %q that match no version written", len(got), target)
					return
				}
				fi, err := e.d.Stat(e.ctx, target)
				if err != nil {
					t.Errorf("Stat(%q) = %v", target, err)
					return
				}
				if n := fi.Size(); n != int64(len(versions[0])) && n != int64(len(versions[1])) {
					t.Errorf("Stat(%q).Size() = %d, matches no version", target, n)
					return
				}
			}
		})
	}
	writers.Wait()
	done.Store(true)
	readers.Wait()
	e.wantContent(target, versions[1])
	e.wantList(e.prefix, target) // the staging directory went with its last file
}

// testConcurrentMoveDelete moves and deletes different files in shared
// directories at once, while a walker traverses the changing tree. It
// stresses directory creation racing with the pruning of emptied
// directories.
func testConcurrentMoveDelete(e *env) {
	t := e.t
	const workers, rounds = 8, 8
	var done atomic.Bool
	var walker sync.WaitGroup
	walker.Go(func() {
		for !done.Load() {
			err := e.d.Walk(e.ctx, e.prefix, func(driver.FileInfo) error { return nil })
			if err != nil && !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Walk(%q) during moves = %v", e.prefix, err)
				return
			}
		}
	})
	content := func(g, k int) []byte { return []byte(fmt.Sprintf("file %d-%d", g, k)) }
	parallel(workers, func(g int) {
		for k := range rounds {
			src := e.p(fmt.Sprintf("in/%d/%d-%d", k%2, g, k))
			dst := e.p(fmt.Sprintf("out/%d-%d", g, k))
			if err := e.d.PutContent(e.ctx, src, content(g, k)); err != nil {
				t.Errorf("PutContent(%q) = %v", src, err)
				return
			}
			if err := e.d.Move(e.ctx, src, dst); err != nil {
				t.Errorf("Move(%q, %q) = %v", src, dst, err)
				return
			}
			if k%2 == 1 {
				if err := e.d.Delete(e.ctx, dst); err != nil {
					t.Errorf("Delete(%q) = %v", dst, err)
					return
				}
			}
		}
	})
	done.Store(true)
	walker.Wait()
	if t.Failed() {
		return
	}
	var want []string
	for g := range workers {
		for k := 0; k < rounds; k += 2 {
			want = append(want, e.p(fmt.Sprintf("out/%d-%d", g, k)))
		}
	}
	slices.Sort(want)
	e.wantList(e.p("out"), want...)
	for g := range workers {
		for k := 0; k < rounds; k += 2 {
			e.wantContent(e.p(fmt.Sprintf("out/%d-%d", g, k)), content(g, k))
		}
	}
	e.wantMissing(e.p("in"))
}
