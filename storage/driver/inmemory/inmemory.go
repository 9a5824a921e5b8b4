// Package inmemory is a storage driver that keeps everything in process
// memory. It exists for tests and for trying berth out; content is lost when
// the process exits.
//
// Files live in a tree of nodes guarded by one mutex. Directories are
// implied by files: they appear when a file is created below them and are
// removed once their last file goes, exactly as in an object store.
//
// File content is append-only once published: a Writer only ever appends to
// a file's slice, and replacing a file (PutContent, Writer without append)
// installs a new node with a fresh slice. A reader can therefore keep the
// slice header it got at open time and read from it without holding the
// lock, and never sees bytes change under it.
package inmemory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/storage/driver"
)

const driverName = "inmemory"

// Driver is an in-memory driver.Driver. The zero value is not usable; call
// New.
type Driver struct {
	mu   sync.Mutex
	root *node
}

var _ driver.Driver = (*Driver)(nil)

// node is a file (children == nil) or a directory.
type node struct {
	children map[string]*node
	data     []byte
	modTime  time.Time
}

func (n *node) isDir() bool { return n.children != nil }

func newDir(now time.Time) *node { return &node{children: map[string]*node{}, modTime: now} }

// New returns an empty Driver.
func New() *Driver { return &Driver{root: newDir(time.Now())} }

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

func invalid(p string) error { return &driver.InvalidPathError{Driver: driverName, Path: p} }

func notFound(p string) error { return &driver.PathNotFoundError{Driver: driverName, Path: p} }

// split turns a valid path into its components; "/" has none.
func split(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// lookup returns the node at p, or nil. The caller holds d.mu.
func (d *Driver) lookup(p string) *node {
	n := d.root
	for _, c := range split(p) {
		if !n.isDir() {
			return nil
		}
		if n = n.children[c]; n == nil {
			return nil
		}
	}
	return n
}

// mkdirs returns the directory holding p, creating missing directories. A
// file in the way is an error, as on a filesystem. The caller holds d.mu.
func (d *Driver) mkdirs(p string, now time.Time) (*node, error) {
	comps := split(p)
	n := d.root
	for i, c := range comps[:len(comps)-1] {
		child := n.children[c]
		if child == nil {
			child = newDir(now)
			n.children[c] = child
			n.modTime = now
		} else if !child.isDir() {
			return nil, fmt.Errorf("%s: %s: not a directory", driverName, "/"+strings.Join(comps[:i+1], "/"))
		}
		n = child
	}
	return n, nil
}

// remove unlinks the node at p (which must exist) and prunes directories
// that became empty. The caller holds d.mu.
func (d *Driver) remove(p string, now time.Time) {
	comps := split(p)
	chain := make([]*node, 0, len(comps))
	n := d.root
	for _, c := range comps[:len(comps)-1] {
		chain = append(chain, n)
		n = n.children[c]
	}
	chain = append(chain, n)
	for i := len(comps) - 1; i >= 0; i-- {
		parent := chain[i]
		delete(parent.children, comps[i])
		parent.modTime = now
		if i == 0 || len(parent.children) > 0 {
			return
		}
	}
}

// place installs f at p, replacing a file there. The caller holds d.mu.
func (d *Driver) place(p string, f *node) error {
	parent, err := d.mkdirs(p, f.modTime)
	if err != nil {
		return err
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	if old := parent.children[name]; old != nil && old.isDir() {
		return fmt.Errorf("%s: %s: is a directory", driverName, p)
	}
	parent.children[name] = f
	parent.modTime = f.modTime
	return nil
}

// GetContent implements driver.Driver. It returns a copy the caller may
// modify.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookup(p)
	if n == nil || n.isDir() {
		return nil, notFound(p)
	}
	return bytes.Clone(n.data), nil
}

// PutContent implements driver.Driver. The content is copied, so the caller
// may reuse its slice.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f := &node{data: bytes.Clone(content), modTime: time.Now()}
	if f.data == nil {
		f.data = []byte{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.place(p, f)
}

// Reader implements driver.Driver. The reader sees the file as it was when
// Reader was called.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("%s: read %s at %d: %w", driverName, p, offset, driver.ErrInvalidOffset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	n := d.lookup(p)
	if n == nil || n.isDir() {
		d.mu.Unlock()
		return nil, notFound(p)
	}
	// The full slice expression caps the view: nothing a writer appends
	// later can reach the reader.
	data := n.data[:len(n.data):len(n.data)]
	d.mu.Unlock()
	if offset > int64(len(data)) {
		return nil, fmt.Errorf("%s: read %s at %d beyond size %d: %w",
			driverName, p, offset, len(data), driver.ErrInvalidOffset)
	}
	return io.NopCloser(bytes.NewReader(data[offset:])), nil
}

// Writer implements driver.Driver. Written bytes are visible to readers as
// soon as Write returns, as with a file written in place.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if append {
		n := d.lookup(p)
		if n == nil || n.isDir() {
			return nil, notFound(p)
		}
		return &writer{d: d, path: p, n: n, size: int64(len(n.data))}, nil
	}
	n := &node{data: []byte{}, modTime: time.Now()}
	if err := d.place(p, n); err != nil {
		return nil, err
	}
	return &writer{d: d, path: p, n: n}, nil
}

// writer appends to its node under the driver lock.
type writer struct {
	d      *Driver
	path   string
	n      *node
	size   int64
	closed bool
}

// Write appends p to the file.
func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, driver.ErrClosed
	}
	now := time.Now()
	w.d.mu.Lock()
	w.n.data = append(w.n.data, p...)
	w.n.modTime = now
	w.size = int64(len(w.n.data))
	w.d.mu.Unlock()
	return len(p), nil
}

// Size reports the file length, including content of earlier writers.
func (w *writer) Size() int64 { return w.size }

// Close ends this writer; the content stays for a later append.
func (w *writer) Close() error {
	w.closed = true
	return nil
}

// Commit ends this writer. Content is already visible, so there is nothing
// to flush.
func (w *writer) Commit(context.Context) error {
	if w.closed {
		return driver.ErrClosed
	}
	w.closed = true
	return nil
}

// Cancel removes the file, unless it was replaced in the meantime by
// another PutContent, Writer or Move: that content is not this writer's to
// discard.
func (w *writer) Cancel(context.Context) error {
	if w.closed {
		return driver.ErrClosed
	}
	w.closed = true
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.d.lookup(w.path) == w.n {
		w.d.remove(w.path, time.Now())
	}
	return nil
}

// Stat implements driver.Driver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookup(p)
	if n == nil {
		return nil, notFound(p)
	}
	return info(p, n), nil
}

// info describes n; the caller holds d.mu.
func info(p string, n *node) driver.FileInfo {
	if n.isDir() {
		return driver.FileInfoFields{P: p, MT: n.modTime, Dir: true}
	}
	return driver.FileInfoFields{P: p, Sz: int64(len(n.data)), MT: n.modTime}
}

// List implements driver.Driver. Paths are returned sorted.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidDirPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	infos, err := d.children(p)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(infos))
	for i, fi := range infos {
		out[i] = fi.Path()
	}
	return out, nil
}

// children snapshots the entries of directory p, sorted by name, so callers
// can use them without holding the lock.
func (d *Driver) children(p string) ([]driver.FileInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookup(p)
	if n == nil || !n.isDir() {
		return nil, notFound(p)
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]driver.FileInfo, len(names))
	for i, name := range names {
		child := p + "/" + name
		if p == "/" {
			child = "/" + name
		}
		out[i] = info(child, n.children[name])
	}
	return out, nil
}

// Move implements driver.Driver by relinking the node, so it is atomic.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if !driver.ValidPath(src) {
		return invalid(src)
	}
	if !driver.ValidPath(dst) {
		return invalid(dst)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookup(src)
	if n == nil || n.isDir() {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	now := time.Now()
	// Link dst before unlinking src: if dst is impossible nothing has
	// changed yet, and pruning after the unlink cannot remove dst's
	// parents, which now hold the file.
	parent, err := d.mkdirs(dst, now)
	if err != nil {
		return err
	}
	name := dst[strings.LastIndexByte(dst, '/')+1:]
	if old := parent.children[name]; old != nil && old.isDir() {
		return fmt.Errorf("%s: %s: is a directory", driverName, dst)
	}
	parent.children[name] = n
	parent.modTime = now
	d.remove(src, now)
	return nil
}

// Delete implements driver.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lookup(p) == nil {
		return notFound(p)
	}
	d.remove(p, time.Now())
	return nil
}

// Walk implements driver.Driver. The lock is not held while fn runs, so fn
// may call back into the driver; entries removed meanwhile are skipped.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if !driver.ValidDirPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	infos, err := d.children(p)
	if err != nil {
		return err
	}
	return d.walk(ctx, infos, fn)
}

// walk visits infos and their descendants. As in filepath.WalkDir,
// ErrSkipDir returned for a directory skips it, and returned for a file
// skips the rest of the directory holding the file.
func (d *Driver) walk(ctx context.Context, infos []driver.FileInfo, fn driver.WalkFunc) error {
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			if errors.Is(err, driver.ErrSkipDir) {
				if fi.IsDir() {
					continue
				}
				return nil
			}
			return err
		}
		if !fi.IsDir() {
			continue
		}
		children, err := d.children(fi.Path())
		if err != nil {
			continue // removed or replaced since listed
		}
		if err := d.walk(ctx, children, fn); err != nil {
			return err
		}
	}
	return nil
}
