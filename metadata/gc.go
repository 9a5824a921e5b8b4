package metadata

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Collector is the part of Store that garbage collection (package gc)
// uses. The store knows nothing of reachability or retention: it hands a
// repository's state to a Planner inside a transaction that excludes every
// other write to that repository, and applies the plan in the same
// transaction, so a plan can never be applied to a state it did not see.
//
// Removing content leaves a tombstone per removed blob link and manifest
// (repository, digest, time). PutManifest refuses, with ErrCollected, a
// manifest that references tombstoned content still absent from the
// repository: a client that checked a blob, garbage collection removing
// it, then the client pushing the manifest, fails cleanly instead of
// storing an image with a hole. Pushing the content again clears its
// tombstone.
//
// A blob's row (what AnyBlobSize reads) exists while some repository links
// the blob. Blob bytes are deleted only through DeleteUnlinkedBlob, which
// holds the blob locked against LinkBlob while it checks that nothing links
// the blob and deletes the bytes; LinkBlob of a blob nothing links checks,
// under the same lock, that the bytes are there. So a link to deleted
// bytes cannot be committed, however the two interleave.
type Collector interface {
	// CollectRepository loads the state of repo, calls plan with it and,
	// when apply is true, removes what the plan returns, all in one
	// transaction during which no other write changes the repository
	// (DeleteTag aside, which only ever makes content less reachable).
	// It returns the plan. With apply false it only reads, from one
	// consistent snapshot, and blocks no writer.
	//
	// Removing a manifest removes its tags (and its references); removing
	// a link removes the blob's row once no repository links it. Removed
	// manifests and links are tombstoned. A repository left empty is
	// deleted, as DeleteManifest would. An unknown repository is
	// ErrRepositoryNotFound, and plan is not called.
	CollectRepository(ctx context.Context, repo string, plan Planner, apply bool) (*Collection, error)

	// DeleteUnlinkedBlob locks blob d against LinkBlob and PutBlob and, if
	// no repository links it, calls remove (which deletes the bytes) and
	// commits; it reports whether it did. An error from remove aborts and
	// is returned. While remove runs, every link of d waits.
	DeleteUnlinkedBlob(ctx context.Context, d digest.Digest, remove func(context.Context) error) (bool, error)

	// PurgeTombstones forgets the tombstones written before before and
	// returns how many it removed.
	PurgeTombstones(ctx context.Context, before time.Time) (int, error)

	// LockGC takes the garbage collection lock of the store's database:
	// while it is held, LockGC through any store on the same database (in
	// this process or another) fails with ErrGCLocked. release gives it
	// back; the lock is also released if the process dies. The lock only
	// keeps collections from running twice at once, which would be wasted
	// work: every step of a collection is safe against concurrent ones.
	LockGC(ctx context.Context) (release func(), err error)

	// LastGC returns the time SetLastGC recorded, or the zero time.
	LastGC(ctx context.Context) (time.Time, error)
	// SetLastGC records when the last complete collection finished, for
	// schedulers on every replica.
	SetLastGC(ctx context.Context, t time.Time) error
}

// Planner decides what to remove from a repository, given its state. It
// runs inside the store's transaction: it must be quick and must not call
// the store.
type Planner func(*RepositoryState) (*Collection, error)

// RepositoryState is what a Planner sees of one repository.
type RepositoryState struct {
	Name string
	// Tags, ordered by name.
	Tags []TagState
	// Manifests without their content, ordered by digest.
	Manifests []ManifestState
	// Blobs are the repository's blob links, ordered by digest.
	Blobs []BlobLink
}

// TagState is a tag and the manifest it points at.
type TagState struct {
	Name     string
	Manifest digest.Digest
	// UpdatedAt is when the tag was last pushed (PutManifest naming it).
	UpdatedAt time.Time
}

// ManifestState is a stored manifest without its content.
type ManifestState struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Subject   digest.Digest
	// Blobs and Manifests are the manifest's references, as in Manifest.
	Blobs     []digest.Digest
	Manifests []digest.Digest
	CreatedAt time.Time
}

// BlobLink is a blob the repository may serve.
type BlobLink struct {
	Digest digest.Digest
	Size   int64
	// LinkedAt is when the link was last made (PutBlob, LinkBlob), or,
	// for links older than garbage collection, when the schema gained the
	// column.
	LinkedAt time.Time
}

// Collection is what to remove from one repository.
type Collection struct {
	// Tags to remove (their manifests stay unless listed).
	Tags []string
	// Manifests to remove, with their remaining tags.
	Manifests []digest.Digest
	// Blobs are the blob links to remove.
	Blobs []digest.Digest
}

// Empty reports whether c removes nothing.
func (c *Collection) Empty() bool {
	return c == nil || len(c.Tags)+len(c.Manifests)+len(c.Blobs) == 0
}
