package registry

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage"
)

// OpenBlob returns the bytes of blob d as the repository name serves them
// to a pull: from storage when they are stored, otherwise as they arrive
// from an upstream (a cache fetches and keeps them, as for any pull). It is
// for readers inside berth that show content (the web UI reads an image's
// config with it); the caller has decided that its user may pull name.
// Errors are those of Repository.Blob, and storage.ErrBlobUnknown when
// metadata lists a blob whose bytes are gone.
func (reg *Registry) OpenBlob(ctx context.Context, name string, d digest.Digest) (io.ReadCloser, int64, error) {
	if !ValidName(name) {
		return nil, 0, &Error{Code: ErrNameInvalid, Message: fmt.Sprintf("invalid repository name %q", name)}
	}
	if err := storage.ValidateDigest(d); err != nil {
		return nil, 0, &Error{Code: ErrDigestInvalid, Message: fmt.Sprintf("invalid digest %q: %v", d, err)}
	}
	repo, err := reg.resolver.Resolve(name)
	if err != nil {
		return nil, 0, err
	}
	b, err := repo.Blob(ctx, d, false, false)
	if err != nil {
		return nil, 0, metaErr(err, ErrBlobUnknown, name)
	}
	if b.Stream != nil {
		return b.Stream, b.Size, nil
	}
	f, size, err := reg.blobs.Open(ctx, d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		reg.log.Error("blob missing from storage", "repo", name, "digest", d)
	}
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}
