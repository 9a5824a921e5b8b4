package keywalk

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/berthhq/berth/storage/driver"
)

// keysOf lists rels as a flat object store listing would: in byte order, each with
// a size that identifies it.
func keysOf(rels []string) iter.Seq2[Object, error] {
	sorted := slices.Clone(rels)
	slices.Sort(sorted)
	return func(yield func(Object, error) bool) {
		for _, r := range sorted {
			if !yield(Object{Rel: r, Size: int64(len(r))}, nil) {
				return
			}
		}
	}
}

// visit is one call of the walk function, as a comparable value.
type visit struct {
	path string
	dir  bool
	size int64
}

func (v visit) String() string {
	if v.dir {
		return v.path + "/"
	}
	return fmt.Sprintf("%s(%d)", v.path, v.size)
}

// referenceWalk walks the tree of files rels (relative to base) the
// obvious way: recursively, each directory's names sorted. skip names the
// entries for which the walk function returns ErrSkipDir.
func referenceWalk(base string, rels []string, skip map[string]bool) []visit {
	type node struct {
		children map[string]*node
		size     int64
	}
	root := &node{children: map[string]*node{}}
	for _, r := range rels {
		if !driver.ValidPath("/" + r) {
			continue
		}
		n := root
		comps := strings.Split(r, "/")
		for _, c := range comps[:len(comps)-1] {
			if n.children[c] == nil {
				n.children[c] = &node{children: map[string]*node{}}
			}
			n = n.children[c]
		}
		n.children[comps[len(comps)-1]] = &node{size: int64(len(r))}
	}
	var out []visit
	var walk func(dir string, n *node)
	walk = func(dir string, n *node) {
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := n.children[name]
			p := Join(dir, name)
			out = append(out, visit{path: p, dir: c.children != nil, size: c.size})
			if skip[p] {
				if c.children != nil {
					continue
				}
				return
			}
			if c.children != nil {
				walk(p, c)
			}
		}
	}
	walk(base, root)
	return out
}

func runWalk(t *testing.T, base string, rels []string, skip map[string]bool) ([]visit, bool) {
	t.Helper()
	var got []visit
	found, err := Walk(context.Background(), base, keysOf(rels), func(fi driver.FileInfo) error {
		got = append(got, visit{path: fi.Path(), dir: fi.IsDir(), size: fi.Size()})
		if skip[fi.Path()] {
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walkObjects = %v", err)
	}
	return got, found
}

func TestWalkOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		rels []string
		want []string
	}{
		{
			name: "dash and dot sort before slash",
			base: "/w",
			rels: []string{"0", "B", "a/x", "a/y/z", "a-b", "a.c", "b"},
			want: []string{"/w/0(1)", "/w/B(1)", "/w/a/", "/w/a/x(3)", "/w/a/y/", "/w/a/y/z(5)", "/w/a-b(3)", "/w/a.c(3)", "/w/b(1)"},
		},
		{
			name: "nested stems",
			base: "/",
			rels: []string{"a-/b", "a-.c", "a-", "a/a-/x", "a/a-b", "a/a/b"},
			want: []string{"/a/", "/a/a/", "/a/a/b(5)", "/a/a-/", "/a/a-/x(6)", "/a/a-b(5)", "/a-(2)", "/a-/", "/a-/b(4)", "/a-.c(4)"},
		},
		{
			name: "keys that are no path",
			base: "/d",
			rels: []string{"", "~pending/x", "a//b", "a/b c", "a/ok", "x/"},
			want: []string{"/d/a/", "/d/a/ok(4)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := runWalk(t, tc.base, tc.rels, nil)
			var gotS []string
			for _, v := range got {
				gotS = append(gotS, v.String())
			}
			if !slices.Equal(gotS, tc.want) {
				t.Errorf("walk =\n%q\nwant\n%q", gotS, tc.want)
			}
			if found != (len(tc.want) > 0) {
				t.Errorf("found = %v", found)
			}
		})
	}
	if _, found := runWalk(t, "/d", []string{"~x", "a b"}, nil); found {
		t.Error("found = true for keys that are no path")
	}
}

// TestWalkRandomTrees compares the streaming walk with the reference on
// random trees of names chosen to collide on '-', '.' and '/', with and
// without ErrSkipDir.
func TestWalkRandomTrees(t *testing.T) {
	names := []string{"a", "a-", "a-b", "a.", "a.b", "ab", "a_", "b", "-", ".x", "A", "0"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var rels []string
		for range 1 + rng.IntN(30) {
			depth := 1 + rng.IntN(4)
			comps := make([]string, depth)
			for j := range comps {
				comps[j] = names[rng.IntN(len(names))]
			}
			rels = append(rels, strings.Join(comps, "/"))
		}
		// A name is a file or a directory, not both, as the reference
		// tree needs.
		rels = slices.DeleteFunc(rels, func(r string) bool {
			return slices.ContainsFunc(rels, func(o string) bool { return strings.HasPrefix(o, r+"/") })
		})
		slices.Sort(rels)
		rels = slices.Compact(rels)

		all := referenceWalk("/r", rels, nil)
		skip := map[string]bool{}
		if i%2 == 1 && len(all) > 0 {
			for range 1 + rng.IntN(3) {
				skip[all[rng.IntN(len(all))].path] = true
			}
		}
		want := referenceWalk("/r", rels, skip)
		got, _ := runWalk(t, "/r", rels, skip)
		if !slices.Equal(got, want) {
			t.Fatalf("tree %q, skipping %v:\nwalk      %v\nreference %v", rels, skip, got, want)
		}
	}
}

func TestWalkStops(t *testing.T) {
	rels := []string{"a/1", "a/2", "b/1", "c"}
	stop := errors.New("stop")
	calls := 0
	_, err := Walk(context.Background(), "/", keysOf(rels), func(fi driver.FileInfo) error {
		calls++
		if fi.Path() == "/a/2" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("walk = %v after %d calls, want the function's error after 3", err, calls)
	}

	// ErrSkipDir for a file at the top skips everything after it.
	var got []string
	_, err = Walk(context.Background(), "/", keysOf(rels), func(fi driver.FileInfo) error {
		got = append(got, fi.Path())
		if fi.Path() == "/a/1" {
			return driver.ErrSkipDir
		}
		if fi.Path() == "/b/1" {
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"/a", "/a/1", "/b", "/b/1", "/c"}) {
		t.Errorf("walk with ErrSkipDir for files = %q, %v", got, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, err = Walk(ctx, "/", keysOf(rels), func(driver.FileInfo) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("walk with its context cancelled = %v", err)
	}

	listErr := errors.New("listing failed")
	failing := func(yield func(Object, error) bool) {
		if yield(Object{Rel: "a"}, nil) {
			yield(Object{}, listErr)
		}
	}
	if _, err := Walk(context.Background(), "/", failing, func(driver.FileInfo) error { return nil }); !errors.Is(err, listErr) {
		t.Errorf("walk over a failing listing = %v", err)
	}
}

// TestWalkHoldsLittle checks that keys without '-' or '.' are visited as
// soon as they are Object, and others once the listing passes them.
func TestWalkHoldsLittle(t *testing.T) {
	for _, tc := range []struct {
		key, latest string
		want        bool
	}{
		{"a/b", "a/b", true},
		{"a-b", "a-b", false},
		{"a-b", "a/zzz", false},
		{"a-b", "a0", true},
		{"x/a.b/c", "x/a/q", false},
		{"x/a.b/c", "x/b", true},
		{"blobs/sha256/ab/abc/data", "blobs/sha256/ab/abc/data", true},
		{"uploads/6ba7b810-9dad/data", "uploads/6ba7b810-9dad/info", false},
		{"uploads/6ba7b810-9dad/data", "uploads/7", true},
	} {
		if got := releasable(tc.key, tc.latest); got != tc.want {
			t.Errorf("releasable(%q, %q) = %v, want %v", tc.key, tc.latest, got, tc.want)
		}
	}
	if !walkLess("a/x", "a-b") || walkLess("a-b", "a/x") || !walkLess("a", "a/x") || !walkLess("a/x", "a0") {
		t.Error("walkLess does not put '/' first")
	}
}
