package s3

import (
	"container/heap"
	"context"
	"errors"
	"iter"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berthhq/berth/storage/driver"
)

// Walk implements driver.Driver with one flat listing (no delimiter) below
// path, from which it presents the directories the keys imply.
//
// S3 lists keys in byte order, which is not the walk's order: "a-b" and
// "a.c" come before "a/x", because '-' and '.' sort before '/', yet a
// depth-first walk visits directory "a" and everything in it first. Walk
// therefore holds back a key while a directory that must be visited before
// it may still show up in the listing, and releases it as soon as the
// listing has moved past where that directory's keys would be. Only keys
// with a '-' or '.' are ever held, and only until the listing passes their
// siblings, so memory stays small for any layout that does not put many
// such names next to a directory of the same stem.
//
// A directory carries the modification time of the first file found in it.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if !driver.ValidDirPath(p) {
		return invalid(p)
	}
	found, err := walkObjects(ctx, p, d.listObjects(ctx, p), fn)
	if err != nil {
		return err
	}
	if !found && p != "/" {
		return notFound(p)
	}
	return nil
}

// listed is an object found below a walk's directory; rel is its key
// relative to the directory's prefix.
type listed struct {
	rel     string
	size    int64
	modTime time.Time
}

// listObjects lists every object below directory p, in key order. Errors
// are wrapped for the caller.
func (d *Driver) listObjects(ctx context.Context, p string) iter.Seq2[listed, error] {
	prefix := d.dirPrefix(p)
	return func(yield func(listed, error) bool) {
		pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(listed{}, wrap("walk", p, err))
				return
			}
			for _, o := range page.Contents {
				l := listed{
					rel:     strings.TrimPrefix(aws.ToString(o.Key), prefix),
					size:    aws.ToInt64(o.Size),
					modTime: aws.ToTime(o.LastModified),
				}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

// walkObjects runs a walk of directory base over objects, which come in
// key order. found reports whether any object maps to a valid path. Errors
// of fn come back unchanged.
func walkObjects(ctx context.Context, base string, objects iter.Seq2[listed, error], fn driver.WalkFunc) (found bool, err error) {
	v := visitor{base: base, fn: fn}
	var held walkHeap
	for o, err := range objects {
		if err != nil {
			return found, err
		}
		if driver.ValidPath("/" + o.rel) {
			heap.Push(&held, o)
			found = true
		}
		// Keys that map to no path still tell how far the listing is.
		for held.Len() > 0 && releasable(held[0].rel, o.rel) {
			if stop, err := v.visit(ctx, heap.Pop(&held).(listed)); stop || err != nil {
				return found, err
			}
		}
	}
	for held.Len() > 0 {
		if stop, err := v.visit(ctx, heap.Pop(&held).(listed)); stop || err != nil {
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
type walkHeap []listed

func (h walkHeap) Len() int           { return len(h) }
func (h walkHeap) Less(i, j int) bool { return walkLess(h[i].rel, h[j].rel) }
func (h walkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *walkHeap) Push(x any)        { *h = append(*h, x.(listed)) }
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
func (v *visitor) visit(ctx context.Context, o listed) (stop bool, err error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if v.skip != "" {
		if strings.HasPrefix(o.rel, v.skip) {
			return false, nil
		}
		v.skip = ""
	}
	for len(v.open) > 0 && !strings.HasPrefix(o.rel, v.open[len(v.open)-1]+"/") {
		v.open = v.open[:len(v.open)-1]
	}
	start := 0
	if len(v.open) > 0 {
		start = len(v.open[len(v.open)-1]) + 1
	}
	for {
		i := strings.IndexByte(o.rel[start:], '/')
		if i < 0 {
			break
		}
		dir := o.rel[:start+i]
		err := v.fn(driver.FileInfoFields{P: join(v.base, dir), MT: o.modTime, Dir: true})
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
	err = v.fn(driver.FileInfoFields{P: join(v.base, o.rel), Sz: o.size, MT: o.modTime})
	if errors.Is(err, driver.ErrSkipDir) {
		// As in filepath.WalkDir: skip the rest of the file's directory.
		i := strings.LastIndexByte(o.rel, '/')
		if i < 0 {
			return true, nil
		}
		v.skip = o.rel[:i+1]
		return false, nil
	}
	return err != nil, err
}
