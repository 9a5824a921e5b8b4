package gc

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// Guard returns meta with every blob link checked against storage: PutBlob
// and LinkBlob of a blob that no repository links verify, under the lock
// DeleteUnlinkedBlob takes, that its bytes are stored, and fail with
// metadata.ErrCollected if a collection deleted them. Give the registry
// (and anything else that links blobs, such as connectors) the guarded
// store: without it, an upload that found a blob's bytes already stored
// could link them just after a collection deleted them.
//
// The check costs one storage Stat per link of a blob new to the
// registry; links of blobs some repository already has cost nothing more.
func Guard(meta metadata.Store, blobs *storage.Store) metadata.Store {
	return &guarded{Store: meta, blobs: blobs}
}

type guarded struct {
	metadata.Store
	blobs *storage.Store
}

func (g *guarded) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return g.Store.LinkBlob(ctx, repo, d, size, g.present(d))
}

func (g *guarded) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, present func(context.Context) error) error {
	if present == nil {
		present = g.present(d)
	}
	return g.Store.LinkBlob(ctx, repo, d, size, present)
}

// present returns the check that the bytes of d are stored.
func (g *guarded) present(d digest.Digest) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := g.blobs.Stat(ctx, d)
		if errors.Is(err, storage.ErrBlobUnknown) {
			return fmt.Errorf("%w: the bytes of blob %s were deleted by garbage collection; push it again", metadata.ErrCollected, d)
		}
		return err
	}
}
