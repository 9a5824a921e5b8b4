package drivertest

import (
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/berthhq/berth/storage/driver"
)

func testName(e *env) {
	if e.d.Name() == "" {
		e.t.Error("Name() is empty")
	}
}

// badPaths returns paths every method must reject. Some sit below the
// test's prefix so that a driver wrongly accepting them creates something
// the leftover check sees.
func badPaths(prefix string) []string {
	bad := []string{
		"", "a", "a/b", "./a", "../a", "/", "//", "//a", "/a/", "/a//b",
		"/a/../b", "/..", "/.", "/./a", "/a/.", "/a/..", "/a b", " /a",
		"/a\x00", "/a\x00b", "/ä", "/a\tb", "/a\nb", "/a\\b", "/a:b",
		"/a?b", "/a*b", "/a%2Fb", "/~a", "/a+b", "/a@b", "/a#b",
	}
	for _, rel := range []string{
		"/", "//x", "/x//y", "/x/", "/../x", "/./x", "/x/..", "/x/.",
		"/x y", "/x\x00", "/ä", "/x\\y", "/x/\x7f",
	} {
		bad = append(bad, prefix+rel)
	}
	return bad
}

func testInvalidPaths(e *env) {
	t := e.t
	// A valid file whose survival shows that no rejected call touched
	// anything; Delete("/") wrongly accepted would wipe it, for example.
	sentinel := e.p("sentinel")
	content := randomBytes(100)
	e.put(sentinel, content)
	opener, _ := e.d.(driver.Opener)

	for _, p := range badPaths(e.prefix) {
		if driver.ValidPath(p) {
			t.Fatalf("suite bug: %q is valid", p)
		}
		_, err := e.d.GetContent(e.ctx, p)
		wantInvalid(t, "GetContent", p, err)
		wantInvalid(t, "PutContent", p, e.d.PutContent(e.ctx, p, []byte("x")))
		r, err := e.d.Reader(e.ctx, p, 0)
		wantInvalid(t, "Reader", p, err)
		if err == nil {
			r.Close()
		}
		for _, app := range []bool{false, true} {
			w, err := e.d.Writer(e.ctx, p, app)
			wantInvalid(t, "Writer", p, err)
			if err == nil {
				_ = w.Cancel(e.ctx)
			}
		}
		_, err = e.d.Stat(e.ctx, p)
		wantInvalid(t, "Stat", p, err)
		if p != "/" {
			_, err = e.d.List(e.ctx, p)
			wantInvalid(t, "List", p, err)
			called := false
			err = e.d.Walk(e.ctx, p, func(driver.FileInfo) error { called = true; return nil })
			wantInvalid(t, "Walk", p, err)
			if called {
				t.Errorf("Walk(%q) called its function", p)
			}
		}
		wantInvalid(t, "Move from", p, e.d.Move(e.ctx, p, e.p("moved")))
		wantInvalid(t, "Move to", p, e.d.Move(e.ctx, sentinel, p))
		wantInvalid(t, "Delete", p, e.d.Delete(e.ctx, p))
		if opener != nil {
			rsc, _, err := opener.Open(e.ctx, p)
			wantInvalid(t, "Open", p, err)
			if err == nil {
				rsc.Close()
			}
		}
	}
	e.wantContent(sentinel, content)
	e.wantList(e.prefix, sentinel)
}

// validUnusualNames are legal path components and paths that a driver could
// be tempted to treat specially: dot names, names its own layout might use
// internally, long and deep paths.
var validUnusualNames = []string{
	"a-b_c.d/e",
	"UPPER",
	"123",
	"...",
	".hidden",
	"a.",
	"-",
	"_",
	"--x--",
	".tmp-x",
	"tmp/x",
	"_tmp/x",
	"data/x",
	"_uploads/x",
	"x/y/z/0/1/2/3/4/5/6/7/8/9/a/b/c/d/e/f/g/h/i/j",
	strings.Repeat("n", 200),
	"A-Z.a_z-0.9",
}

func testValidUnusualPaths(e *env) {
	t := e.t
	var files []string
	for _, name := range validUnusualNames {
		p := e.p(name)
		if !driver.ValidPath(p) {
			t.Fatalf("suite bug: %q is invalid", p)
		}
		e.put(p, []byte(p))
		files = append(files, p)
	}
	for _, p := range files {
		e.wantContent(p, []byte(p))
		fi := e.stat(p)
		if fi.IsDir() || fi.Size() != int64(len(p)) {
			t.Errorf("Stat(%q): dir=%v size=%d, want a file of %d bytes", p, fi.IsDir(), fi.Size(), len(p))
		}
		if names := e.list(path.Dir(p)); !slices.Contains(names, p) {
			t.Errorf("List(%q) = %q, missing %q", path.Dir(p), names, p)
		}
	}
	var walked []string
	for _, en := range e.walk(e.prefix) {
		if !en.dir {
			walked = append(walked, en.path)
		}
	}
	slices.Sort(files)
	slices.Sort(walked)
	if !slices.Equal(walked, files) {
		t.Errorf("Walk found files %q, want %q", walked, files)
	}
	for _, p := range files {
		if err := e.d.Delete(e.ctx, p); err != nil {
			t.Errorf("Delete(%q) = %v", p, err)
		}
		e.wantMissing(p)
	}
}

// testNotFound checks that every method reports missing paths, including
// paths "below" a file and directories where a file is expected, as
// ErrNotFound naming the path.
func testNotFound(e *env) {
	t := e.t
	file := e.p("file")
	e.put(file, []byte("x"))
	dir := e.p("dir")
	e.put(dir+"/child", []byte("y"))
	opener, _ := e.d.(driver.Opener)

	missing := []string{e.p("missing"), e.p("nodir/missing"), file + "/child"}
	for _, p := range missing {
		_, err := e.d.GetContent(e.ctx, p)
		wantNotFound(t, "GetContent", p, err)
		_, err = e.d.Reader(e.ctx, p, 0)
		wantNotFound(t, "Reader", p, err)
		_, err = e.d.Writer(e.ctx, p, true)
		wantNotFound(t, "Writer(append)", p, err)
		_, err = e.d.Stat(e.ctx, p)
		wantNotFound(t, "Stat", p, err)
		_, err = e.d.List(e.ctx, p)
		wantNotFound(t, "List", p, err)
		err = e.d.Walk(e.ctx, p, func(driver.FileInfo) error { return nil })
		wantNotFound(t, "Walk", p, err)
		wantNotFound(t, "Delete", p, e.d.Delete(e.ctx, p))
		wantNotFound(t, "Move", p, e.d.Move(e.ctx, p, e.p("dst")))
		if opener != nil {
			_, _, err := opener.Open(e.ctx, p)
			wantNotFound(t, "Open", p, err)
		}
	}
	e.wantMissing(e.p("dst"))

	// A directory is not a file, and a file is not a directory.
	_, err := e.d.GetContent(e.ctx, dir)
	wantNotFound(t, "GetContent of a directory", dir, err)
	_, err = e.d.Reader(e.ctx, dir, 0)
	wantNotFound(t, "Reader of a directory", dir, err)
	_, err = e.d.Writer(e.ctx, dir, true)
	wantNotFound(t, "Writer(append) of a directory", dir, err)
	if opener != nil {
		_, _, err := opener.Open(e.ctx, dir)
		wantNotFound(t, "Open of a directory", dir, err)
	}
	_, err = e.d.List(e.ctx, file)
	wantNotFound(t, "List of a file", file, err)
	err = e.d.Walk(e.ctx, file, func(driver.FileInfo) error { return nil })
	wantNotFound(t, "Walk of a file", file, err)

	e.wantContent(file, []byte("x"))
	e.wantContent(dir+"/child", []byte("y"))
}

// testFileDirConflicts writes where a file stands in for a directory or the
// other way round. Drivers differ in whether they refuse (a filesystem
// must) or allow it (an object store may), but none may damage what is
// already stored.
func testFileDirConflicts(e *env) {
	file := e.p("file")
	e.put(file, []byte("file"))
	child := e.p("dir/child")
	e.put(child, []byte("child"))
	other := e.p("other")
	e.put(other, []byte("other"))

	_ = e.d.PutContent(e.ctx, file+"/below", []byte("below"))
	if w, err := e.d.Writer(e.ctx, file+"/below2", false); err == nil {
		_ = w.Cancel(e.ctx)
	}
	if err := e.d.Move(e.ctx, other, file+"/below3"); err != nil {
		e.wantContent(other, []byte("other"))
	}
	_ = e.d.PutContent(e.ctx, e.p("dir"), []byte("dir"))
	if w, err := e.d.Writer(e.ctx, e.p("dir"), false); err == nil {
		_ = w.Cancel(e.ctx)
	}

	e.wantContent(file, []byte("file"))
	e.wantContent(child, []byte("child"))
	if err := e.d.Delete(e.ctx, e.prefix); err != nil && !errors.Is(err, driver.ErrNotFound) {
		e.t.Errorf("Delete(%q) = %v", e.prefix, err)
	}
}
