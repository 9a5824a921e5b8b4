package storage

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
)

// BlobInfo describes a stored blob, for garbage collection.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
	// ModTime is when the bytes were written: an upload's last write,
	// which moving it into place keeps.
	ModTime time.Time
}

// WalkBlobs calls fn for every blob stored, in lexical order of the layout
// (algorithm, then digest). Files in the blob area that are not a blob's
// data (anything not at /blobs/<alg>/<xx>/<hex>/data with a valid digest)
// are skipped. An error from fn stops the walk and is returned.
//
// Blobs written or deleted during the walk may or may not be seen; callers
// decide what to delete with metadata's locks, not from the walk.
func (s *Store) WalkBlobs(ctx context.Context, fn func(BlobInfo) error) error {
	err := s.d.Walk(ctx, "/blobs", func(fi driver.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		d, ok := blobDigest(fi.Path())
		if !ok {
			return nil
		}
		return fn(BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if errors.Is(err, driver.ErrNotFound) {
		return nil // nothing stored yet
	}
	return err
}

// blobDigest is the inverse of blobPath: the digest whose data lives at p,
// if p is such a path.
func blobDigest(p string) (digest.Digest, bool) {
	parts := strings.Split(p, "/")
	// "", "blobs", alg, xx, hex, "data"
	if len(parts) != 6 || parts[0] != "" || parts[1] != "blobs" || parts[5] != "data" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[2]), parts[4])
	if ValidateDigest(d) != nil || blobPath(d) != p {
		return "", false
	}
	return d, true
}
