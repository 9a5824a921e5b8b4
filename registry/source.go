package registry

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// Repository is where the content of one repository name comes from: the
// registry's own store (hosted), a pull-through cache of an upstream, or a
// virtual registry over several of them. The registry routes, authorises
// and answers every request itself and asks the Repository only for
// content, in Go types: a Repository never writes HTTP.
//
// Errors are metadata.ErrNotFound or ErrRepositoryNotFound (the registry
// answers with the route's "unknown" code), an *Error (sent as it is), or
// a failure of berth itself.
type Repository interface {
	// Manifest returns the manifest a tag names or of a digest. The
	// registry has validated ref.
	Manifest(ctx context.Context, ref string) (*Manifest, error)
	// Blob returns blob d for a GET (or, with head, a HEAD). With ranged,
	// the client asked for a range: the blob must be served from storage.
	Blob(ctx context.Context, d digest.Digest, head, ranged bool) (*Blob, error)
	// Tags returns up to n tags after last in lexical order, each once
	// (all of them when n < 0).
	Tags(ctx context.Context, last string, n int) (*TagList, error)
	// Referrers returns a page of the manifests whose subject is d.
	Referrers(ctx context.Context, d digest.Digest, q metadata.ReferrersQuery) (page []metadata.Descriptor, more bool, err error)
	// StoredBlob returns the stored repository that holds blob d and its
	// size, for a cross-repository mount from this one. It never asks an
	// upstream: a mount links only what is here.
	StoredBlob(ctx context.Context, d digest.Digest) (holder string, size int64, err error)
	// Target returns where writes with the given access (push, delete)
	// go, or an *Error refusing them (a cache takes no pushes; a virtual
	// registry without a push target none at all).
	Target(access Access) (*Target, error)
}

// Manifest is a manifest as a Repository serves it.
type Manifest struct {
	*metadata.Manifest
	// Stale reports a cached tag served without the upstream's word on it.
	Stale bool
}

// Blob is a blob as a Repository serves it: either stored, and served by
// the registry from storage (ranges, redirects), or arriving from an
// upstream as Stream.
type Blob struct {
	// Size is the blob's length, or -1 when unknown (a HEAD answered by
	// an upstream that did not say).
	Size int64
	// Stored reports that the bytes are in storage.
	Stored bool
	// Stream, for a blob not stored yet, yields its bytes as they arrive.
	// It fails before its end when the content could not be verified or
	// stored; the registry then aborts the response, so a client never
	// takes a broken blob for a whole one. Nil for a HEAD.
	Stream io.ReadCloser
	// StallTimeout drops a client that takes nothing of Stream for this
	// long (0: no limit), so a stalled client holds no connection.
	StallTimeout time.Duration
}

// TagList is a page of tags.
type TagList struct {
	Tags []string
	// Stale reports that some of the tags could not be confirmed.
	Stale bool
}

// Target is the stored repository that writes to a repository go to.
type Target struct {
	// Name is the stored repository's name (a virtual registry's push
	// target names its member).
	Name string
	// Forget, when set, is called after a delete, so that a cache drops
	// what it remembers of the content.
	Forget func()
}

// Resolver finds the Repository that serves a name, and answers what spans
// repositories: the catalog, search and mirror requests.
type Resolver interface {
	// Resolve returns the repository for name (valid), or an *Error when
	// the name is not served.
	Resolve(name string) (Repository, error)
	// Mirror returns the prefix under which a mirror request for
	// upstream host ns (containerd's ?ns=) is served, or an *Error when
	// berth mirrors no such host. ok is false when berth mirrors nothing
	// at all: the request is then served under its own name.
	Mirror(ns string) (prefix string, ok bool, err error)
	// Catalog lists up to n repository names after last, in lexical
	// order, those visible accepts.
	Catalog(ctx context.Context, last string, n int, visible func(name string) bool) ([]string, error)
	// Search lists up to n repository names containing term (case
	// insensitively), those visible accepts.
	Search(ctx context.Context, term string, n int, visible func(name string) bool) ([]string, error)
}

// HealthReporter is a Resolver that reports the health of its upstreams,
// which the registry serves at HealthPath.
type HealthReporter interface {
	Health() any
}

// Hosted is the Resolver of a registry without connectors: every name is
// a repository of its own store.
type Hosted struct {
	Meta metadata.Reader
}

// Resolve implements Resolver.
func (h Hosted) Resolve(name string) (Repository, error) {
	return HostedRepository(h.Meta, name), nil
}

// Mirror implements Resolver: a hosted registry mirrors nothing.
func (h Hosted) Mirror(string) (string, bool, error) { return "", false, nil }

// catalogBatch is how many names a filtered listing reads from metadata
// at a time.
const catalogBatch = 500

// Catalog implements Resolver. Names are read in batches until n visible
// ones are found or none are left, so pagination stays exact whatever the
// caller may see.
func (h Hosted) Catalog(ctx context.Context, last string, n int, visible func(string) bool) ([]string, error) {
	return StoredNames(ctx, h.Meta, "", "", last, n, 0, func(name, _ string) bool { return visible(name) })
}

// Search implements Resolver.
func (h Hosted) Search(ctx context.Context, term string, n int, visible func(string) bool) ([]string, error) {
	return SearchStored(ctx, h.Meta, term, n, visible)
}

// maxSearchScan bounds the matches a filtered search reads.
const maxSearchScan = 10000

// SearchStored lists up to n stored names containing term that keep
// accepts, reading at most maxSearchScan matches.
func SearchStored(ctx context.Context, meta metadata.Reader, term string, n int, keep func(string) bool) ([]string, error) {
	names, err := meta.SearchRepositories(ctx, term, maxSearchScan)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, name := range names {
		if len(out) < n && keep(name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// StoredNames lists, in order, up to n stored repository names under
// inPrefix as names under outPrefix that sort after last and that keep
// accepts (given the stored and the listed name). scanMax (> 0) bounds the
// names examined.
func StoredNames(ctx context.Context, meta metadata.Reader, inPrefix, outPrefix, last string, n, scanMax int, keep func(in, out string) bool) ([]string, error) {
	start, none := ListStart(last, outPrefix, inPrefix)
	out := []string{}
	if none || n == 0 {
		return out, nil
	}
	scanned := 0
	for {
		batch, err := meta.Repositories(ctx, start, catalogBatch)
		if err != nil {
			return nil, err
		}
		for _, in := range batch {
			if !strings.HasPrefix(in, inPrefix) {
				return out, nil // past the names under inPrefix
			}
			if o := outPrefix + in[len(inPrefix):]; keep(in, o) {
				out = append(out, o)
				if n >= 0 && len(out) >= n {
					return out, nil
				}
			}
		}
		scanned += len(batch)
		if len(batch) < catalogBatch || (scanMax > 0 && scanned >= scanMax) {
			return out, nil
		}
		start = batch[len(batch)-1]
	}
}

// ListStart translates a listing position in names under outPrefix into
// one under inPrefix: names under outPrefix sort after last exactly when
// their counterparts under inPrefix sort after the result. none reports
// that no name under outPrefix sorts after last.
func ListStart(last, outPrefix, inPrefix string) (start string, none bool) {
	switch {
	case strings.HasPrefix(last, outPrefix):
		return inPrefix + last[len(outPrefix):], false
	case last < outPrefix:
		return inPrefix, false
	}
	return "", true
}

// PageOf returns up to n of tags (any order, with duplicates) after last,
// sorted and each once; all of them when n < 0.
func PageOf(tags []string, last string, n int) []string {
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if last != "" {
		i, _ := slices.BinarySearch(tags, last)
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
	}
	if tags == nil {
		tags = []string{}
	}
	return tags
}

// hostedRepo is a repository of the registry's own store.
type hostedRepo struct {
	meta metadata.Reader
	name string
}

// HostedRepository returns the repository name of the registry's own
// store: what was pushed to it (or, for a cache's local name, what the
// cache stored there).
func HostedRepository(meta metadata.Reader, name string) Repository {
	return hostedRepo{meta: meta, name: name}
}

func (h hostedRepo) Manifest(ctx context.Context, ref string) (*Manifest, error) {
	var m *metadata.Manifest
	var err error
	if isDigestRef(ref) {
		m, err = h.meta.GetManifest(ctx, h.name, digest.Digest(ref))
	} else {
		m, err = h.meta.ResolveTag(ctx, h.name, ref)
		if errors.Is(err, metadata.ErrRepositoryNotFound) {
			err = metadata.ErrNotFound
		}
	}
	if err != nil {
		return nil, err
	}
	return &Manifest{Manifest: m}, nil
}

func (h hostedRepo) Blob(ctx context.Context, d digest.Digest, _, _ bool) (*Blob, error) {
	size, err := h.meta.BlobSize(ctx, h.name, d)
	if err != nil {
		return nil, err
	}
	return &Blob{Size: size, Stored: true}, nil
}

func (h hostedRepo) Tags(ctx context.Context, last string, n int) (*TagList, error) {
	tags, err := h.meta.Tags(ctx, h.name, last, n)
	if err != nil {
		return nil, err
	}
	return &TagList{Tags: tags}, nil
}

func (h hostedRepo) Referrers(ctx context.Context, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	return h.meta.Referrers(ctx, h.name, d, q)
}

func (h hostedRepo) StoredBlob(ctx context.Context, d digest.Digest) (string, int64, error) {
	size, err := h.meta.BlobSize(ctx, h.name, d)
	return h.name, size, err
}

func (h hostedRepo) Target(Access) (*Target, error) { return &Target{Name: h.name}, nil }

var _ Resolver = Hosted{}
