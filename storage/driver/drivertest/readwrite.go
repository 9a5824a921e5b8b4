package drivertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/berthhq/berth/storage/driver"
)

// contentSizes straddle page and buffer boundaries, where off-by-one bugs
// in buffering and chunking live.
var contentSizes = []int{0, 1, 2, 4095, 4096, 4097, 65535, 65536, 65537, 1<<20 + 1}

func testPutGetSizes(e *env) {
	for _, n := range contentSizes {
		p := e.p(fmt.Sprintf("size-%d", n))
		content := randomBytes(n)
		e.put(p, content)
		e.wantContent(p, content)
		if fi := e.stat(p); fi.Size() != int64(n) || fi.IsDir() {
			e.t.Errorf("Stat(%q): size %d dir=%v, want a file of %d bytes", p, fi.Size(), fi.IsDir(), n)
		}
	}
}

// chunk splits b into pieces of irregular sizes, so that writes start and
// end at every kind of offset relative to a driver's internal buffers.
func chunk(b []byte) [][]byte {
	sizes := []int{1, 7, 4096, 10000, 3, 65536, 65537, 1 << 20}
	var out [][]byte
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func testWriterReaderSizes(e *env) {
	for _, n := range contentSizes {
		p := e.p(fmt.Sprintf("size-%d", n))
		content := randomBytes(n)
		w := e.writer(p, false)
		if w.Size() != 0 {
			e.t.Errorf("new Writer(%q).Size() = %d", p, w.Size())
		}
		e.write(w, chunk(content)...)
		e.commit(w)
		e.wantContent(p, content)
		if fi := e.stat(p); fi.Size() != int64(n) {
			e.t.Errorf("Stat(%q).Size() = %d, want %d", p, fi.Size(), n)
		}
	}
}

func testReaderOffsets(e *env) {
	t := e.t
	n := int64(3*4096 + 123)
	p := e.p("file")
	content := randomBytes(int(n))
	e.put(p, content)
	for _, off := range []int64{0, 1, 4095, 4096, 4097, n / 2, n - 1, n} {
		sameContent(t, fmt.Sprintf("Reader(%q, %d)", p, off), e.read(p, off), content[off:])
	}
	for _, off := range []int64{n + 1, n + 4096, -1, -4096} {
		r, err := e.d.Reader(e.ctx, p, off)
		if !errors.Is(err, driver.ErrInvalidOffset) {
			t.Errorf("Reader(%q, %d) = %v, want ErrInvalidOffset (size %d)", p, off, err, n)
		}
		if err == nil {
			r.Close()
		}
	}

	empty := e.p("empty")
	e.put(empty, nil)
	if b := e.read(empty, 0); len(b) != 0 {
		t.Errorf("Reader(%q, 0) read %d bytes from an empty file", empty, len(b))
	}
	if _, err := e.d.Reader(e.ctx, empty, 1); !errors.Is(err, driver.ErrInvalidOffset) {
		t.Errorf("Reader(%q, 1) = %v, want ErrInvalidOffset", empty, err)
	}
}

func testWriterCommit(e *env) {
	p := e.p("dir/file")
	w := e.writer(p, false)
	e.write(w, []byte("hello "), []byte("world"))
	if w.Size() != 11 {
		e.t.Errorf("Size() = %d, want 11", w.Size())
	}
	e.commit(w)
	e.wantContent(p, []byte("hello world"))
	if fi := e.stat(p); fi.Size() != 11 {
		e.t.Errorf("Stat(%q).Size() = %d, want 11", p, fi.Size())
	}

	// Committing without writing stores an empty file.
	empty := e.p("dir/empty")
	e.commit(e.writer(empty, false))
	e.wantContent(empty, nil)
	if fi := e.stat(empty); fi.Size() != 0 || fi.IsDir() {
		e.t.Errorf("Stat(%q): size %d dir=%v, want an empty file", empty, fi.Size(), fi.IsDir())
	}
}

func testWriterClosed(e *env) {
	t := e.t
	ends := []struct {
		name string
		end  func(driver.FileWriter) error
	}{
		{"Close", func(w driver.FileWriter) error { return w.Close() }},
		{"Commit", func(w driver.FileWriter) error { return w.Commit(e.ctx) }},
		{"Cancel", func(w driver.FileWriter) error { return w.Cancel(e.ctx) }},
	}
	for _, end := range ends {
		p := e.p(end.name)
		w := e.writer(p, false)
		e.write(w, []byte("x"))
		if err := end.end(w); err != nil {
			t.Fatalf("%s() = %v", end.name, err)
		}
		if _, err := w.Write([]byte("y")); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("Write after %s() = %v, want ErrClosed", end.name, err)
		}
		if end.name != "Close" {
			if err := w.Close(); err != nil {
				t.Errorf("Close after %s() = %v, want nil", end.name, err)
			}
		}
		switch end.name {
		case "Commit":
			e.wantContent(p, []byte("x"))
		case "Cancel":
			e.wantMissing(p)
		}
	}
}

// testWriterResume is an upload spread over several requests: each writer
// is closed without Commit and the next one appends.
func testWriterResume(e *env) {
	p := e.p("upload")
	a, b, c := randomBytes(100_000), randomBytes(70_001), randomBytes(5)

	w := e.writer(p, false)
	e.write(w, chunk(a)...)
	if err := w.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}

	w = e.writer(p, true)
	if w.Size() != int64(len(a)) {
		e.t.Fatalf("resumed Size() = %d, want %d", w.Size(), len(a))
	}
	e.write(w, chunk(b)...)
	if err := w.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}

	w = e.writer(p, true)
	if w.Size() != int64(len(a)+len(b)) {
		e.t.Fatalf("resumed Size() = %d, want %d", w.Size(), len(a)+len(b))
	}
	e.write(w, c)
	e.commit(w)
	e.wantContent(p, concat(a, b, c))
}

func testWriterAppendCommitted(e *env) {
	p := e.p("file")
	a, b := randomBytes(5000), randomBytes(70_000)
	e.put(p, a)
	w := e.writer(p, true)
	if w.Size() != int64(len(a)) {
		e.t.Fatalf("Writer(%q, true).Size() = %d, want %d", p, w.Size(), len(a))
	}
	e.write(w, chunk(b)...)
	e.commit(w)
	e.wantContent(p, concat(a, b))
	if fi := e.stat(p); fi.Size() != int64(len(a)+len(b)) {
		e.t.Errorf("Stat(%q).Size() = %d, want %d", p, fi.Size(), len(a)+len(b))
	}
}

func testWriterCancel(e *env) {
	// Cancelling a new file removes it and the directories made for it.
	p := e.p("new/deep/file")
	w := e.writer(p, false)
	e.write(w, randomBytes(100_000))
	if err := w.Cancel(e.ctx); err != nil {
		e.t.Fatalf("Cancel() = %v", err)
	}
	e.wantMissing(p)
	e.wantMissing(e.p("new"))

	// Cancelling a resumed upload discards the earlier parts too.
	p = e.p("resumed")
	w = e.writer(p, false)
	e.write(w, randomBytes(1000))
	if err := w.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}
	w = e.writer(p, true)
	e.write(w, randomBytes(1000))
	if err := w.Cancel(e.ctx); err != nil {
		e.t.Fatalf("Cancel() = %v", err)
	}
	e.wantMissing(p)
	if _, err := e.d.Writer(e.ctx, p, true); !errors.Is(err, driver.ErrNotFound) {
		e.t.Errorf("Writer(%q, true) after Cancel = %v, want ErrNotFound", p, err)
	}
}

// testOverwrite replaces longer content with shorter: any tail left from
// the old file is a bug.
func testOverwrite(e *env) {
	long := randomBytes(100_000)

	p := e.p("writer")
	e.put(p, long)
	w := e.writer(p, false)
	if w.Size() != 0 {
		e.t.Errorf("Writer(%q, false).Size() = %d over an existing file, want 0", p, w.Size())
	}
	e.write(w, []byte("short"))
	e.commit(w)
	e.wantContent(p, []byte("short"))

	p = e.p("put")
	e.put(p, long)
	e.put(p, []byte("short"))
	e.wantContent(p, []byte("short"))

	p = e.p("empty")
	e.put(p, long)
	e.commit(e.writer(p, false))
	e.wantContent(p, nil)
}

// largeSize is big enough that a driver holding whole files in memory per
// operation would show it, yet fast enough under the race detector.
func largeSize() int64 {
	if testing.Short() {
		return 4 << 20
	}
	return 32 << 20
}

// testLargeFile streams a large file in and out without the test ever
// holding it: content comes from a seeded generator and is compared by
// hash.
func testLargeFile(e *env) {
	t := e.t
	size := largeSize()
	p := e.p("large")
	var seed [32]byte
	copy(seed[:], randomBytes(32))
	gen := func() io.Reader { return io.LimitReader(newSeededStream(seed), size) }

	w := e.writer(p, false)
	want := sha256.New()
	buf := make([]byte, 1<<20)
	src := io.TeeReader(gen(), want)
	sizes := []int{1 << 20, 12345, 65536, 1, 1<<20 - 1}
	for i := 0; ; i++ {
		n, err := io.ReadFull(src, buf[:sizes[i%len(sizes)]])
		if n > 0 {
			e.write(w, buf[:n])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	e.commit(w)
	if fi := e.stat(p); fi.Size() != size {
		t.Fatalf("Stat(%q).Size() = %d, want %d", p, fi.Size(), size)
	}

	// expected hashes the generated content from off on; for off 0 the
	// hash taken while writing is reused.
	expected := func(off int64) []byte {
		if off == 0 {
			return want.Sum(nil)
		}
		h := sha256.New()
		g := gen()
		if _, err := io.CopyN(io.Discard, g, off); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyBuffer(h, g, buf); err != nil {
			t.Fatal(err)
		}
		return h.Sum(nil)
	}
	for _, off := range []int64{0, size/2 + 12345} {
		r, err := e.d.Reader(e.ctx, p, off)
		if err != nil {
			t.Fatalf("Reader(%q, %d) = %v", p, off, err)
		}
		got := sha256.New()
		n, err := io.CopyBuffer(got, r, buf)
		r.Close()
		if err != nil {
			t.Fatalf("reading %q from %d: %v", p, off, err)
		}
		if exp := expected(off); n != size-off || !bytes.Equal(got.Sum(nil), exp) {
			t.Errorf("Reader(%q, %d) read %d bytes with sha256 %x, want %d bytes with %x",
				p, off, n, got.Sum(nil), size-off, exp)
		}
	}
}

// testContextCanceled calls every method with an already cancelled
// context. A driver may refuse or carry on, but what is stored afterwards
// must be either the old state or the new one.
func testContextCanceled(e *env) {
	t := e.t
	dead, cancel := context.WithCancel(e.ctx)
	cancel()
	a, b := randomBytes(70_000), randomBytes(50_000)
	p := e.p("file")
	e.put(p, a)

	// PutContent: old content or new, nothing else.
	if err := e.d.PutContent(dead, p, b); err != nil {
		e.wantContent(p, a)
	} else {
		e.wantContent(p, b)
		e.put(p, a)
	}
	if got, err := e.d.GetContent(dead, p); err == nil {
		sameContent(t, "GetContent with a cancelled context", got, a)
	}
	if fi, err := e.d.Stat(dead, p); err == nil && fi.Size() != int64(len(a)) {
		t.Errorf("Stat with a cancelled context: size %d, want %d", fi.Size(), len(a))
	}

	// Move: either moved or untouched.
	q := e.p("moved")
	if err := e.d.Move(dead, p, q); err != nil {
		e.wantContent(p, a)
		e.wantMissing(q)
	} else {
		e.wantContent(q, a)
		e.wantMissing(p)
		if err := e.d.Move(e.ctx, q, p); err != nil {
			t.Fatalf("Move(%q, %q) = %v", q, p, err)
		}
	}

	// Delete: either gone or untouched.
	if err := e.d.Delete(dead, p); err != nil {
		e.wantContent(p, a)
	} else {
		e.wantMissing(p)
		e.put(p, a)
	}

	// Writer: refused without a trace, or a working writer.
	r := e.p("writer")
	if w, err := e.d.Writer(dead, r, false); err != nil {
		e.wantMissing(r)
	} else {
		e.write(w, b)
		e.commit(w)
		e.wantContent(r, b)
	}

	// Commit with a cancelled context: committed fully, or not at all.
	s := e.p("commit")
	w := e.writer(s, false)
	e.write(w, chunk(b)...)
	if err := w.Commit(dead); err == nil {
		e.wantContent(s, b)
	} else {
		_ = w.Cancel(e.ctx)
	}

	// A reader whose context is cancelled half way may stop, but what it
	// delivers is a prefix of the file.
	rctx, rcancel := context.WithCancel(e.ctx)
	rd, err := e.d.Reader(rctx, p, 0)
	if err != nil {
		t.Fatalf("Reader(%q, 0) = %v", p, err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rd, head); err != nil {
		t.Fatalf("reading %q: %v", p, err)
	}
	rcancel()
	rest, _ := io.ReadAll(rd)
	rd.Close()
	got := concat(head, rest)
	if len(got) > len(a) {
		t.Errorf("reader delivered %d bytes of a %d byte file", len(got), len(a))
	} else {
		sameContent(t, "reader cancelled half way", got, a[:len(got)])
	}

	// Walk cancelled from inside: it may stop early, nothing breaks.
	wctx, wcancel := context.WithCancel(e.ctx)
	_ = e.d.Walk(wctx, e.prefix, func(driver.FileInfo) error { wcancel(); return nil })
	wcancel()

	// Any result is fine for these; what counts is that the file is intact.
	_, _ = e.d.List(dead, e.prefix)
	_ = e.d.Walk(dead, e.prefix, func(driver.FileInfo) error { return nil })
	e.wantContent(p, a)
}
