package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// Bounds of the in-memory state of a cache.
const (
	maxFreshEntries   = 100000
	maxMissingEntries = 10000
	maxTagLists       = 1000
	maxPresent        = 100000
	maxSearches       = 1000
	// searchTTL is how long an upstream's search results are kept.
	searchTTL = time.Minute
	// presentTTL is how long content known to be stored is served
	// without asking metadata first.
	presentTTL = time.Minute
)

// cache is one cache registry: a pull-through cache of an upstream. What
// it fetches is stored in the registry's metadata and storage under the
// local name; the cache itself holds only what may be forgotten: which
// tags were revalidated when, what the upstream does not have, its tag
// lists and catalog for a while, its health, and the fetches in flight.
type cache struct {
	env              *env
	name             string
	prefix           string
	up               *upstream
	remotePrefix     string
	singleNamePrefix string
	allow, deny      []*glob.Pattern
	tagTTL           time.Duration
	notFoundTTL      time.Duration
	catalogTTL       time.Duration
	probeInterval    time.Duration
	health           health
	flights          *flights

	// fresh holds, by "local:tag", the digest the upstream confirmed.
	fresh *ttlMap[digest.Digest]
	// missing holds, by "local@ref", what the upstream said it lacks.
	missing *ttlMap[struct{}]
	// tagLists holds upstream tag lists by local name.
	tagLists *ttlMap[[]string]
	// present holds, by "local@digest", the size of blobs (-1 for
	// manifests) known to be stored: content by digest never changes,
	// and deletes go through forget, so a warm pull costs no extra
	// metadata lookup.
	present *ttlMap[int64]

	catalogMu    sync.Mutex
	catalog      []string // local names, sorted
	catalogUntil time.Time

	// prefetch is set with prefetch: layers; prefetcher with it or a
	// sync list (which fetches layers too).
	prefetchLayers bool
	prefetcher     *prefetcher
	sync           *syncer

	// referrers holds upstream referrers lists by "local@digest".
	referrers *ttlMap[[]metadata.Descriptor]
	// searches holds the provider's search results by "n\x00term", so
	// that repeated searches do not each cost a request to the upstream.
	searches *ttlMap[[]provider.Result]
}

func newCache(rc Registry, e *env) (*cache, error) {
	up, err := newUpstream(e.ctx, rc.Name, rc.Upstream, e.now, e.log)
	if err != nil {
		return nil, err
	}
	ca := &cache{
		env: e, name: rc.Name, prefix: rc.Prefix, up: up,
		remotePrefix: rc.Upstream.RemotePrefix, singleNamePrefix: rc.Upstream.SingleNamePrefix,
		tagTTL:        orDefault(rc.TagTTL, DefaultTagTTL),
		notFoundTTL:   orDefault(rc.NotFoundTTL, DefaultNotFoundTTL),
		catalogTTL:    orDefault(rc.CatalogTTL, DefaultCatalogTTL),
		probeInterval: DefaultProbeInterval,
		flights:       newFlights(),
		fresh:         newTTLMap[digest.Digest](maxFreshEntries),
		missing:       newTTLMap[struct{}](maxMissingEntries),
		tagLists:      newTTLMap[[]string](maxTagLists),
		present:       newTTLMap[int64](maxPresent),
		referrers:     newTTLMap[[]metadata.Descriptor](maxReferrerLists),
		searches:      newTTLMap[[]provider.Result](maxSearches),
		health:        health{state: stateUnknown},
	}
	ca.prefetchLayers = rc.Prefetch == PrefetchLayers
	if ca.prefetchLayers || len(rc.Sync) > 0 {
		ca.prefetcher = newPrefetcher(rc.PrefetchConcurrency, rc.PrefetchPlatforms)
	}
	if len(rc.Sync) > 0 {
		ca.sync = newSyncer(ca, rc.Sync, rc.SyncInterval)
	}
	up.down = ca.health.isDown
	ca.instrument()
	if rc.ProbeInterval > 0 {
		ca.probeInterval = rc.ProbeInterval
	}
	for _, p := range rc.Allow {
		g, err := glob.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("allow: %w", err)
		}
		ca.allow = append(ca.allow, g)
	}
	for _, p := range rc.Deny {
		g, err := glob.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("deny: %w", err)
		}
		ca.deny = append(ca.deny, g)
	}
	return ca, nil
}

// remoteName maps a name under the cache's prefix (without it) to the
// upstream's name, and reports whether allow and deny let it through.
func (ca *cache) remoteName(rest string) (string, bool) {
	name := ca.remotePrefix
	if ca.singleNamePrefix != "" && !strings.Contains(rest, "/") {
		name += ca.singleNamePrefix
	}
	name += rest
	return name, ca.allowed(name)
}

func (ca *cache) allowed(remote string) bool {
	ok := len(ca.allow) == 0
	for _, g := range ca.allow {
		if g.Match(remote) {
			ok = true
			break
		}
	}
	for _, g := range ca.deny {
		if g.Match(remote) {
			return false
		}
	}
	return ok
}

// localRest maps an upstream name back to a name under the cache's prefix
// (without it), for the upstream's catalog.
func (ca *cache) localRest(remote string) (string, bool) {
	if !ca.allowed(remote) {
		return "", false
	}
	rest, ok := strings.CutPrefix(remote, ca.remotePrefix)
	if !ok || rest == "" {
		return "", false
	}
	if ca.singleNamePrefix != "" {
		if r, ok := strings.CutPrefix(rest, ca.singleNamePrefix); ok && r != "" && !strings.Contains(r, "/") {
			rest = r
		}
	}
	return rest, true
}

func (ca *cache) notFound(format string, args ...any) error {
	return &upstreamError{kind: kindNotFound, upstream: ca.up.name, err: fmt.Errorf(format, args...)}
}

// forget drops what is remembered about repository local (after a delete).
func (ca *cache) forget(local string) {
	ca.fresh.deletePrefix(local + ":")
	ca.missing.deletePrefix(local + "@")
	ca.present.deletePrefix(local + "@")
	ca.tagLists.delete(local)
}

// Kinds of content the present map knows.
const (
	presentBlob     = ""
	presentManifest = "m/"
)

// stored reports whether content d of local, of the given kind, is known
// to be stored, and the size kept with it; when it is not known, check (a
// metadata lookup returning the size) tells, and a yes is remembered.
func (ca *cache) stored(local, kind string, d digest.Digest, now time.Time, check func() (int64, error)) (bool, int64, error) {
	key := local + "@" + kind + d.String()
	metric := kindBlobMetric
	if kind == presentManifest {
		metric = kindManifestMetric
	}
	if size, ok := ca.present.get(key, now); ok {
		ca.lookup(metric, true)
		return true, size, nil
	}
	size, err := check()
	switch {
	case err == nil:
		ca.present.put(key, size, now, now.Add(presentTTL))
		ca.lookup(metric, true)
		return true, size, nil
	case isNotFound(err):
		return false, 0, nil
	}
	return false, 0, err
}

// cacheRepo is a repository of a cache: local is the name it is stored
// (and served) under, remote the upstream's.
type cacheRepo struct {
	ca       *cache
	local    string
	remote   string
	excluded bool // allow and deny keep remote out
}

// repository returns the Repository of name, a name under the cache's
// prefix.
func (ca *cache) repository(name string) registry.Repository {
	remote, ok := ca.remoteName(strings.TrimPrefix(name, ca.prefix))
	return &cacheRepo{ca: ca, local: name, remote: remote, excluded: !ok}
}

// refuse reports reads of a name that allow and deny exclude.
func (r *cacheRepo) refuse() error {
	if !r.excluded {
		return nil
	}
	return nameUnknown(r.local, "repository %s is not served by cache %s (its allow and deny lists exclude %s)", r.local, r.ca.name, r.remote)
}

func (r *cacheRepo) hosted() registry.Repository {
	return registry.HostedRepository(r.ca.env.meta, r.local)
}

// Manifest implements registry.Repository: the manifest is fetched and
// stored on a miss, a cached tag revalidated once its TTL has passed.
func (r *cacheRepo) Manifest(ctx context.Context, ref string) (*registry.Manifest, error) {
	if err := r.refuse(); err != nil {
		return nil, err
	}
	stale, err := r.ca.ensureManifest(ctx, r.local, r.remote, ref)
	if err != nil {
		return nil, wireError(err, registry.ErrManifestUnknown, "manifest "+r.remote+":"+ref)
	}
	m, err := r.hosted().Manifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	m.Stale = stale
	return m, nil
}

// Blob implements registry.Repository.
func (r *cacheRepo) Blob(ctx context.Context, d digest.Digest, head, ranged bool) (*registry.Blob, error) {
	if err := r.refuse(); err != nil {
		return nil, err
	}
	b, err := r.ca.blob(ctx, r.local, r.remote, d, head, ranged)
	return b, wireError(err, registry.ErrBlobUnknown, "blob "+r.remote+"@"+d.String())
}

// Tags implements registry.Repository: the cached tags and the
// upstream's.
func (r *cacheRepo) Tags(ctx context.Context, last string, n int) (*registry.TagList, error) {
	if err := r.refuse(); err != nil {
		return nil, err
	}
	tags, stale, err := r.ca.tags(ctx, r.local, r.remote)
	if err != nil {
		return nil, wireError(err, registry.ErrNameUnknown, "repository "+r.remote)
	}
	return &registry.TagList{Tags: registry.PageOf(tags, last, n), Stale: stale}, nil
}

// StoredBlob implements registry.Repository: what is cached.
func (r *cacheRepo) StoredBlob(ctx context.Context, d digest.Digest) (string, int64, error) {
	return r.hosted().StoredBlob(ctx, d)
}

// Target implements registry.Repository: a cache takes no pushes;
// deleting cached content removes it from the cache only.
func (r *cacheRepo) Target(access registry.Access) (*registry.Target, error) {
	if access == registry.AccessPush {
		return nil, &registry.Error{Code: registry.ErrDenied,
			Message: fmt.Sprintf("%s is in %s, a pull-through cache of %s: push to a hosted registry instead", r.local, r.ca.name, r.ca.up.name)}
	}
	return &registry.Target{Name: r.local, Forget: func() { r.ca.forget(r.local) }}, nil
}

// ensureManifest makes manifest ref of local (upstream remote) available
// in the store. stale reports that a cached tag is served without the
// upstream's confirmation, which could not be had.
func (ca *cache) ensureManifest(ctx context.Context, local, remote, ref string) (stale bool, err error) {
	meta := ca.env.meta
	now := ca.env.now()
	missingKey := local + "@" + ref
	if strings.Contains(ref, ":") {
		d := digest.Digest(ref)
		if storage.ValidateDigest(d) != nil {
			return false, nil // the registry answers DIGEST_INVALID
		}
		// Content by digest never changes: once stored it is served.
		if ok, _, err := ca.stored(local, presentManifest, d, now, func() (int64, error) {
			_, err := meta.GetManifest(ctx, local, d)
			return -1, err
		}); ok || err != nil {
			return false, err
		}
		if _, ok := ca.missing.get(missingKey, now); ok {
			return false, ca.notFound("manifest %s@%s (remembered)", remote, ref)
		}
		err := ca.run(ctx, "m\x00"+local+"\x00"+ref, func(ctx context.Context) error {
			if _, err := meta.GetManifest(ctx, local, d); err == nil {
				return nil
			}
			fm, err := ca.up.getManifest(ctx, remote, ref, ca.env.maxManifest)
			ca.observe(err)
			if err != nil {
				return err
			}
			return ca.storeManifest(ctx, local, remote, fm)
		})
		if kindOf(err) == kindNotFound {
			ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
		}
		return false, err
	}
	if !registry.ValidTag(ref) {
		return false, nil // the registry answers TAG_INVALID
	}
	if _, ok := ca.fresh.get(local+":"+ref, now); ok {
		ca.lookup(kindManifestMetric, true)
		return false, nil
	}
	_, err = meta.ResolveTag(ctx, local, ref)
	have := err == nil
	if err != nil && !isNotFound(err) {
		return false, err
	}
	if !have {
		if _, ok := ca.missing.get(missingKey, now); ok {
			return false, ca.notFound("manifest %s:%s (remembered)", remote, ref)
		}
	} else if ca.health.isDown() {
		// Known to be down: no point in making the client wait for it.
		ca.lookup(kindManifestMetric, true)
		return true, nil
	}
	err = ca.run(ctx, "t\x00"+local+"\x00"+ref, func(ctx context.Context) error {
		return ca.syncTag(ctx, local, remote, ref)
	})
	switch {
	case err == nil:
		return false, nil
	case kindOf(err) == kindNotFound:
		ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
		return false, err
	case have && kindOf(err) != 0 && ctx.Err() == nil:
		ca.env.log.Warn("serving a cached tag the upstream could not confirm", "registry", ca.name, "repo", local, "tag", ref, "err", err)
		ca.lookup(kindManifestMetric, true)
		return true, nil
	}
	return false, err
}

// syncTag brings tag of local in line with the upstream: a HEAD when it is
// cached (cheap, and not counted against Docker Hub's pull limits), a
// fetch only when the digest changed or the tag is not cached.
func (ca *cache) syncTag(ctx context.Context, local, remote, tag string) error {
	meta := ca.env.meta
	now := ca.env.now()
	if _, ok := ca.fresh.get(local+":"+tag, now); ok {
		return nil // a flight that just landed confirmed it
	}
	m, err := meta.ResolveTag(ctx, local, tag)
	if err != nil && !isNotFound(err) {
		return err
	}
	ref := tag
	if err == nil {
		d, err := ca.up.headManifest(ctx, remote, tag)
		ca.observe(err)
		switch {
		case kindOf(err) == kindNotFound:
			// The upstream dropped the tag: so does the cache.
			if derr := meta.DeleteTag(ctx, local, tag); derr != nil && !isNotFound(derr) {
				return derr
			}
			return err
		case err != nil:
			return err
		case d == m.Digest:
			ca.markFresh(local, tag, d, now)
			ca.lookup(kindManifestMetric, true)
			return nil
		case d != "":
			if old, err := meta.GetManifest(ctx, local, d); err == nil {
				// Moved to a manifest already cached: only the tag changes.
				if err := meta.PutManifest(ctx, local, old, tag); err != nil {
					return err
				}
				ca.markFresh(local, tag, d, now)
				ca.lookup(kindManifestMetric, true)
				return nil
			}
			ref = d.String()
		}
	}
	fm, err := ca.up.getManifest(ctx, remote, ref, ca.env.maxManifest)
	ca.observe(err)
	if err != nil {
		return err
	}
	return ca.storeManifest(ctx, local, remote, fm, tag)
}

func (ca *cache) markFresh(local, tag string, d digest.Digest, now time.Time) {
	ca.fresh.put(local+":"+tag, d, now, now.Add(ca.tagTTL))
}

// storeManifest validates a fetched manifest and stores it (with tags) in
// local. The blobs it references are fetched when they are asked for.
func (ca *cache) storeManifest(ctx context.Context, local, remote string, fm *fetchedManifest, tags ...string) error {
	m, err := registry.ParseManifest(fm.contentType, fm.body)
	if err != nil {
		return ca.up.bad("manifest %s@%s is invalid: %v", remote, fm.digest, err)
	}
	m.Digest = fm.digest
	if err := ca.env.meta.PutManifest(ctx, local, m, tags...); err != nil {
		return err
	}
	if ca.prefetchLayers {
		ca.prefetch(local, remote, m, nil)
	}
	ca.lookup(kindManifestMetric, false)
	now := ca.env.now()
	for _, t := range tags {
		ca.markFresh(local, t, fm.digest, now)
	}
	ca.env.log.Info("cached manifest", "registry", ca.name, "repo", local, "upstream", remote, "digest", fm.digest, "tags", tags)
	return nil
}

// blob returns blob d of local (upstream remote), fetching it on a miss: a
// HEAD of a blob stored nowhere is answered from the upstream's HEAD (a
// fetch would cost a pull); a GET of a blob not stored streams it to the
// client while it is stored.
func (ca *cache) blob(ctx context.Context, local, remote string, d digest.Digest, head, ranged bool) (*registry.Blob, error) {
	meta := ca.env.meta
	now := ca.env.now()
	size := func() (int64, error) { return meta.BlobSize(ctx, local, d) }
	if ok, n, err := ca.stored(local, presentBlob, d, now, size); err != nil {
		return nil, err
	} else if ok {
		return &registry.Blob{Size: n, Stored: true}, nil
	}
	missingKey := local + "@" + d.String()
	if _, ok := ca.missing.get(missingKey, now); ok {
		return nil, ca.notFound("blob %s@%s (remembered)", remote, d)
	}
	remember := func(err error) error {
		if kindOf(err) == kindNotFound {
			ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
		}
		return err
	}
	_, statErr := ca.env.blobs.Stat(ctx, d)
	stored := statErr == nil
	if head && !stored {
		n, err := ca.up.headBlob(ctx, remote, d)
		ca.observe(err)
		if err != nil {
			return nil, remember(err)
		}
		return &registry.Blob{Size: n}, nil
	}
	key := "b\x00" + local + "\x00" + d.String()
	local2 := func() (*registry.Blob, error) {
		n, err := size()
		if err != nil {
			return nil, err
		}
		return &registry.Blob{Size: n, Stored: true}, nil
	}
	if stored || head || ranged {
		// Stored for another repository (the upstream need only confirm
		// it has the blob too), or a range of a blob not yet here (it is
		// fetched whole first): nothing streams.
		if err := ca.run(ctx, key, func(ctx context.Context) error {
			return ca.fillBlob(ctx, local, remote, d, nil)
		}); err != nil {
			return nil, remember(err)
		}
		return local2()
	}
	f, leader := ca.flights.join(key)
	if !leader {
		if err := f.wait(ctx); err != nil {
			return nil, remember(err)
		}
		return local2()
	}
	b, err := ca.streamBlob(local, remote, d, key, f)
	if err != nil {
		return nil, remember(err)
	}
	if b == nil {
		return local2() // it was there after all
	}
	return b, nil
}

// streamBlob leads the fetch of blob d of local: it opens the upstream's
// answer and returns the stream of it that the fill feeds while it stores
// the blob in the background (with the connector's context: if this
// client goes away, the fill goes on for the others, who wait for the
// flight). It returns nil and no error when the blob turned out to be
// stored already.
func (ca *cache) streamBlob(local, remote string, d digest.Digest, key string, f *flight) (*registry.Blob, error) {
	ctx := ca.env.ctx
	if _, err := ca.env.meta.BlobSize(ctx, local, d); err == nil {
		ca.flights.land(key, f, nil)
		return nil, nil
	}
	resp, err := ca.up.getBlob(ctx, remote, d)
	ca.observe(err)
	if err != nil {
		ca.flights.land(key, f, err)
		return nil, err
	}
	s := newBlobStream(ca.up.timeout)
	fill := func() {
		defer resp.Body.Close()
		err := ca.storeBlob(ctx, local, remote, d, resp.Body, s)
		if err != nil {
			ca.env.log.Warn("blob fetch failed while streaming", "registry", ca.name, "repo", local, "digest", d, "err", err)
		}
		s.finish(err)
		ca.flights.land(key, f, err)
	}
	if !ca.env.goAsync(fill) {
		resp.Body.Close()
		ca.flights.land(key, f, errClosed)
		return nil, errClosed
	}
	return &registry.Blob{Size: resp.ContentLength, Stream: s, StallTimeout: ca.up.timeout}, nil
}

// fillBlob fetches blob d of remote into storage and links it to local.
func (ca *cache) fillBlob(ctx context.Context, local, remote string, d digest.Digest, sink io.Writer) error {
	meta := ca.env.meta
	if _, err := meta.BlobSize(ctx, local, d); err == nil {
		return nil // a flight that just landed stored it
	}
	if size, err := ca.env.blobs.Stat(ctx, d); err == nil {
		// The bytes are here for another repository; link them once the
		// upstream confirms this repository has the blob, so that knowing
		// a digest is never enough to read a blob through a cache.
		usize, err := ca.up.headBlob(ctx, remote, d)
		ca.observe(err)
		if err != nil {
			return err
		}
		if usize >= 0 && usize != size {
			return ca.up.bad("blob %s@%s has %d bytes upstream, %d stored", remote, d, usize, size)
		}
		ca.lookup(kindBlobMetric, false)
		return ca.link(ctx, local, d, size)
	}
	resp, err := ca.up.getBlob(ctx, remote, d)
	ca.observe(err)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ca.storeBlob(ctx, local, remote, d, resp.Body, sink)
}

// storeBlob stores body (the upstream's blob d) and links it to local;
// with sink, the bytes are also written there as they arrive.
func (ca *cache) storeBlob(ctx context.Context, local, remote string, d digest.Digest, body io.Reader, sink io.Writer) error {
	start := time.Now()
	rb := &readErr{r: body}
	var src io.Reader = rb
	if sink != nil {
		src = io.TeeReader(rb, sink)
	}
	size, err := ca.env.blobs.Put(ctx, local, d, src)
	switch {
	case errors.Is(err, storage.ErrDigestMismatch):
		return ca.up.bad("blob %s@%s: %v", remote, d, err)
	case err != nil && rb.err != nil:
		return ca.up.fail(ctx, fmt.Errorf("reading blob %s@%s: %w", remote, d, rb.err))
	case err != nil:
		return err
	}
	if err := ca.link(ctx, local, d, size); err != nil {
		return err
	}
	ca.lookup(kindBlobMetric, false)
	ca.env.log.Info("cached blob", "registry", ca.name, "repo", local, "digest", d, "bytes", size,
		"duration", time.Since(start).Round(time.Millisecond), "streamed", sink != nil)
	return nil
}

// link records that local may serve blob d, whose bytes are in storage.
// The Writer's LinkBlob checks, against garbage collection, that the bytes
// are still there.
func (ca *cache) link(ctx context.Context, local string, d digest.Digest, size int64) error {
	return ca.env.meta.LinkBlob(ctx, local, d, size)
}

// readErr remembers the error of the reader it wraps, to tell the
// upstream's failures from storage's.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// tags returns the tags of local: the cached ones and the upstream's.
// stale reports that the upstream could not be asked.
func (ca *cache) tags(ctx context.Context, local, remote string) (tags []string, stale bool, err error) {
	cached, err := ca.env.meta.Tags(ctx, local, "", -1)
	haveRepo := err == nil
	if err != nil && !isNotFound(err) {
		return nil, false, err
	}
	upTags, err := ca.upstreamTags(ctx, local, remote)
	switch {
	case err == nil:
		return append(cached, upTags...), false, nil
	case !haveRepo:
		return nil, false, err
	case kindOf(err) == kindNotFound:
		return cached, false, nil
	}
	return cached, true, nil
}

func (ca *cache) upstreamTags(ctx context.Context, local, remote string) ([]string, error) {
	now := ca.env.now()
	if tags, ok := ca.tagLists.get(local, now); ok {
		return tags, nil
	}
	if _, ok := ca.missing.get(local+"@", now); ok {
		return nil, ca.notFound("repository %s (remembered)", remote)
	}
	if ca.health.isDown() {
		return nil, &upstreamError{kind: kindUnavailable, upstream: ca.up.name, err: errors.New("down since " + ca.health.downSinceString())}
	}
	tags, err := ca.up.list(ctx, "/v2/"+remote+"/tags/list", "tags")
	ca.observe(err)
	switch {
	case kindOf(err) == kindNotFound:
		ca.missing.put(local+"@", struct{}{}, now, now.Add(ca.notFoundTTL))
		return nil, err
	case err != nil:
		return nil, err
	}
	ca.tagLists.put(local, tags, now, now.Add(ca.tagTTL))
	return tags, nil
}

// upstreamCatalog returns the upstream's repositories as local names
// (prefix included), sorted, as fetched at most catalogTTL ago. An
// upstream without a catalog (Docker Hub) or one that fails counts as
// empty until the next try.
func (ca *cache) upstreamCatalog(ctx context.Context) []string {
	if ca.catalogTTL <= 0 {
		return nil
	}
	ca.catalogMu.Lock()
	defer ca.catalogMu.Unlock()
	now := ca.env.now()
	if now.Before(ca.catalogUntil) || ca.health.isDown() {
		return ca.catalog
	}
	ca.catalogUntil = now.Add(ca.catalogTTL)
	lister, ok := ca.up.provider.(provider.Lister)
	if !ok {
		return nil // the upstream has no catalog (Docker Hub)
	}
	names, err := lister.Repositories(ctx)
	if err != nil {
		ca.env.log.Info("upstream catalog unavailable", "registry", ca.name, "upstream", ca.up.name, "err", err)
		return ca.catalog
	}
	local := make([]string, 0, len(names))
	for _, n := range names {
		if rest, ok := ca.localRest(n); ok && registry.ValidName(ca.prefix+rest) {
			local = append(local, ca.prefix+rest)
		}
	}
	sort.Strings(local)
	ca.catalog = compactSorted(local)
	return ca.catalog
}

// compactSorted drops duplicates from a sorted list.
func compactSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
