package metadata

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Browser is what pages for people read beyond Reader: tags with what a
// listing shows of them, and what each repository holds. It is optional
// (found by type assertion on a Reader); both built-in stores implement
// it, and the suite in metadata/metadatatest checks it.
type Browser interface {
	// TagInfos returns what is known of the named tags of repo, in
	// lexical order; tags that do not exist are left out. At most
	// MaxTagInfos names are looked up at once; more is an error.
	TagInfos(ctx context.Context, repo string, tags []string) ([]TagInfo, error)
	// RepositoryUsage lists up to n (at least 1, at most MaxUsagePage)
	// repositories that sort after last, in lexical order, with what each
	// holds. Every row costs a count over that repository's links and
	// manifests: a page is bounded by n, never by the whole registry.
	RepositoryUsage(ctx context.Context, last string, n int) ([]RepositoryUsage, error)
}

// Bounds of Browser calls.
const (
	MaxTagInfos  = 1000
	MaxUsagePage = 1000
)

// TagInfo is a tag and the manifest it points at, without its content.
type TagInfo struct {
	Name      string
	Digest    digest.Digest
	MediaType string
	// ArtifactType is as in Manifest.
	ArtifactType string
	// Size is the manifest's own size.
	Size int64
	// PushedAt is when the tag was last pushed (as TagState.UpdatedAt).
	PushedAt time.Time
	// CreatedAt is when the manifest was first pushed to the repository.
	CreatedAt time.Time
}

// RepositoryUsage is what one repository holds. Blobs shared with other
// repositories count in each of them (their bytes are stored once).
type RepositoryUsage struct {
	Name string
	// Blobs and BlobBytes count the blobs the repository may serve.
	Blobs     int64
	BlobBytes int64
	// Manifests and ManifestBytes count its manifests (kept in metadata).
	Manifests     int64
	ManifestBytes int64
}
