// Package driver defines the small interface that berth's storage sits on.
//
// A driver stores opaque byte sequences under slash-separated paths, much as a
// filesystem or an object store does. Drivers know nothing about blobs,
// digests or repositories: the storage package builds those on top. Drivers
// living outside this tree implement Driver and run the shared suite in
// storage/driver/drivertest with one call.
//
// # Paths
//
// A valid path is absolute, starts with "/", and is made of one or more
// components separated by single slashes. Each component matches
// [a-zA-Z0-9._-]+ and is neither "." nor "..". The root "/" is valid only for
// List and Walk. A path with a trailing slash, an empty component or any other
// character is invalid and every method returns an *InvalidPathError for it.
// Drivers never interpret a path outside the space they were configured with.
//
// # Errors
//
// A missing path is reported as a *PathNotFoundError, which matches
// ErrNotFound under errors.Is. Invalid paths match ErrInvalidPath. Offsets
// outside a file match ErrInvalidOffset. Any other error is a failure of the
// backend and is wrapped with context.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Error categories. Use errors.Is to test for them.
var (
	// ErrNotFound: the path does not exist.
	ErrNotFound = errors.New("path not found")
	// ErrInvalidPath: the path is not valid (see the package documentation).
	ErrInvalidPath = errors.New("invalid path")
	// ErrInvalidOffset: an offset is negative or beyond the end of a file.
	ErrInvalidOffset = errors.New("invalid offset")
	// ErrUnsupported: the driver does not offer an optional capability.
	ErrUnsupported = errors.New("unsupported by driver")
	// ErrClosed: a FileWriter was used after Close, Commit or Cancel.
	ErrClosed = errors.New("writer already closed")
	// ErrNoSpace: the backend is out of space (a full disk, a quota). The
	// write failed; what it wrote may remain until the caller removes it.
	ErrNoSpace = errors.New("no space left in storage")
)

// Driver is the storage backend contract. Every method is safe for concurrent
// use. Content written through a FileWriter becomes visible to readers no
// later than Commit returns.
type Driver interface {
	// Name identifies the driver, e.g. "filesystem".
	Name() string

	// GetContent returns the whole content of the file at path. It is meant
	// for small files; large content should use Reader.
	GetContent(ctx context.Context, path string) ([]byte, error)

	// PutContent stores content at path, replacing any previous file
	// atomically: a reader sees the old content or the new, never a mix.
	PutContent(ctx context.Context, path string, content []byte) error

	// Reader opens the file at path for reading starting at offset. An
	// offset equal to the file size yields an empty reader; a larger or
	// negative one is ErrInvalidOffset. The caller closes the reader.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)

	// Writer returns a FileWriter for path. With append false any previous
	// content at path is discarded; with append true, writes continue at the
	// end of the content already written (including content written by an
	// earlier writer that was closed without Commit, such as one whose
	// process died), and ErrNotFound is returned if there is none.
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)

	// Stat describes the file or directory at path.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// List returns the full paths of the direct children of the directory at
	// path, in no particular order. The root "/" of an empty driver lists
	// nothing without error; any other missing directory is ErrNotFound.
	List(ctx context.Context, path string) ([]string, error)

	// Move renames the file at src to dst, replacing any file at dst and
	// creating parent directories as needed. The move is atomic where the
	// backend allows it: a reader of dst sees the old file or the new one.
	Move(ctx context.Context, src, dst string) error

	// Delete removes the file or the whole directory tree at path. Siblings
	// that merely share a name prefix (e.g. "/a" and "/ab") are untouched.
	Delete(ctx context.Context, path string) error

	// Walk calls fn for every file and directory below path, depth first,
	// in lexical order. If fn returns ErrSkipDir for a directory its
	// children are skipped; any other error stops the walk and is returned.
	Walk(ctx context.Context, path string, fn WalkFunc) error
}

// FileWriter writes one file. Its lifecycle: Write any number of times, then
// exactly one of Commit (makes the content durable and visible), Cancel
// (discards it) or Close (keeps what was written so that a later
// Writer(path, true) can resume, without promising it is visible to
// readers). Commit and Cancel also close the writer; Close after them is a
// no-op. Any Write after the writer is closed returns ErrClosed.
type FileWriter interface {
	io.WriteCloser
	// Size is the number of bytes in the file so far, including bytes
	// written before the writer was opened for append.
	Size() int64
	// Cancel discards everything written to the file, including what
	// earlier writers appended.
	Cancel(ctx context.Context) error
	// Commit flushes the content and makes it visible to readers.
	Commit(ctx context.Context) error
}

// FileInfo describes a stored file or directory.
type FileInfo interface {
	Path() string
	// Size is the length of a file in bytes; zero for directories.
	Size() int64
	ModTime() time.Time
	IsDir() bool
}

// WalkFunc is called by Walk for each entry.
type WalkFunc func(info FileInfo) error

// ErrSkipDir tells Walk not to descend into the directory just visited.
var ErrSkipDir = errors.New("skip this directory")

// VerifiedWriter is an optional capability of drivers whose writes become
// visible only when they are committed (object stores): WriteVerified
// writes r to path and publishes it only if verify, called once r has been
// read to its end, returns nil. When verify (or r, or the driver) fails,
// nothing at path changes: whatever was there stays, and what was written
// is discarded. A store writes a blob whose digest it knows straight to
// its final path this way, with no staging copy to move or read back.
type VerifiedWriter interface {
	WriteVerified(ctx context.Context, path string, r io.Reader, verify func() error) (int64, error)
}

// Redirector is an optional capability: a driver that can let clients fetch
// content directly (a presigned object-store URL) returns the URL here. An
// empty URL with a nil error means "serve it yourself".
type Redirector interface {
	RedirectURL(r *http.Request, path string) (string, error)
}

// Opener is an optional capability for drivers backed by seekable local
// files: Open returns a ReadSeekCloser (ideally an *os.File, so the HTTP
// server can hand the copy to the kernel) and the file size.
type Opener interface {
	Open(ctx context.Context, path string) (io.ReadSeekCloser, int64, error)
}

// FileInfoFields is a ready-made FileInfo.
type FileInfoFields struct {
	P   string
	Sz  int64
	MT  time.Time
	Dir bool
}

// Path implements FileInfo.
func (f FileInfoFields) Path() string { return f.P }

// Size implements FileInfo.
func (f FileInfoFields) Size() int64 { return f.Sz }

// ModTime implements FileInfo.
func (f FileInfoFields) ModTime() time.Time { return f.MT }

// IsDir implements FileInfo.
func (f FileInfoFields) IsDir() bool { return f.Dir }

// PathNotFoundError reports a missing path. It matches ErrNotFound.
type PathNotFoundError struct {
	Driver string
	Path   string
}

func (e *PathNotFoundError) Error() string {
	return fmt.Sprintf("%s: path not found: %s", e.Driver, e.Path)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *PathNotFoundError) Is(target error) bool { return target == ErrNotFound }

// InvalidPathError reports an invalid path. It matches ErrInvalidPath.
type InvalidPathError struct {
	Driver string
	Path   string
}

func (e *InvalidPathError) Error() string {
	return fmt.Sprintf("%s: invalid path: %q", e.Driver, e.Path)
}

// Is makes errors.Is(err, ErrInvalidPath) true.
func (e *InvalidPathError) Is(target error) bool { return target == ErrInvalidPath }

var componentRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// ValidPath reports whether p is a valid file path as defined in the package
// documentation. The root "/" is not a valid file path; see ValidDirPath.
func ValidPath(p string) bool {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "." || c == ".." || !componentRE.MatchString(c) {
			return false
		}
	}
	return true
}

// ValidDirPath is ValidPath that also accepts the root "/".
func ValidDirPath(p string) bool { return p == "/" || ValidPath(p) }
