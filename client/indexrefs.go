package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
)

// IndexScanLimits bound what ReferencingIndexes reads of a repository. Zero fields take
// their defaults.
type IndexScanLimits struct {
	// MaxTags is the most tags looked at (default 1000). A repository with more gives an
	// error matching ErrScanIncomplete.
	MaxTags int
	// MaxIndexes is the most distinct indexes read, nested ones included (default 200).
	MaxIndexes int
	// MaxIndexSize is the largest index read, in bytes (default MaxManifestSize). A larger
	// one gives an error matching ErrScanIncomplete.
	MaxIndexSize int64
}

func (l IndexScanLimits) withDefaults() IndexScanLimits {
	if l.MaxTags <= 0 {
		l.MaxTags = 1000
	}
	if l.MaxIndexes <= 0 {
		l.MaxIndexes = 200
	}
	if l.MaxIndexSize <= 0 || l.MaxIndexSize > MaxManifestSize {
		l.MaxIndexSize = MaxManifestSize
	}
	return l
}

// ErrScanIncomplete: ReferencingIndexes stopped at one of its limits, so whether some
// tagged index lists the manifest is not known.
var ErrScanIncomplete = errors.New("the scan stopped at a limit")

// IndexReference is a tag whose index lists a manifest, directly or through a nested index.
type IndexReference struct {
	// Tag is the tag of the index.
	Tag string
	// Index is the digest the tag points at.
	Index digest.Digest
}

// maxIndexDepth bounds the nesting of indexes followed.
const maxIndexDepth = 4

// ReferencingIndexes returns the tags of repo whose index lists the manifest d: what a
// deletion of d by digest would break (the index would name a manifest that is gone). It
// reads the repository's tag list, the descriptor of each tag and each tagged index, within
// lim; tags of d itself are not references. The registry's own endpoints are asked, never a
// mirror.
func (c *Client) ReferencingIndexes(ctx context.Context, repo Reference, d digest.Digest, lim IndexScanLimits) ([]IndexReference, error) {
	lim = lim.withDefaults()
	repo = repo.Repo()
	refs, err := c.referencingIndexes(ctx, repo, d, lim)
	return refs, wrap("find indexes listing", repo.Name()+"@"+d.String(), err)
}

func (c *Client) referencingIndexes(ctx context.Context, repo Reference, d digest.Digest, lim IndexScanLimits) ([]IndexReference, error) {
	var tags []string
	for page, err := range c.TagPages(ctx, repo, ListOptions{}) {
		if errors.Is(err, ErrNotFound) {
			return nil, nil // no repository: no tags
		}
		if err != nil {
			return nil, err
		}
		tags = append(tags, page...)
		if len(tags) > lim.MaxTags {
			return nil, fmt.Errorf("%w: the repository has more than %d tags", ErrScanIncomplete, lim.MaxTags)
		}
	}
	s := &indexScan{c: c, repo: repo, target: d, lim: lim, lists: map[digest.Digest]bool{}}
	var (
		mu       sync.Mutex
		found    []IndexReference
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, c.concurrency)
	)
	for _, tag := range tags {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ok, idx, err := s.tagLists(ctx, tag)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case ok:
				found = append(found, IndexReference{Tag: tag, Index: idx})
			}
		}()
	}
	wg.Wait()
	sort.Slice(found, func(i, j int) bool { return found[i].Tag < found[j].Tag })
	return found, firstErr
}

// indexScan remembers, per index digest, whether it lists the target.
type indexScan struct {
	c      *Client
	repo   Reference
	target digest.Digest
	lim    IndexScanLimits

	mu    sync.Mutex
	lists map[digest.Digest]bool
	read  int
}

// tagLists reports whether the tag's manifest is an index listing the target.
func (s *indexScan) tagLists(ctx context.Context, tag string) (bool, digest.Digest, error) {
	var desc Descriptor
	err := s.c.do(ctx, s.repo.Registry, forPush, func(ep *endpoint) error {
		var err error
		desc, err = s.c.headManifest(ctx, ep, s.repo.WithTag(tag))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, "", nil // untagged since the listing
	}
	if err != nil {
		return false, "", err
	}
	if desc.Digest == s.target || !IsIndexMediaType(desc.MediaType) {
		return false, desc.Digest, nil
	}
	ok, err := s.indexLists(ctx, desc, 0)
	return ok, desc.Digest, err
}

// indexLists reports whether the index desc lists the target, itself or through a nested
// index.
func (s *indexScan) indexLists(ctx context.Context, desc Descriptor, depth int) (bool, error) {
	s.mu.Lock()
	if v, ok := s.lists[desc.Digest]; ok {
		s.mu.Unlock()
		return v, nil
	}
	if s.read >= s.lim.MaxIndexes {
		s.mu.Unlock()
		return false, fmt.Errorf("%w: more than %d indexes to read", ErrScanIncomplete, s.lim.MaxIndexes)
	}
	s.read++
	s.mu.Unlock()
	if desc.Size > s.lim.MaxIndexSize {
		return false, fmt.Errorf("%w: index %s is larger than %d bytes", ErrScanIncomplete, desc.Digest, s.lim.MaxIndexSize)
	}
	var m *Manifest
	err := s.c.do(ctx, s.repo.Registry, forPush, func(ep *endpoint) error {
		var err error
		m, err = s.c.getManifest(ctx, ep, s.repo.WithDigest(desc.Digest))
		return err
	})
	if err != nil {
		return false, err
	}
	ix, err := m.Index()
	if err != nil {
		return false, err
	}
	lists := false
	for _, child := range ix.Manifests {
		if child.Digest == s.target {
			lists = true
			break
		}
	}
	for _, child := range ix.Manifests {
		if lists || !IsIndexMediaType(child.MediaType) {
			continue
		}
		if depth+1 >= maxIndexDepth {
			return false, fmt.Errorf("%w: indexes nested more than %d deep", ErrScanIncomplete, maxIndexDepth)
		}
		if lists, err = s.indexLists(ctx, child, depth+1); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	s.lists[desc.Digest] = lists
	s.mu.Unlock()
	return lists, nil
}
