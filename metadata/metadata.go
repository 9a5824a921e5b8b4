// Package metadata keeps what berth knows about repositories: which blobs
// each repository may serve, its manifests (with their content), tags, the
// references between manifests and blobs, and subjects for the referrers
// API. Blob bytes live in storage; everything a listing or a lookup needs
// lives here, so the catalog, tag lists, referrers and search never walk
// storage.
//
// Implementations (SQLite in metadata/sqlite, PostgreSQL in
// metadata/postgres) run the shared suite in metadata/metadatatest.
package metadata

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error categories. Implementations wrap them; test with errors.Is.
var (
	// ErrNotFound: the blob, manifest or tag is not in the repository.
	ErrNotFound = errors.New("not found")
	// ErrRepositoryNotFound: nothing was ever pushed to the repository, or
	// everything in it was deleted.
	ErrRepositoryNotFound = errors.New("repository not found")
	// ErrCollected: something the call needs was removed by garbage
	// collection while the caller was working with it: a manifest refers
	// to a blob or child manifest that garbage collection removed from the
	// repository since the client checked it, or LinkBlob found that the
	// bytes the caller relied on were deleted. Pushing the missing content
	// again succeeds.
	ErrCollected = errors.New("removed by garbage collection")
	// ErrGCLocked: another garbage collection (in this process or another
	// replica) holds the lock.
	ErrGCLocked = errors.New("garbage collection already running")
	// ErrNoSpace: the database is out of space (a full disk, a quota); the
	// write was rolled back.
	ErrNoSpace = errors.New("no space left for the metadata database")
)

// Descriptor is an entry of a referrers index: the OCI descriptor.
type Descriptor = ocispec.Descriptor

// ReferrersQuery selects a page of referrers.
type ReferrersQuery struct {
	// ArtifactType, when not empty, keeps only referrers of that type.
	ArtifactType string
	// After starts the page after this digest ("" from the first).
	After digest.Digest
	// Limit bounds the descriptors of the page (at least 1).
	Limit int
	// MaxBytes bounds the page's size: the page ends before the
	// descriptor that would take the sum of DescriptorSize past it. The
	// first descriptor is always returned, so that a client paging
	// through makes progress; its size is bounded by the manifest size
	// limit. 0 means no bound.
	MaxBytes int
}

// DescriptorSize estimates the bytes d takes in a referrers response: its
// annotations and strings, and the JSON around them.
func DescriptorSize(d *Descriptor) int {
	n := 128 + len(d.MediaType) + len(d.Digest) + len(d.ArtifactType)
	for k, v := range d.Annotations {
		n += len(k) + len(v) + 6
	}
	return n
}

// RawDescriptorSize is DescriptorSize from a stored row, with the
// annotations still in their JSON form: an upper bound of the decoded
// descriptor's DescriptorSize, so a store can bound a page before it
// decodes a row.
func RawDescriptorSize(mediaType, dgst, artifactType string, annotationsJSON int) int {
	return 128 + len(mediaType) + len(dgst) + len(artifactType) + annotationsJSON
}

// Fits reports whether a referrer of size bytes (DescriptorSize) may join
// a page that holds n descriptors of used bytes. Stores use it while they
// read rows, so that a page never holds more than its bounds (and one
// descriptor) in memory.
func (q ReferrersQuery) Fits(n, used, size int) bool {
	if n >= max(q.Limit, 1) {
		return false
	}
	return n == 0 || q.MaxBytes <= 0 || used+size <= q.MaxBytes
}

// Manifest is a stored manifest of one repository.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	// ArtifactType is the manifest's artifactType or, failing that, its
	// config media type: what the referrers API reports.
	ArtifactType string
	Size         int64
	Content      []byte
	// Subject is the digest of the manifest this one refers to, or "".
	Subject     digest.Digest
	Annotations map[string]string
	// Blobs are the blobs the manifest references (config and layers), in
	// the manifest's order.
	Blobs []digest.Digest
	// Manifests are the child manifests of an index, in the index's order.
	Manifests []digest.Digest
	// CreatedAt is when the manifest was first pushed to the repository.
	// PutManifest keeps the stored value when the manifest is already in
	// the repository, and otherwise uses this one, or the current time
	// when it is zero (so a migration can carry times over).
	CreatedAt time.Time
}

// Reader is what reading content needs: the role of the store that every
// reader (the registry, the connectors, listings) is given.
type Reader interface {
	// BlobSize returns the size of blob d if repo may serve it, or
	// ErrNotFound.
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// AnyBlobSize returns the size of blob d if any repository holds it, or
	// ErrNotFound.
	AnyBlobSize(ctx context.Context, d digest.Digest) (int64, error)
	// GetManifest returns the manifest of digest d in repo, or ErrNotFound.
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error)
	// ResolveTag returns the manifest that tag points at in repo, or
	// ErrNotFound.
	ResolveTag(ctx context.Context, repo, tag string) (*Manifest, error)
	// Tags lists up to n tags of repo that sort after last (all of them
	// when n < 0), in lexical order. An existing repository without tags
	// returns an empty list; an unknown one ErrRepositoryNotFound.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	// Referrers lists one page of the manifests in repo whose subject is
	// d, ordered by digest (see ReferrersQuery for the filter and the
	// page's bounds). more reports that referrers follow the page. The
	// subject need not be stored. An unknown repository returns
	// ErrRepositoryNotFound.
	Referrers(ctx context.Context, repo string, d digest.Digest, q ReferrersQuery) (page []Descriptor, more bool, err error)
	// IndexesOf lists up to n (at least 1) digests of the manifests in
	// repo that list d as a child (indexes and manifest lists), each
	// once, in no particular order. An unknown repository or manifest
	// lists nothing.
	IndexesOf(ctx context.Context, repo string, d digest.Digest, n int) ([]digest.Digest, error)
	// BlobRepositories calls yield with the name of each repository that
	// may serve blob d, in no particular order, until yield returns
	// false. It reads the names as it goes (an index from blob to
	// repositories), so stopping early costs only what was read.
	BlobRepositories(ctx context.Context, d digest.Digest, yield func(repo string) bool) error
	// Repositories lists up to n repository names that sort after last
	// (all of them when n < 0), in lexical order.
	Repositories(ctx context.Context, last string, n int) ([]string, error)
	// SearchRepositories lists up to n repository names containing query
	// (case-insensitively), in lexical order; all of them when n < 0. An
	// empty query matches every repository, and '%', '_' and '*' in it
	// are plain characters.
	SearchRepositories(ctx context.Context, query string, n int) ([]string, error)
}

// Writer is what changing content needs: the role of the store that every
// writer (the registry, the connectors' caches) is given. Its LinkBlob has
// no presence check to pass or forget: the only implementation is the one
// garbage collection provides (gc.Guard), which checks, under the
// collector's lock, that the bytes of a blob no repository links are still
// stored. A Store itself is not a Writer, so a writer cannot be handed one
// by mistake.
type Writer interface {
	// LinkBlob records that repo may serve blob d, whose bytes are in
	// storage (see Store.LinkBlob).
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	PutManifest(ctx context.Context, repo string, m *Manifest, tags ...string) error
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	DeleteTag(ctx context.Context, repo, tag string) error
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error
}

// ReadWriter is Reader and Writer.
type ReadWriter interface {
	Reader
	Writer
}

// Store is the metadata store. All methods are safe for concurrent use, and
// each is atomic: a failure leaves nothing half-written.
//
// A repository exists while it holds at least one blob or manifest (a tag
// always points at a manifest). Deleting the last of them deletes the
// repository: it leaves Repositories and SearchRepositories, and Tags and
// Referrers return ErrRepositoryNotFound, as if nothing had been pushed.
// Lookups of a blob, manifest or tag in an unknown repository return
// ErrNotFound.
//
// Names are ordered byte-wise, as Go compares strings ("a" < "a-b" < "a/b"
// < "ab"), whatever the locale of a database server. Listings return an
// empty, non-nil slice when nothing matches, and n == 0 asks for an empty
// page.
//
// The suite in metadata/metadatatest checks all of this.
type Store interface {
	Reader

	// PutBlob records that repo may serve blob d of the given size,
	// creating the repository if needed. Repeating it is harmless, and
	// renews the link's time (see BlobLink.LinkedAt). It is LinkBlob
	// without a presence check.
	PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// LinkBlob is PutBlob for a caller that relies on the blob's bytes
	// being in storage without having written them itself (an upload that
	// found them already stored, a mount, a cache fill). When no
	// repository links d yet, present is called inside the transaction,
	// after the blob is locked against DeleteUnlinkedBlob, and an error
	// from it aborts the call unchanged (present should return an error
	// wrapping ErrCollected when the bytes are missing). When some
	// repository links d, its bytes cannot have been collected and present
	// is not called. A nil present makes LinkBlob PutBlob.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, present func(context.Context) error) error
	// DeleteBlob removes blob d from repo (not from other repositories), or
	// returns ErrNotFound.
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error
	// PutManifest stores m in repo (replacing a manifest of the same digest,
	// but keeping its CreatedAt) and points each of tags at it, in one
	// transaction, stamping the tags with the time of the call. It creates
	// the repository if needed. It fails with ErrCollected, storing
	// nothing, if m references a blob or child manifest that garbage
	// collection removed from repo (CollectRepository) and that has not
	// been pushed again since, until the tombstone is purged
	// (PurgeTombstones): the client checked that content before garbage
	// collection removed it.
	PutManifest(ctx context.Context, repo string, m *Manifest, tags ...string) error
	// DeleteManifest removes the manifest d and every tag pointing at it
	// from repo, or returns ErrNotFound.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteTag removes only the tag, or returns ErrNotFound.
	DeleteTag(ctx context.Context, repo, tag string) error

	// Collector holds what garbage collection needs (gc.go).
	Collector

	// Close releases the store's resources.
	Close() error
}
