package drivertest

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/storage/driver"
)

// clockSlack is how far a modification time may be from the test's own
// clock: generous enough for coarse filesystem timestamps and a remote
// backend's clock skew, tight enough to catch zero or made-up times.
const clockSlack = time.Minute

func testStat(e *env) {
	t := e.t
	p := e.p("dir/sub/file")
	start := time.Now()
	e.put(p, randomBytes(1234))
	end := time.Now()

	fi := e.stat(p)
	if fi.IsDir() || fi.Size() != 1234 {
		t.Errorf("Stat(%q): dir=%v size=%d, want a file of 1234 bytes", p, fi.IsDir(), fi.Size())
	}
	mt := fi.ModTime()
	if mt.IsZero() || mt.Before(start.Add(-clockSlack)) || mt.After(end.Add(clockSlack)) {
		t.Errorf("Stat(%q).ModTime() = %v, want about %v", p, mt, start)
	}

	for _, dir := range []string{e.prefix, e.p("dir"), e.p("dir/sub")} {
		fi := e.stat(dir)
		if !fi.IsDir() || fi.Size() != 0 {
			t.Errorf("Stat(%q): dir=%v size=%d, want a directory of size 0", dir, fi.IsDir(), fi.Size())
		}
	}

	// Stat sees a committed Writer's size.
	q := e.p("dir/written")
	w := e.writer(q, false)
	e.write(w, chunk(randomBytes(70_000))...)
	e.commit(w)
	if fi := e.stat(q); fi.Size() != 70_000 || fi.IsDir() {
		t.Errorf("Stat(%q): dir=%v size=%d, want a file of 70000 bytes", q, fi.IsDir(), fi.Size())
	}
}

func testList(e *env) {
	// Before anything is written, the test's own prefix does not exist.
	_, err := e.d.List(e.ctx, e.prefix)
	wantNotFound(e.t, "List of a fresh prefix", e.prefix, err)

	for _, rel := range []string{"l/a", "l/b", "l/sub/c", "l/sub/d/e", "la/x", "l-b", "l.c"} {
		e.put(e.p(rel), []byte(rel))
	}
	e.wantList(e.prefix, e.p("l"), e.p("la"), e.p("l-b"), e.p("l.c"))
	e.wantList(e.p("l"), e.p("l/a"), e.p("l/b"), e.p("l/sub"))
	e.wantList(e.p("l/sub"), e.p("l/sub/c"), e.p("l/sub/d"))
	e.wantList(e.p("l/sub/d"), e.p("l/sub/d/e"))
	e.wantList(e.p("la"), e.p("la/x"))
	_, err = e.d.List(e.ctx, e.p("nothere"))
	wantNotFound(e.t, "List", e.p("nothere"), err)
}

// testListRoot looks at "/" of a driver that may be shared with other
// tests and other data, so it only checks what the suite owns.
func testListRoot(e *env) {
	t := e.t
	e.put(e.p("x"), []byte("x"))
	names, err := e.d.List(e.ctx, "/")
	if err != nil {
		t.Fatalf(`List("/") = %v`, err)
	}
	if !slices.Contains(names, e.root) {
		t.Errorf(`List("/") = %q, missing %q`, names, e.root)
	}
	for _, n := range names {
		if !driver.ValidPath(n) || strings.Count(n, "/") != 1 {
			t.Errorf(`List("/") returned %q, not a top-level path`, n)
		}
	}

	var top []entry
	err = e.d.Walk(e.ctx, "/", func(fi driver.FileInfo) error {
		top = append(top, entryOf(fi))
		if fi.IsDir() {
			return driver.ErrSkipDir // only the top level is of interest
		}
		return nil
	})
	if err != nil {
		t.Fatalf(`Walk("/") = %v`, err)
	}
	if !slices.Contains(top, entry{path: e.root, dir: true}) {
		t.Errorf(`Walk("/") visited %v, missing directory %q`, top, e.root)
	}
	for _, en := range top {
		if strings.Count(en.path, "/") != 1 {
			t.Errorf(`Walk("/") descended into a skipped directory: %s`, en)
		}
	}
}

func testMove(e *env) {
	src, dst := e.p("src/a/file"), e.p("dst/b/c/file")
	content := randomBytes(100_000)
	e.put(src, content)
	if err := e.d.Move(e.ctx, src, dst); err != nil {
		e.t.Fatalf("Move(%q, %q) = %v", src, dst, err)
	}
	e.wantContent(dst, content)
	if fi := e.stat(dst); fi.Size() != int64(len(content)) {
		e.t.Errorf("Stat(%q).Size() = %d, want %d", dst, fi.Size(), len(content))
	}
	e.wantMissing(src)
	e.wantMissing(e.p("src")) // its directories went with it

	// A file made by a Writer moves the same way.
	w := e.writer(e.p("upload"), false)
	e.write(w, chunk(content)...)
	e.commit(w)
	if err := e.d.Move(e.ctx, e.p("upload"), e.p("dst/uploaded")); err != nil {
		e.t.Fatalf("Move = %v", err)
	}
	e.wantContent(e.p("dst/uploaded"), content)
	e.wantList(e.prefix, e.p("dst"))
}

func testMoveOverwrite(e *env) {
	src, dst := e.p("src"), e.p("dst")
	short, long := randomBytes(1000), randomBytes(100_000)
	e.put(src, short)
	e.put(dst, long)
	if err := e.d.Move(e.ctx, src, dst); err != nil {
		e.t.Fatalf("Move(%q, %q) = %v", src, dst, err)
	}
	e.wantContent(dst, short)
	e.wantMissing(src)
}

func testMoveMissing(e *env) {
	dst := e.p("dst")
	content := randomBytes(100)
	e.put(dst, content)
	src := e.p("missing")
	wantNotFound(e.t, "Move", src, e.d.Move(e.ctx, src, dst))
	e.wantContent(dst, content)
	wantNotFound(e.t, "Move", src, e.d.Move(e.ctx, src, e.p("new/dst")))
	e.wantMissing(e.p("new"))
}

// testMoveSelf guards against "copy, then delete the source" done naively,
// which loses the file when source and destination are the same.
func testMoveSelf(e *env) {
	p := e.p("file")
	content := randomBytes(1000)
	e.put(p, content)
	_ = e.d.Move(e.ctx, p, p) // refusing is fine, losing the file is not
	e.wantContent(p, content)
}

func testDelete(e *env) {
	p := e.p("file")
	e.put(p, []byte("x"))
	if err := e.d.Delete(e.ctx, p); err != nil {
		e.t.Fatalf("Delete(%q) = %v", p, err)
	}
	e.wantMissing(p)
	_, err := e.d.GetContent(e.ctx, p)
	wantNotFound(e.t, "GetContent after Delete", p, err)
	wantNotFound(e.t, "second Delete", p, e.d.Delete(e.ctx, p))
}

func testDeleteTree(e *env) {
	for _, rel := range []string{"t/a", "t/b/c", "t/b/d/e", "t/b/d/f"} {
		e.put(e.p(rel), []byte(rel))
	}
	if err := e.d.Delete(e.ctx, e.p("t/b")); err != nil {
		e.t.Fatalf("Delete(%q) = %v", e.p("t/b"), err)
	}
	for _, rel := range []string{"t/b", "t/b/c", "t/b/d", "t/b/d/e", "t/b/d/f"} {
		e.wantMissing(e.p(rel))
	}
	got := e.walk(e.p("t"))
	want := []entry{{path: e.p("t/a"), size: 3}}
	if !slices.Equal(got, want) {
		e.t.Errorf("Walk(%q) = %v, want %v", e.p("t"), got, want)
	}
	e.wantContent(e.p("t/a"), []byte("t/a"))

	if err := e.d.Delete(e.ctx, e.prefix); err != nil {
		e.t.Fatalf("Delete(%q) = %v", e.prefix, err)
	}
	e.wantMissing(e.prefix)
}

// testDeleteSiblings checks that deleting "a" matches whole path components
// only: names that merely start with "a" survive.
func testDeleteSiblings(e *env) {
	for _, tc := range []struct {
		target string
		files  []string
		keep   []string
	}{
		{"x/a", []string{"x/a"}, []string{"x/ab", "x/a-b", "x/a.b", "x/a_b"}},
		{"y/a", []string{"y/a/c", "y/a/d/e"}, []string{"y/ab/c", "y/a-b", "y/a-c/d", "y/a.b"}},
		{"z/ab/c", []string{"z/ab/c"}, []string{"z/ab/cd", "z/ab/c-d/e", "z/ab/c.d"}},
	} {
		for _, rel := range append(tc.files, tc.keep...) {
			e.put(e.p(rel), []byte(rel))
		}
		if err := e.d.Delete(e.ctx, e.p(tc.target)); err != nil {
			e.t.Fatalf("Delete(%q) = %v", e.p(tc.target), err)
		}
		e.wantMissing(e.p(tc.target))
		for _, rel := range tc.keep {
			e.wantContent(e.p(rel), []byte(rel))
		}
	}
}

// testDeletePrunes checks that directories vanish with their last file.
func testDeletePrunes(e *env) {
	deep := e.p("deep/1/2/3/file")
	keep := e.p("keep/file")
	e.put(deep, []byte("x"))
	e.put(keep, []byte("y"))
	if err := e.d.Delete(e.ctx, deep); err != nil {
		e.t.Fatalf("Delete(%q) = %v", deep, err)
	}
	for _, p := range []string{e.p("deep/1/2/3"), e.p("deep/1"), e.p("deep")} {
		e.wantMissing(p)
	}
	e.wantList(e.prefix, e.p("keep"))

	// Deleting a tree also prunes the emptied parents.
	e.put(e.p("t/u/v/file"), []byte("z"))
	if err := e.d.Delete(e.ctx, e.p("t/u")); err != nil {
		e.t.Fatalf("Delete = %v", err)
	}
	e.wantMissing(e.p("t"))
	e.wantList(e.prefix, e.p("keep"))
}

// walkFiles is a tree whose lexical order differs from the order of full
// paths: "a/x" sorts after "a-b" as a string, but a depth-first walk visits
// it right after "a".
var walkFiles = []string{"w/0", "w/B", "w/a/x", "w/a/y/z", "w/a-b", "w/a.c", "w/b"}

func (e *env) putWalkFiles() {
	for _, rel := range walkFiles {
		e.put(e.p(rel), []byte(e.p(rel)))
	}
}

// walkOrder is the expected visit order of walkFiles below "w"; skip
// names directories whose children are left out.
func (e *env) walkOrder(skip ...string) []entry {
	f := func(rel string) entry { p := e.p(rel); return entry{path: p, size: int64(len(p))} }
	d := func(rel string) entry { return entry{path: e.p(rel), dir: true} }
	all := []entry{f("w/0"), f("w/B"), d("w/a"), f("w/a/x"), d("w/a/y"), f("w/a/y/z"), f("w/a-b"), f("w/a.c"), f("w/b")}
	var out []entry
outer:
	for _, en := range all {
		for _, s := range skip {
			if strings.HasPrefix(en.path, e.p(s)+"/") {
				continue outer
			}
		}
		out = append(out, en)
	}
	return out
}

func testWalk(e *env) {
	e.putWalkFiles()
	if got, want := e.walk(e.p("w")), e.walkOrder(); !slices.Equal(got, want) {
		e.t.Errorf("Walk(%q) =\n%v\nwant\n%v", e.p("w"), got, want)
	}
	// A walk of a subdirectory visits only what is below it.
	got := e.walk(e.p("w/a"))
	want := []entry{
		{path: e.p("w/a/x"), size: int64(len(e.p("w/a/x")))},
		{path: e.p("w/a/y"), dir: true},
		{path: e.p("w/a/y/z"), size: int64(len(e.p("w/a/y/z")))},
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("Walk(%q) = %v, want %v", e.p("w/a"), got, want)
	}
}

func testWalkSkipDir(e *env) {
	e.putWalkFiles()
	for _, skip := range [][]string{{"w/a"}, {"w/a/y"}} {
		var got []entry
		err := e.d.Walk(e.ctx, e.p("w"), func(fi driver.FileInfo) error {
			got = append(got, entryOf(fi))
			if fi.Path() == e.p(skip[0]) {
				return driver.ErrSkipDir
			}
			return nil
		})
		if err != nil {
			e.t.Errorf("Walk skipping %s = %v, want nil", skip[0], err)
		}
		if want := e.walkOrder(skip...); !slices.Equal(got, want) {
			e.t.Errorf("Walk skipping %s =\n%v\nwant\n%v", skip[0], got, want)
		}
	}
}

func testWalkError(e *env) {
	e.putWalkFiles()
	stop := errors.New("stop here")
	calls := 0
	err := e.d.Walk(e.ctx, e.p("w"), func(fi driver.FileInfo) error {
		calls++
		if calls == 3 {
			return fmt.Errorf("at %s: %w", fi.Path(), stop)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		e.t.Errorf("Walk = %v, want the function's error", err)
	}
	if calls != 3 {
		e.t.Errorf("Walk called the function %d times after it failed on call 3", calls)
	}
}

func testOpener(e *env) {
	o, ok := e.d.(driver.Opener)
	if !ok {
		e.t.Skipf("%s does not implement driver.Opener", e.d.Name())
	}
	t := e.t
	p := e.p("file")
	content := randomBytes(10_000)
	e.put(p, content)
	f, size, err := o.Open(e.ctx, p)
	if err != nil {
		t.Fatalf("Open(%q) = %v", p, err)
	}
	defer f.Close()
	if size != int64(len(content)) {
		t.Errorf("Open(%q) size = %d, want %d", p, size, len(content))
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	sameContent(t, "Open then read", got, content)
	for _, s := range []struct {
		off    int64
		whence int
		pos    int64
	}{{5000, io.SeekStart, 5000}, {-10, io.SeekEnd, 9990}, {0, io.SeekStart, 0}} {
		pos, err := f.Seek(s.off, s.whence)
		if err != nil || pos != s.pos {
			t.Fatalf("Seek(%d, %d) = %d, %v, want %d", s.off, s.whence, pos, err, s.pos)
		}
		got, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		sameContent(t, fmt.Sprintf("read after Seek to %d", s.pos), got, content[s.pos:])
	}
	_, _, err = o.Open(e.ctx, path.Dir(p))
	wantNotFound(t, "Open of a directory", path.Dir(p), err)
}
