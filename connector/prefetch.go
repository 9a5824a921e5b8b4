package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
)

// parsePlatform parses os/arch[/variant].
func parsePlatform(s string) (ocispec.Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant] such as linux/amd64: %v", s, err)
	}
	return p, nil
}

// platformFilter keeps the children of an index whose platform matches
// one of ps (all of them when ps is empty). Children without a platform
// (attestations, artifacts) are kept only without a filter.
type platformFilter []ocispec.Platform

func newPlatformFilter(list []string) platformFilter {
	var f platformFilter
	for _, s := range list {
		if p, err := parsePlatform(s); err == nil {
			f = append(f, p)
		}
	}
	return f
}

func (f platformFilter) keep(p *ocispec.Platform) bool {
	if len(f) == 0 {
		return true
	}
	if p == nil {
		return false
	}
	return platforms.Any(f...).Match(*p)
}

// children returns the child manifests of index m that f keeps.
func (f platformFilter) children(m *metadata.Manifest) []digest.Digest {
	if len(f) == 0 {
		return m.Manifests
	}
	var idx ocispec.Index
	if err := json.Unmarshal(m.Content, &idx); err != nil {
		return nil
	}
	var out []digest.Digest
	for _, d := range idx.Manifests {
		if f.keep(d.Platform) {
			out = append(out, d.Digest)
		}
	}
	return out
}

// maxPrefetchPending bounds the blobs and manifests waiting to be
// prefetched by one cache: beyond it, pulls queue no more (what they need
// is fetched when a client asks), so pulling many manifests cannot pile up
// waiting work.
const maxPrefetchPending = 10_000

// prefetcher fetches the layers of manifests in the background, a bounded
// number at a time, with a bounded number waiting.
type prefetcher struct {
	// tasks counts the work queued and running (tests wait on it).
	tasks   sync.WaitGroup
	sem     chan struct{}
	filter  platformFilter
	limit   int64 // of pending
	pending atomic.Int64
	fetched atomic.Int64
	failed  atomic.Int64
	skipped atomic.Int64
}

// PrefetchStatus is the work of a cache's prefetching, for the health
// report and metrics.
type PrefetchStatus struct {
	// Pending counts blobs and manifests waiting or being fetched.
	Pending int64 `json:"pending"`
	// Fetched and Failed count blobs fetched (or found stored) and failed
	// since start.
	Fetched int64 `json:"fetched"`
	Failed  int64 `json:"failed"`
	// Skipped counts what was not queued because Pending was at its bound.
	Skipped int64 `json:"skipped"`
}

func newPrefetcher(concurrency int, platforms []string) *prefetcher {
	if concurrency <= 0 {
		concurrency = DefaultPrefetchConcurrency
	}
	return &prefetcher{sem: make(chan struct{}, concurrency), filter: newPlatformFilter(platforms), limit: maxPrefetchPending}
}

func (p *prefetcher) status() PrefetchStatus {
	return PrefetchStatus{Pending: p.pending.Load(), Fetched: p.fetched.Load(), Failed: p.failed.Load(), Skipped: p.skipped.Load()}
}

// prefetch fetches in the background what m (just stored in local) needs:
// the blobs of an image, the kept children of an index (whose blobs then
// follow when they are stored). filter overrides the cache's platforms
// (sync rules name their own).
func (ca *cache) prefetch(local, remote string, m *metadata.Manifest, filter platformFilter) {
	p := ca.prefetcher
	if p == nil {
		return
	}
	if filter == nil {
		filter = p.filter
	}
	var todo []func(ctx context.Context) error
	if mediatype.IsIndex(m.MediaType) {
		for _, d := range filter.children(m) {
			todo = append(todo, func(ctx context.Context) error {
				_, err := ca.ensureManifest(ctx, local, remote, d.String())
				return err
			})
		}
	} else {
		for _, d := range m.Blobs {
			todo = append(todo, func(ctx context.Context) error {
				return ca.prefetchBlob(ctx, local, remote, d)
			})
		}
	}
	for _, fn := range todo {
		if p.pending.Add(1) > p.limit {
			p.pending.Add(-1)
			p.skipped.Add(1)
			continue
		}
		p.tasks.Add(1)
		if !ca.env.goAsync(func() {
			defer p.tasks.Done()
			defer p.pending.Add(-1)
			ctx := ca.env.ctx
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			err := fn(ctx)
			<-p.sem
			if err != nil {
				p.failed.Add(1)
				if ctx.Err() == nil {
					ca.env.log.Warn("prefetch failed", "registry", ca.name, "repo", local, "err", err)
				}
				return
			}
			p.fetched.Add(1)
		}) {
			p.pending.Add(-1)
			p.tasks.Done()
		}
	}
}

// prefetchBlob fetches blob d into local unless it is there, sharing the
// flight of a client's request for it.
func (ca *cache) prefetchBlob(ctx context.Context, local, remote string, d digest.Digest) error {
	if _, err := ca.env.meta.BlobSize(ctx, local, d); err == nil {
		return nil
	}
	return ca.run(ctx, "b\x00"+local+"\x00"+d.String(), func(ctx context.Context) error {
		return ca.fillBlob(ctx, local, remote, d, nil)
	})
}
