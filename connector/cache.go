package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// staleWarning marks a cached tag served without the upstream's word on it
// (RFC 9111's warn-code 110).
const staleWarning = `110 berth "Response is Stale"`

// Bounds of the in-memory state of a cache.
const (
	maxFreshEntries   = 100000
	maxMissingEntries = 10000
	maxTagLists       = 1000
	maxPresent        = 100000
	// presentTTL is how long content known to be stored is served
	// without asking metadata first.
	presentTTL = time.Minute
)

// cache is the state of one cache registry. What it fetches is stored in
// metadata and storage under the local name; this holds only what may be
// forgotten: which tags were revalidated when, what the upstream does not
// have, its tag lists and catalog for a while, and its health.
type cache struct {
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

	// fresh holds, by "local:tag", the digest the upstream confirmed.
	fresh *ttlMap[digest.Digest]
	// missing holds, by "local@ref", what the upstream said it lacks.
	missing *ttlMap[struct{}]
	// tagLists holds upstream tag lists by local name.
	tagLists *ttlMap[[]string]
	// present holds, by "local@digest", manifests and blobs known to be
	// stored: content by digest never changes, and deletes go through
	// forget, so a warm pull costs no extra metadata lookup.
	present *ttlMap[struct{}]

	catalogMu    sync.Mutex
	catalog      []string // local names, sorted
	catalogUntil time.Time
}

func newCache(rc Registry) (*cache, error) {
	up, err := newUpstream(rc.Upstream)
	if err != nil {
		return nil, err
	}
	ca := &cache{
		name: rc.Name, prefix: rc.Prefix, up: up,
		remotePrefix: rc.Upstream.RemotePrefix, singleNamePrefix: rc.Upstream.SingleNamePrefix,
		tagTTL:        orDefault(rc.TagTTL, DefaultTagTTL),
		notFoundTTL:   orDefault(rc.NotFoundTTL, DefaultNotFoundTTL),
		catalogTTL:    orDefault(rc.CatalogTTL, DefaultCatalogTTL),
		probeInterval: DefaultProbeInterval,
		fresh:         newTTLMap[digest.Digest](maxFreshEntries),
		missing:       newTTLMap[struct{}](maxMissingEntries),
		tagLists:      newTTLMap[[]string](maxTagLists),
		present:       newTTLMap[struct{}](maxPresent),
		health:        health{state: stateUnknown},
	}
	up.down = ca.health.isDown
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

// stored reports whether local@d is known to be stored; when not, check
// (a metadata lookup) tells, and a yes is remembered.
func (ca *cache) stored(local string, d digest.Digest, now time.Time, check func() error) (bool, error) {
	key := local + "@" + d.String()
	if _, ok := ca.present.get(key, now); ok {
		return true, nil
	}
	err := check()
	switch {
	case err == nil:
		ca.present.put(key, struct{}{}, now, now.Add(presentTTL))
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

// serveCache answers a request for a cache registry's name.
func (c *Connector) serveCache(w http.ResponseWriter, r *http.Request, rt registry.Route, e *entry, name string) {
	ca := e.cache
	switch rt.Access {
	case registry.AccessPush:
		if !c.authorize(w, r, rt) {
			return
		}
		c.writeError(w, r, &registry.Error{Code: registry.ErrDenied,
			Message: fmt.Sprintf("%s is in %s, a pull-through cache of %s: push to a hosted registry instead", rt.Name, ca.name, ca.up.name)})
		return
	case registry.AccessDelete:
		// Deleting cached content removes it from the cache only; the
		// registry authorizes it.
		if name != rt.Name {
			if !c.authorize(w, r, rt) {
				return
			}
			c.forward(w, r, rt, name)
		} else {
			c.next.ServeHTTP(w, r)
		}
		ca.forget(name)
		return
	}
	if !c.authorize(w, r, rt) {
		return
	}
	rest := strings.TrimPrefix(name, ca.prefix)
	remote, ok := ca.remoteName(rest)
	if !ok {
		c.writeError(w, r, &registry.Error{Code: registry.ErrNameUnknown,
			Message: fmt.Sprintf("repository %s is not served by cache %s (its allow and deny lists exclude %s)", rt.Name, ca.name, remote),
			Detail:  map[string]string{"name": rt.Name}})
		return
	}
	switch rt.Kind {
	case registry.KindManifest:
		stale, err := c.ensureManifest(r.Context(), ca, name, remote, rt.Ref)
		if err != nil {
			c.fail(w, r, err, registry.ErrManifestUnknown, "manifest "+remote+":"+rt.Ref)
			return
		}
		if stale {
			w.Header().Set("Warning", staleWarning)
		}
		c.forward(w, r, rt, name)
	case registry.KindBlob:
		d := digest.Digest(rt.Ref)
		if storage.ValidateDigest(d) != nil {
			c.forward(w, r, rt, name)
			return
		}
		if err := c.serveBlob(w, r, rt, ca, name, remote, d); err != nil {
			if r.Context().Err() == nil {
				c.fail(w, r, err, registry.ErrBlobUnknown, "blob "+remote+"@"+rt.Ref)
			}
		}
	case registry.KindTags:
		tags, stale, err := c.cacheTags(r.Context(), ca, name, remote)
		if err != nil {
			c.fail(w, r, err, registry.ErrNameUnknown, "repository "+remote)
			return
		}
		if stale {
			w.Header().Set("Warning", staleWarning)
		}
		c.writeTags(w, r, rt.Name, tags)
	default:
		// Referrers: what is cached.
		c.forward(w, r, rt, name)
	}
}

// ensureManifest makes manifest ref of local (upstream remote) available
// in the store. stale reports that a cached tag is served without the
// upstream's confirmation, which could not be had.
func (c *Connector) ensureManifest(ctx context.Context, ca *cache, local, remote, ref string) (stale bool, err error) {
	now := c.opts.Now()
	missingKey := local + "@" + ref
	if strings.Contains(ref, ":") {
		d := digest.Digest(ref)
		if storage.ValidateDigest(d) != nil {
			return false, nil // the registry answers DIGEST_INVALID
		}
		// Content by digest never changes: once stored it is served.
		if ok, err := ca.stored(local, d, now, func() error {
			_, err := c.meta.GetManifest(ctx, local, d)
			return err
		}); ok || err != nil {
			return false, err
		}
		if _, ok := ca.missing.get(missingKey, now); ok {
			return false, ca.notFound("manifest %s@%s (remembered)", remote, ref)
		}
		err := c.run(ctx, "m\x00"+local+"\x00"+ref, func(ctx context.Context) error {
			if _, err := c.meta.GetManifest(ctx, local, d); err == nil {
				return nil
			}
			fm, err := ca.up.getManifest(ctx, remote, ref, c.opts.MaxManifestSize)
			c.observe(ca, err)
			if err != nil {
				return err
			}
			return c.storeManifest(ctx, ca, local, remote, fm)
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
		return false, nil
	}
	_, err = c.meta.ResolveTag(ctx, local, ref)
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
		return true, nil
	}
	err = c.run(ctx, "t\x00"+local+"\x00"+ref, func(ctx context.Context) error {
		return c.syncTag(ctx, ca, local, remote, ref)
	})
	switch {
	case err == nil:
		return false, nil
	case kindOf(err) == kindNotFound:
		ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
		return false, err
	case have && kindOf(err) != 0 && ctx.Err() == nil:
		c.log.Warn("serving a cached tag the upstream could not confirm", "registry", ca.name, "repo", local, "tag", ref, "err", err)
		return true, nil
	}
	return false, err
}

// syncTag brings tag of local in line with the upstream: a HEAD when it is
// cached (cheap, and not counted against Docker Hub's pull limits), a
// fetch only when the digest changed or the tag is not cached.
func (c *Connector) syncTag(ctx context.Context, ca *cache, local, remote, tag string) error {
	now := c.opts.Now()
	if _, ok := ca.fresh.get(local+":"+tag, now); ok {
		return nil // a flight that just landed confirmed it
	}
	m, err := c.meta.ResolveTag(ctx, local, tag)
	if err != nil && !isNotFound(err) {
		return err
	}
	ref := tag
	if err == nil {
		d, err := ca.up.headManifest(ctx, remote, tag)
		c.observe(ca, err)
		switch {
		case kindOf(err) == kindNotFound:
			// The upstream dropped the tag: so does the cache.
			if derr := c.meta.DeleteTag(ctx, local, tag); derr != nil && !isNotFound(derr) {
				return derr
			}
			return err
		case err != nil:
			return err
		case d == m.Digest:
			ca.markFresh(local, tag, d, now)
			return nil
		case d != "":
			if old, err := c.meta.GetManifest(ctx, local, d); err == nil {
				// Moved to a manifest already cached: only the tag changes.
				if err := c.meta.PutManifest(ctx, local, old, tag); err != nil {
					return err
				}
				ca.markFresh(local, tag, d, now)
				return nil
			}
			ref = d.String()
		}
	}
	fm, err := ca.up.getManifest(ctx, remote, ref, c.opts.MaxManifestSize)
	c.observe(ca, err)
	if err != nil {
		return err
	}
	return c.storeManifest(ctx, ca, local, remote, fm, tag)
}

func (ca *cache) markFresh(local, tag string, d digest.Digest, now time.Time) {
	ca.fresh.put(local+":"+tag, d, now, now.Add(ca.tagTTL))
}

// storeManifest validates a fetched manifest and stores it (with tags) in
// local. The blobs it references are fetched when they are asked for.
func (c *Connector) storeManifest(ctx context.Context, ca *cache, local, remote string, fm *fetchedManifest, tags ...string) error {
	m, err := registry.ParseManifest(fm.contentType, fm.body)
	if err != nil {
		return ca.up.bad("manifest %s@%s is invalid: %v", remote, fm.digest, err)
	}
	m.Digest = fm.digest
	if err := c.meta.PutManifest(ctx, local, m, tags...); err != nil {
		return err
	}
	now := c.opts.Now()
	for _, t := range tags {
		ca.markFresh(local, t, fm.digest, now)
	}
	c.log.Info("cached manifest", "registry", ca.name, "repo", local, "upstream", remote, "digest", fm.digest, "tags", tags)
	return nil
}

// serveBlob serves blob d of local (upstream remote), fetching it on a
// miss. It returns an error only before anything was written: a fetch that
// fails while streaming aborts the response.
func (c *Connector) serveBlob(w http.ResponseWriter, r *http.Request, rt registry.Route, ca *cache, local, remote string, d digest.Digest) error {
	ctx := r.Context()
	now := c.opts.Now()
	if ok, err := ca.stored(local, d, now, func() error {
		_, err := c.meta.BlobSize(ctx, local, d)
		return err
	}); err != nil {
		return err
	} else if ok {
		c.forward(w, r, rt, local)
		return nil
	}
	missingKey := local + "@" + d.String()
	if _, ok := ca.missing.get(missingKey, now); ok {
		return ca.notFound("blob %s@%s (remembered)", remote, d)
	}
	_, statErr := c.blobs.Stat(ctx, d)
	stored := statErr == nil
	if r.Method == http.MethodHead && !stored {
		// Answered from the upstream's HEAD: fetching the blob for a HEAD
		// would cost a pull.
		size, err := ca.up.headBlob(ctx, remote, d)
		c.observe(ca, err)
		if err != nil {
			if kindOf(err) == kindNotFound {
				ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
			}
			return err
		}
		h := w.Header()
		h.Set("Docker-Distribution-API-Version", "registry/2.0")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		if size >= 0 {
			h.Set("Content-Length", strconv.FormatInt(size, 10))
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	key := "b\x00" + local + "\x00" + d.String()
	if stored || r.Method == http.MethodHead || r.Header.Get("Range") != "" {
		// Stored for another repository (the upstream need only confirm
		// it has the blob too), or a range of a blob not yet here (it is
		// fetched whole first): no streaming to this client.
		err := c.run(ctx, key, func(ctx context.Context) error {
			return c.fillBlob(ctx, ca, local, remote, d, nil)
		})
		if err != nil {
			if kindOf(err) == kindNotFound {
				ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
			}
			return err
		}
		c.forward(w, r, rt, local)
		return nil
	}
	f, leader := c.flights.join(key)
	if !leader {
		if err := f.wait(ctx); err != nil {
			return err
		}
		c.forward(w, r, rt, local)
		return nil
	}
	// The fill runs in this handler with the connector's context, not the
	// request's: if this client goes away the others still get the blob.
	out := &blobOut{w: w, rc: http.NewResponseController(w), timeout: ca.up.timeout}
	err := c.fillBlob(c.ctx, ca, local, remote, d, out)
	c.flights.land(key, f, err)
	if err == nil {
		if !out.started {
			c.forward(w, r, rt, local) // it was there after all
		}
		return nil
	}
	if kindOf(err) == kindNotFound {
		ca.missing.put(missingKey, struct{}{}, now, now.Add(ca.notFoundTTL))
	}
	if out.started {
		c.log.Warn("blob fetch failed while streaming; aborting the response", "registry", ca.name, "repo", local, "digest", d, "err", err)
		panic(http.ErrAbortHandler)
	}
	return err
}

// blobOut is the client a blob streams to while it is stored.
type blobOut struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
}

// fillBlob fetches blob d of remote into storage and links it to local.
// With out, the bytes also stream to that client, all but the last one as
// they arrive: the last byte is sent only once the digest is verified and
// the blob committed, so a client never sees a complete body of bad
// content. A client that goes away or stalls is dropped; the fill goes on.
func (c *Connector) fillBlob(ctx context.Context, ca *cache, local, remote string, d digest.Digest, out *blobOut) error {
	if _, err := c.meta.BlobSize(ctx, local, d); err == nil {
		return nil // a flight that just landed stored it
	}
	if size, err := c.blobs.Stat(ctx, d); err == nil {
		// The bytes are here for another repository; link them once the
		// upstream confirms this repository has the blob, so that knowing
		// a digest is never enough to read a blob through a cache.
		usize, err := ca.up.headBlob(ctx, remote, d)
		c.observe(ca, err)
		if err != nil {
			return err
		}
		if usize >= 0 && usize != size {
			return ca.up.bad("blob %s@%s has %d bytes upstream, %d stored", remote, d, usize, size)
		}
		return c.link(ctx, local, d, size)
	}
	start := time.Now()
	resp, err := ca.up.getBlob(ctx, remote, d)
	c.observe(ca, err)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := &readErr{r: resp.Body}
	var sink io.Writer = io.Discard
	var hb *holdBack
	if out != nil {
		h := out.w.Header()
		h.Set("Docker-Distribution-API-Version", "registry/2.0")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Etag", `"`+d.String()+`"`)
		if resp.ContentLength >= 0 {
			h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		out.w.WriteHeader(http.StatusOK)
		out.started = true
		hb = &holdBack{out: out}
		hb.flush()
		sink = hb
	}
	size, err := c.blobs.Put(ctx, local, d, io.TeeReader(body, sink))
	switch {
	case errors.Is(err, storage.ErrDigestMismatch):
		return ca.up.bad("blob %s@%s: %v", remote, d, err)
	case err != nil && body.err != nil:
		return ca.up.fail(ctx, fmt.Errorf("reading blob %s@%s: %w", remote, d, body.err))
	case err != nil:
		return err
	}
	if err := c.link(ctx, local, d, size); err != nil {
		return err
	}
	if hb != nil {
		hb.release()
	}
	c.log.Info("cached blob", "registry", ca.name, "repo", local, "digest", d, "bytes", size,
		"duration", time.Since(start).Round(time.Millisecond), "streamed", out != nil)
	return nil
}

// link records that local may serve blob d, whose bytes are in storage.
// It is the one place a cache links blobs, so that a check that the bytes
// are still there when the link is made (against garbage collection) goes
// here.
func (c *Connector) link(ctx context.Context, local string, d digest.Digest, size int64) error {
	return c.meta.PutBlob(ctx, local, d, size)
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

// holdBack writes to a client all but the last byte it has been given. It
// never fails: a client that cannot keep up is dropped.
type holdBack struct {
	out  *blobOut
	last [1]byte
	have bool
	dead bool
}

func (h *holdBack) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 || h.dead {
		return n, nil
	}
	_ = h.out.rc.SetWriteDeadline(time.Now().Add(h.out.timeout))
	if h.have {
		if _, err := h.out.w.Write(h.last[:]); err != nil {
			h.dead = true
			return n, nil
		}
	}
	if n > 1 {
		if _, err := h.out.w.Write(p[:n-1]); err != nil {
			h.dead = true
			return n, nil
		}
	}
	h.last[0], h.have = p[n-1], true
	h.flush()
	return n, nil
}

func (h *holdBack) flush() {
	if !h.dead && h.out.rc.Flush() != nil {
		h.dead = true
	}
}

// release sends the byte held back.
func (h *holdBack) release() {
	if h.dead || !h.have {
		return
	}
	if _, err := h.out.w.Write(h.last[:]); err != nil {
		h.dead = true
		return
	}
	h.flush()
	_ = h.out.rc.SetWriteDeadline(time.Time{})
}

// cacheTags returns the tags of local: the cached ones and the upstream's.
// stale reports that the upstream could not be asked.
func (c *Connector) cacheTags(ctx context.Context, ca *cache, local, remote string) (tags []string, stale bool, err error) {
	cached, err := c.meta.Tags(ctx, local, "", -1)
	haveRepo := err == nil
	if err != nil && !isNotFound(err) {
		return nil, false, err
	}
	upTags, err := c.upstreamTags(ctx, ca, local, remote)
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

func (c *Connector) upstreamTags(ctx context.Context, ca *cache, local, remote string) ([]string, error) {
	now := c.opts.Now()
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
	c.observe(ca, err)
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
func (c *Connector) upstreamCatalog(ctx context.Context, ca *cache) []string {
	if ca.catalogTTL <= 0 {
		return nil
	}
	ca.catalogMu.Lock()
	defer ca.catalogMu.Unlock()
	now := c.opts.Now()
	if now.Before(ca.catalogUntil) || ca.health.isDown() {
		return ca.catalog
	}
	ca.catalogUntil = now.Add(ca.catalogTTL)
	names, err := ca.up.list(ctx, "/v2/_catalog", "repositories")
	if err != nil {
		c.log.Info("upstream catalog unavailable", "registry", ca.name, "upstream", ca.up.name, "err", err)
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
