// Package filesystem is a storage driver that keeps files in a local
// directory tree.
//
// The root directory given to New holds two subdirectories: "data", which
// mirrors the driver's path space one to one, and "tmp", where PutContent
// stages new files and Delete parks directory trees before removing them.
// Keeping staging outside "data" means half-written temporary files never
// show up in List, Walk or Stat, whatever their names.
//
// Directories exist only while they contain files: whenever a file or tree
// is removed (Delete, Move, Cancel) the driver removes the parent directories
// that became empty, up to the root. That keeps the tree from accumulating
// empty directories and lets an emptied driver list nothing, as other drivers
// (object stores, the in-memory driver) naturally do.
package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/berthhq/berth/storage/driver"
)

const (
	driverName = "filesystem"

	// writeBufferSize bounds the memory of each open FileWriter while
	// still turning many small writes into few system calls.
	writeBufferSize = 64 << 10

	// mkdirRetries bounds how often an operation recreates parent
	// directories that a concurrent prune removed under its feet. Each
	// retry only happens when another goroutine removed the directory
	// in the tiny window between MkdirAll and the create, so a handful
	// is plenty; the bound only guards against a pathological livelock.
	mkdirRetries = 16

	// staleTempAge is how old an entry in tmp must be before New removes
	// it. Entries that old are leftovers of a crashed process; a younger
	// one may belong to another live driver sharing the same root.
	staleTempAge = time.Hour
)

// Driver stores files below a root directory. It implements driver.Driver
// and driver.Opener. It keeps no state besides the directory names, so any
// number of Drivers, in one process or several, may share a root.
type Driver struct {
	data string // mirrors the driver path space
	tmp  string // staging area, never visible through the driver
}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Opener = (*Driver)(nil)
)

// New returns a Driver storing under root, creating the directory if
// needed. Leftover temporary files of crashed processes are removed.
func New(root string) (*Driver, error) {
	if root == "" {
		return nil, fmt.Errorf("%s: empty root directory", driverName)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	d := &Driver{
		data: filepath.Join(abs, "data"),
		tmp:  filepath.Join(abs, "tmp"),
	}
	for _, dir := range []string{d.data, d.tmp} {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, fmt.Errorf("%s: %w", driverName, err)
		}
	}
	d.removeStaleTemps()
	return d, nil
}

// removeStaleTemps is best effort: a failure leaves some garbage in tmp but
// does not affect correctness, so errors are ignored.
func (d *Driver) removeStaleTemps() {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleTempAge)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(d.tmp, e.Name()))
	}
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

// full maps a validated driver path to its location on disk.
func (d *Driver) full(p string) string {
	if p == "/" {
		return d.data
	}
	return filepath.Join(d.data, filepath.FromSlash(p[1:]))
}

func invalid(p string) error { return &driver.InvalidPathError{Driver: driverName, Path: p} }

func notFound(p string) error { return &driver.PathNotFoundError{Driver: driverName, Path: p} }

// isNotExist also treats ENOTDIR as missing: "/a/b" cannot exist when "/a"
// is a file, and callers expect ErrNotFound for it.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// wrap gives backend failures the driver name and the driver path, so logs
// do not leak the on-disk layout more than needed.
func wrap(op, p string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %s %s: %w: %w", driverName, op, p, driver.ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %s %s: %w", driverName, op, p, err)
}

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.full(p))
	if err != nil {
		if isNotExist(err) || errors.Is(err, syscall.EISDIR) {
			return nil, notFound(p)
		}
		return nil, wrap("get", p, err)
	}
	return b, nil
}

// PutContent implements driver.Driver. The content is written to a file in
// tmp, synced and renamed into place, so readers see the old or the new
// content and a crash never leaves a partial file at p.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := d.createTemp("put-")
	if err != nil {
		return wrap("put", p, err)
	}
	tmpName := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return wrap("put", p, err)
	}
	if err := f.Sync(); err != nil {
		return wrap("put", p, err)
	}
	if err := f.Close(); err != nil {
		return wrap("put", p, err)
	}
	full := d.full(p)
	err = d.withParent(full, func() error { return os.Rename(tmpName, full) })
	if err != nil {
		return wrap("put", p, err)
	}
	committed = true
	if err := syncDir(filepath.Dir(full)); err != nil {
		return wrap("put", p, err)
	}
	return nil
}

// createTemp creates a new, empty file in tmp. Unlike os.CreateTemp it uses
// the usual 0666 mode (minus umask), so staged files end up with the same
// permissions as files made by Writer.
func (d *Driver) createTemp(prefix string) (*os.File, error) {
	for {
		var b [12]byte
		_, _ = rand.Read(b[:])
		name := filepath.Join(d.tmp, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if isNotExist(err) {
			// Someone removed tmp (an operator cleaning up);
			// recreate it rather than failing forever.
			if err := os.MkdirAll(d.tmp, 0o777); err != nil {
				return nil, err
			}
			continue
		}
		return f, err
	}
}

// withParent runs create after making sure the parent directory of full
// exists. A concurrent Delete may prune that directory between MkdirAll and
// create; create then fails with ENOENT and is retried.
func (d *Driver) withParent(full string, create func() error) error {
	dir := filepath.Dir(full)
	var err error
	for range mkdirRetries {
		top := d.firstMissing(dir)
		if err = os.MkdirAll(dir, 0o777); err != nil {
			// ENOENT: an ancestor vanished half way. EEXIST: a
			// directory was created by someone else and pruned
			// again before MkdirAll could check it. A file in the
			// way is ENOTDIR instead, and is not retried.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		if err = create(); err == nil {
			return syncNewDirs(top, dir)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// firstMissing returns the topmost ancestor of dir (or dir itself) below
// the data root that does not exist, or "" when dir exists.
func (d *Driver) firstMissing(dir string) string {
	top := ""
	for p := dir; p != d.data && strings.HasPrefix(p, d.data+string(filepath.Separator)); p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
	}
	return top
}

// syncNewDirs makes the directories from top down to dir, which this call
// created, durable: each one's entry lives in its parent. (The caller
// syncs dir itself for the entry it made there.)
func syncNewDirs(top, dir string) error {
	if top == "" {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
		if p == top || filepath.Dir(p) == p {
			return nil
		}
	}
}

// syncDir makes a directory's entries (a new or renamed file) durable.
// Windows cannot open directories for syncing and does not need it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			// Pruned by a concurrent Delete of the file we
			// just wrote: nothing left to make durable.
			return nil
		}
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// prune removes the now-empty directories from dir up to, but excluding,
// the data root. It stops at the first directory that is not empty or
// already gone; errors are expected under concurrency (another writer just
// created something there) and are ignored. Rmdir, unlike os.Remove, never
// unlinks a file that replaced the directory in the meantime.
func (d *Driver) prune(dir string) {
	for dir != d.data && strings.HasPrefix(dir, d.data+string(filepath.Separator)) {
		if err := syscall.Rmdir(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Reader implements driver.Driver. It returns the *os.File itself.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	f, _, err := d.open(ctx, p, offset)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open implements driver.Opener. The *os.File it returns lets net/http use
// sendfile.
func (d *Driver) Open(ctx context.Context, p string) (io.ReadSeekCloser, int64, error) {
	f, size, err := d.open(ctx, p, 0)
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

func (d *Driver) open(ctx context.Context, p string, offset int64) (*os.File, int64, error) {
	if !driver.ValidPath(p) {
		return nil, 0, invalid(p)
	}
	if offset < 0 {
		return nil, 0, fmt.Errorf("%s: read %s at %d: %w", driverName, p, offset, driver.ErrInvalidOffset)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(d.full(p))
	if err != nil {
		if isNotExist(err) {
			return nil, 0, notFound(p)
		}
		return nil, 0, wrap("open", p, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, wrap("open", p, err)
	}
	if info.IsDir() {
		_ = f.Close()
		return nil, 0, notFound(p)
	}
	if offset > info.Size() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%s: read %s at %d beyond size %d: %w",
			driverName, p, offset, info.Size(), driver.ErrInvalidOffset)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, 0, wrap("open", p, err)
		}
	}
	return f, info.Size(), nil
}

// Writer implements driver.Driver. The file is written in place; a writer
// closed without Commit leaves its content on disk for a later append.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full := d.full(p)
	var f *os.File
	var size int64
	if append {
		var err error
		f, err = os.OpenFile(full, os.O_WRONLY, 0)
		if err != nil {
			if isNotExist(err) || errors.Is(err, syscall.EISDIR) {
				return nil, notFound(p)
			}
			return nil, wrap("append", p, err)
		}
		size, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			_ = f.Close()
			return nil, wrap("append", p, err)
		}
	} else {
		err := d.withParent(full, func() error {
			var err error
			f, err = os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
			return err
		})
		if err != nil {
			return nil, wrap("create", p, err)
		}
	}
	return newFileWriter(d, p, f, size), nil
}

// Stat implements driver.Driver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	info, err := os.Stat(d.full(p))
	if err != nil {
		if isNotExist(err) {
			return nil, notFound(p)
		}
		return nil, wrap("stat", p, err)
	}
	return fileInfo(p, info), nil
}

func fileInfo(p string, info fs.FileInfo) driver.FileInfo {
	fi := driver.FileInfoFields{P: p, MT: info.ModTime(), Dir: info.IsDir()}
	if !fi.Dir {
		fi.Sz = info.Size()
	}
	return fi
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidDirPath(p) {
		return nil, invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(d.full(p))
	if err != nil {
		if isNotExist(err) {
			return nil, notFound(p)
		}
		return nil, wrap("list", p, err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, join(p, e.Name()))
	}
	return out, nil
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// Move implements driver.Driver with a single rename, which is atomic for
// readers of dst.
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
	fullSrc, fullDst := d.full(src), d.full(dst)
	// Only files move; a directory at src is "no file there". The check
	// also gives a precise ErrNotFound before any directory is created.
	info, err := os.Stat(fullSrc)
	if err != nil {
		if isNotExist(err) {
			return notFound(src)
		}
		return wrap("move", src, err)
	}
	if info.IsDir() {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	err = d.withParent(fullDst, func() error {
		err := os.Rename(fullSrc, fullDst)
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			// ENOENT is ambiguous: the destination's parent
			// was pruned (retry) or src vanished (report it).
			if _, serr := os.Lstat(fullSrc); isNotExist(serr) {
				return errSrcGone
			}
		}
		return err
	})
	if errors.Is(err, errSrcGone) {
		return notFound(src)
	}
	if err != nil {
		return wrap("move", src, err)
	}
	if err := syncDir(filepath.Dir(fullDst)); err != nil {
		return wrap("move", dst, err)
	}
	d.prune(filepath.Dir(fullSrc))
	return nil
}

// errSrcGone stops withParent's retries when the source of a move vanished.
var errSrcGone = errors.New("source vanished")

// Delete implements driver.Driver. A directory is first renamed into tmp,
// so it disappears from the path space at once, and then removed there.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	full := d.full(p)
	info, err := os.Lstat(full)
	if err != nil {
		if isNotExist(err) {
			return notFound(p)
		}
		return wrap("delete", p, err)
	}
	if info.IsDir() {
		err = d.deleteTree(full)
	} else {
		err = os.Remove(full)
	}
	if err != nil {
		if isNotExist(err) {
			return notFound(p) // a concurrent Delete won
		}
		return wrap("delete", p, err)
	}
	d.prune(filepath.Dir(full))
	return nil
}

func (d *Driver) deleteTree(full string) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	parked := filepath.Join(d.tmp, "del-"+hex.EncodeToString(b[:]))
	if err := os.Rename(full, parked); err != nil {
		if isNotExist(err) {
			return err
		}
		// tmp unusable (removed, another device): delete in place.
		return os.RemoveAll(full)
	}
	return os.RemoveAll(parked)
}

// Walk implements driver.Driver. Entries that vanish while the walk runs
// (a concurrent Delete) are skipped silently.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if !driver.ValidDirPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	full := d.full(p)
	info, err := os.Stat(full)
	if err != nil {
		if isNotExist(err) {
			return notFound(p)
		}
		return wrap("walk", p, err)
	}
	if !info.IsDir() {
		return notFound(p)
	}
	return d.walk(ctx, p, full, fn)
}

// walk visits the children of dir. As in filepath.WalkDir, ErrSkipDir
// returned for a directory skips that directory, and returned for a file
// skips the remaining entries of the directory holding it.
func (d *Driver) walk(ctx context.Context, dir, full string, fn driver.WalkFunc) error {
	entries, err := os.ReadDir(full) // sorted by name
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return wrap("walk", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return wrap("walk", dir, err)
		}
		child := join(dir, e.Name())
		if err := fn(fileInfo(child, info)); err != nil {
			if errors.Is(err, driver.ErrSkipDir) {
				if info.IsDir() {
					continue
				}
				return nil
			}
			return err
		}
		if info.IsDir() {
			if err := d.walk(ctx, child, filepath.Join(full, e.Name()), fn); err != nil {
				return err
			}
		}
	}
	return nil
}
