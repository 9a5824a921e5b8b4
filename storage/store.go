// Package storage keeps blobs and upload sessions on top of a driver.
//
// Layout in the driver's namespace (the one place it is written down):
//
//	/blobs/<algorithm>/<first two hex digits>/<hex>/data   verified blob content
//	/uploads/<id>/data                                     bytes received so far
//	/uploads/<id>/info                                     session state (JSON)
//
// Blobs are content-addressed and stored once for all repositories; which
// repository may serve which blob is metadata's business. A blob path is
// only ever written by moving a finished upload after its digest has been
// verified, so a crash can leave a stale upload behind but never exposes a
// partial or corrupt blob.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
)

// Error categories of the storage package.
var (
	// ErrBlobUnknown: no blob with that digest is stored.
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrUploadUnknown: no upload session with that id (for that repository).
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrDigestMismatch: the uploaded bytes do not have the claimed digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSourceBroken: the reader the content came from failed before its
	// end (for example a client that went away mid-upload). What was read
	// before the failure is kept in the upload session.
	ErrSourceBroken = errors.New("content source broken off")
	// ErrUnsupportedDigest: the digest's algorithm is not sha256 or sha512.
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
)

// Store keeps blobs and uploads in a driver.
type Store struct {
	d driver.Driver

	// locks serialises requests on one upload session within this process,
	// so that two PATCHes to the same session cannot interleave.
	mu    sync.Mutex
	locks map[string]*uploadLock
}

type uploadLock struct {
	mu   sync.Mutex
	refs int
	// abort, set while a request writes a body into the session, stops
	// that body (Store.mu guards it).
	abort func()
}

// Aborter is a request body that can be stopped from another goroutine.
// While a body that implements it is being written into an upload session,
// cancelling the session stops it, so that a stalled client does not keep
// the session (and the cancel) waiting.
type Aborter interface {
	Abort()
}

// New returns a Store on top of d.
func New(d driver.Driver) *Store {
	return &Store{d: d, locks: map[string]*uploadLock{}}
}

// Driver returns the underlying driver.
func (s *Store) Driver() driver.Driver { return s.d }

// ValidateDigest checks that d is well formed and uses an algorithm berth
// stores (sha256 or sha512). Digests are always validated before they are
// turned into paths.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return err
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnsupportedDigest, d.Algorithm())
}

func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return "/blobs/" + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex + "/data"
}

// Stat returns the size of the stored blob d, or ErrBlobUnknown.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := ValidateDigest(d); err != nil {
		return 0, err
	}
	fi, err := s.d.Stat(ctx, blobPath(d))
	if errors.Is(err, driver.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open returns a seekable reader of blob d and its size. With a driver that
// offers driver.Opener the reader is the driver's (a local file); otherwise
// it re-opens the driver's Reader at the offset of each seek.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, 0, err
	}
	p := blobPath(d)
	if o, ok := s.d.(driver.Opener); ok {
		rc, size, err := o.Open(ctx, p)
		if errors.Is(err, driver.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
		}
		return rc, size, err
	}
	fi, err := s.d.Stat(ctx, p)
	if errors.Is(err, driver.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return nil, 0, err
	}
	return &seekReader{ctx: ctx, d: s.d, path: p, size: fi.Size()}, fi.Size(), nil
}

// RedirectURL returns a URL the client may fetch blob d from directly, or ""
// when the driver cannot redirect.
func (s *Store) RedirectURL(r *http.Request, d digest.Digest) (string, error) {
	rd, ok := s.d.(driver.Redirector)
	if !ok {
		return "", nil
	}
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	return rd.RedirectURL(r, blobPath(d))
}

// Delete removes the bytes of blob d. Only garbage collection may call it:
// repositories drop blobs in metadata.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := ValidateDigest(d); err != nil {
		return err
	}
	err := s.d.Delete(ctx, blobPath(d))
	if errors.Is(err, driver.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	return err
}

// seekReader adapts a driver's offset reader to io.ReadSeeker.
type seekReader struct {
	ctx  context.Context
	d    driver.Driver
	path string
	size int64
	off  int64
	rc   io.ReadCloser
}

func (r *seekReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc == nil {
		rc, err := r.d.Reader(r.ctx, r.path, r.off)
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	return n, err
}

func (r *seekReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	if abs != r.off && r.rc != nil {
		_ = r.rc.Close()
		r.rc = nil
	}
	r.off = abs
	return abs, nil
}

func (r *seekReader) Close() error {
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
