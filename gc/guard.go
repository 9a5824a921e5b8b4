package gc

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// Guard returns the reading and writing role of meta for the registry and
// the connectors, with every blob link checked against storage: LinkBlob
// of a blob that no repository links verifies, under the lock
// DeleteUnlinkedBlob takes, that its bytes are stored, and fails with
// metadata.ErrCollected if a collection deleted them. It is the only
// metadata.Writer there is: without the check, an upload that found a
// blob's bytes already stored could link them just after a collection
// deleted them.
//
// The check costs one storage Stat per link of a blob new to the
// registry; links of blobs some repository already has cost nothing more.
func Guard(meta metadata.Store, blobs *storage.Store) metadata.ReadWriter {
	return &guarded{Reader: meta, store: meta, blobs: blobs}
}

type guarded struct {
	metadata.Reader
	store metadata.Store
	blobs *storage.Store
}

func (g *guarded) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return g.store.LinkBlob(ctx, repo, d, size, g.present(d))
}

func (g *guarded) PutManifest(ctx context.Context, repo string, m *metadata.Manifest, tags ...string) error {
	return g.store.PutManifest(ctx, repo, m, tags...)
}

func (g *guarded) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return g.store.DeleteManifest(ctx, repo, d)
}

func (g *guarded) DeleteTag(ctx context.Context, repo, tag string) error {
	return g.store.DeleteTag(ctx, repo, tag)
}

func (g *guarded) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	return g.store.DeleteBlob(ctx, repo, d)
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
