package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
)

// Verify reads blob d through its digest's hash and returns the digest its
// content has and its length.
func (s *Store) Verify(ctx context.Context, d digest.Digest) (digest.Digest, int64, error) {
	if err := ValidateDigest(d); err != nil {
		return "", 0, err
	}
	rc, err := s.d.Reader(ctx, blobPath(d), 0)
	if errors.Is(err, driver.ErrNotFound) {
		return "", 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := d.Algorithm().Hash()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(h, rc, *buf)
	if err != nil {
		return "", n, fmt.Errorf("read blob %s: %w", d, err)
	}
	return digest.NewDigest(d.Algorithm(), h), n, nil
}

// QuarantineBlob moves the bytes of blob d out of the blob tree, to a path
// under /quarantine that it returns, where an operator can inspect them.
// The blob is no longer stored.
func (s *Store) QuarantineBlob(ctx context.Context, d digest.Digest) (string, error) {
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	dst := fmt.Sprintf("/quarantine/blobs/%s/%s-%d", d.Algorithm(), d.Encoded(), time.Now().UnixNano())
	if err := s.d.Move(ctx, blobPath(d), dst); err != nil {
		return "", fmt.Errorf("quarantine blob %s: %w", d, err)
	}
	return dst, nil
}

// QuarantineContent keeps content (a manifest removed from metadata) under
// /quarantine for an operator, and returns its path. name is a repository
// name and d the digest the content was stored under.
func (s *Store) QuarantineContent(ctx context.Context, name string, d digest.Digest, content []byte) (string, error) {
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	dst := fmt.Sprintf("/quarantine/manifests/%s/%s-%s-%d", name, d.Algorithm(), d.Encoded(), time.Now().UnixNano())
	if err := s.d.PutContent(ctx, dst, content); err != nil {
		return "", fmt.Errorf("quarantine manifest %s@%s: %w", name, d, err)
	}
	return dst, nil
}
