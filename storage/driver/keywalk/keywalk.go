// Package keywalk walks the directory tree that a flat, sorted listing of
// object keys implies, in the order driver.Driver's Walk promises. Object
// store drivers (S3, GCS, Azure Blob and the like) list keys in byte order
// without a delimiter and hand the listing to Walk.
//
// Object stores list keys in byte order, which is not the walk's order:
// "a-b" and "a.c" come before "a/x", because '-' and '.' sort before '/',
// yet a depth-first walk visits directory "a" and everything in it first.
// Walk therefore holds back a key while a directory that must be visited
// before it may still show up in the listing, and releases it as soon as
// the listing has moved past where that directory's keys would be. Only
// keys with a '-' or '.' are ever held, and only until the listing passes
// their siblings, so memory stays small for any layout that does not put
// many such names next to a directory of the same stem.
//
// A directory carries the modification time of the first file found in it.
package keywalk

import (
	"container/heap"
	"context"
	"errors"
	"iter"
	"strings"
	"time"

	"github.com/berthhq/berth/storage/driver"
)

// Object is a stored object below the walk's directory.
type Object struct {
	// Rel is the key relative to the directory's prefix: "a/b" for the
	// file base + "/a/b".
	Rel     string
	Size    int64
	ModTime time.Time
}

// Walk runs a walk of directory base (a valid driver path, or "/") over
// objects, the objects below base in byte order of their keys, calling fn
// as driver.Driver's Walk does: directories implied by the keys first,
// depth first, in lexical order. Keys that are not valid relative paths
// (a driver's own state, such as "~pending/...") are left out. found
// reports whether any object maps to a valid path. Errors of objects and
// of fn come back unchanged, except ErrSkipDir.
func Walk(ctx context.Context, base string, objects iter.Seq2[Object, error], fn driver.WalkFunc) (found bool, err error) {
	v := visitor{base: base, fn: fn}
	var held walkHeap
	for o, err := range objects {
		if err != nil {
			return found, err
		}
		if driver.ValidPath("/" + o.Rel) {
			heap.Push(&held, o)
			found = true
		}
		// Keys that map to no path still tell how far the listing is.
		for held.Len() > 0 && releasable(held[0].Rel, o.Rel) {
			if stop, err := v.visit(ctx, heap.Pop(&held).(Object)); stop || err != nil {
				return found, err
			}
		}
	}
	for held.Len() > 0 {
		if stop, err := v.visit(ctx, heap.Pop(&held).(Object)); stop || err != nil {
			return found, err
		}
	}
	return found, nil
}

// releasable reports whether key can be visited once the listing has
// reached latest: no key still to come can precede it in walk order. A
// later key precedes key only if it continues a prefix of key with '/'
// where key has a byte that sorts before '/' ('-' or '.'); past the
// first such prefix plus "0" (the byte after '/'), none can.
func releasable(key, latest string) bool {
	i := strings.IndexFunc(key, func(r rune) bool { return r < '/' })
	return i < 0 || latest >= key[:i]+"0"
}

// walkLess is the walk's order: bytewise, with '/' before every other
// byte, so that a directory's keys follow its name directly.
func walkLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		switch {
		case ca == cb:
			continue
		case ca == '/':
			return true
		case cb == '/':
			return false
		}
		return ca < cb
	}
	return len(a) < len(b)
}

// walkHeap holds back keys, smallest in walk order first.
type walkHeap []Object

func (h walkHeap) Len() int           { return len(h) }
func (h walkHeap) Less(i, j int) bool { return walkLess(h[i].Rel, h[j].Rel) }
func (h walkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *walkHeap) Push(x any)        { *h = append(*h, x.(Object)) }
func (h *walkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// visitor turns files in walk order into calls of fn, with the
// directories they imply.
type visitor struct {
	base string
	fn   driver.WalkFunc
	open []string // directories (relative) that hold the current file
	skip string   // skip entries below this prefix ("dir/"); "" for none
}

// visit presents o and the directories above it not yet presented. stop
// ends the walk, with err (nil when fn skipped the rest of base).
func (v *visitor) visit(ctx context.Context, o Object) (stop bool, err error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if v.skip != "" {
		if strings.HasPrefix(o.Rel, v.skip) {
			return false, nil
		}
		v.skip = ""
	}
	for len(v.open) > 0 && !strings.HasPrefix(o.Rel, v.open[len(v.open)-1]+"/") {
		v.open = v.open[:len(v.open)-1]
	}
	start := 0
	if len(v.open) > 0 {
		start = len(v.open[len(v.open)-1]) + 1
	}
	for {
		i := strings.IndexByte(o.Rel[start:], '/')
		if i < 0 {
			break
		}
		dir := o.Rel[:start+i]
		err := v.fn(driver.FileInfoFields{P: Join(v.base, dir), MT: o.ModTime, Dir: true})
		if errors.Is(err, driver.ErrSkipDir) {
			v.skip = dir + "/"
			return false, nil
		}
		if err != nil {
			return true, err
		}
		v.open = append(v.open, dir)
		start += i + 1
	}
	err = v.fn(driver.FileInfoFields{P: Join(v.base, o.Rel), Sz: o.Size, MT: o.ModTime})
	if errors.Is(err, driver.ErrSkipDir) {
		// As in filepath.WalkDir: skip the rest of the file's directory.
		i := strings.LastIndexByte(o.Rel, '/')
		if i < 0 {
			return true, nil
		}
		v.skip = o.Rel[:i+1]
		return false, nil
	}
	return err != nil, err
}

// Join is the driver path of name in directory dir.
func Join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
