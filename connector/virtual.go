package connector

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// member is one member of a virtual registry for one request: the entry
// and the repository name there.
type member struct {
	e      *entry
	name   string // local name in the member
	remote string // upstream name, for a cache member
}

// members returns the members of virtual e for rest (the name without e's
// prefix), in order. Cache members whose allow and deny lists exclude the
// name are left out.
func (c *Connector) members(e *entry, rest string) []member {
	out := make([]member, 0, len(e.member))
	for _, m := range e.member {
		mm := member{e: m, name: m.prefix + rest}
		if !registry.ValidName(mm.name) {
			continue
		}
		if m.cache != nil {
			remote, ok := m.cache.remoteName(rest)
			if !ok {
				continue
			}
			mm.remote = remote
		}
		out = append(out, mm)
	}
	return out
}

// serveVirtual answers a request for a virtual registry's name: reads try
// the members in order, writes go to the push target.
func (c *Connector) serveVirtual(w http.ResponseWriter, r *http.Request, rt registry.Route, e *entry, name string) {
	rest := strings.TrimPrefix(name, e.prefix)
	if rt.Access == registry.AccessPush || rt.Access == registry.AccessDelete {
		if !c.authorize(w, r, rt) {
			return
		}
		if e.pushTo == nil {
			c.writeError(w, r, &registry.Error{Code: registry.ErrDenied,
				Message: fmt.Sprintf("%s is in %s, a virtual registry without a push target (pushTo): it is read-only", rt.Name, e.name)})
			return
		}
		target := e.pushTo.prefix + rest
		if !registry.ValidName(target) {
			c.writeError(w, r, &registry.Error{Code: registry.ErrNameInvalid,
				Message: fmt.Sprintf("%s would be stored as %s, which is not a valid repository name", rt.Name, target),
				Detail:  map[string]string{"name": rt.Name}})
			return
		}
		if rt.Kind == registry.KindUploadStart && r.Method == http.MethodPost {
			if r2, ok := c.rewriteMount(r); ok {
				r = r2
			}
		}
		c.forward(w, r, rt, target)
		return
	}
	if !c.authorize(w, r, rt) {
		return
	}
	ms := c.members(e, rest)
	if len(ms) == 0 {
		c.writeError(w, r, &registry.Error{Code: registry.ErrNameUnknown,
			Message: fmt.Sprintf("no member of %s serves %s", e.name, rt.Name), Detail: map[string]string{"name": rt.Name}})
		return
	}
	switch rt.Kind {
	case registry.KindManifest:
		c.virtualManifest(w, r, rt, ms)
	case registry.KindBlob:
		c.virtualBlob(w, r, rt, ms)
	case registry.KindTags:
		c.virtualTags(w, r, rt, ms)
	default:
		// Referrers: those of the first member that has the repository.
		for _, m := range ms {
			if _, err := c.meta.Tags(r.Context(), m.name, "", 0); err == nil {
				c.forward(w, r, rt, m.name)
				return
			}
		}
		c.forward(w, r, rt, ms[0].name)
	}
}

// holds reports whether member m stores content d; check looks it up.
func (c *Connector) holds(ctx context.Context, m member, d digest.Digest, check func() error) bool {
	if m.e.cache != nil {
		ok, _ := m.e.cache.stored(m.name, d, c.opts.Now(), check)
		return ok
	}
	return check() == nil
}

// virtualManifest serves a manifest from the first member that has it.
// By digest, content held locally by any member is served before an
// upstream is asked (it is the same content); by tag, the members' order
// decides.
func (c *Connector) virtualManifest(w http.ResponseWriter, r *http.Request, rt registry.Route, ms []member) {
	ctx := r.Context()
	ref := rt.Ref
	byDigest := strings.Contains(ref, ":")
	if byDigest && storage.ValidateDigest(digest.Digest(ref)) != nil || !byDigest && !registry.ValidTag(ref) {
		c.forward(w, r, rt, ms[0].name) // the registry explains what is wrong
		return
	}
	if byDigest {
		for _, m := range ms {
			if c.holds(ctx, m, digest.Digest(ref), func() error {
				_, err := c.meta.GetManifest(ctx, m.name, digest.Digest(ref))
				return err
			}) {
				c.forward(w, r, rt, m.name)
				return
			}
		}
	}
	// Caches known to be down are asked last: they answer only if they
	// came back, and waiting for them first would delay every read. A tag
	// cached in one keeps its place in the order (it is served stale).
	var firstErr error
	try := func(m member) bool {
		stale, err := c.ensureManifest(ctx, m.e.cache, m.name, m.remote, ref)
		if err == nil {
			if stale {
				w.Header().Set("Warning", staleWarning)
			}
			c.forward(w, r, rt, m.name)
			return true
		}
		if !isNotFound(err) && firstErr == nil {
			firstErr = err
		}
		return false
	}
	var down []member
	for _, m := range ms {
		if m.e.cache == nil {
			if byDigest {
				continue // looked at above
			}
			if _, err := c.meta.ResolveTag(ctx, m.name, ref); err == nil {
				c.forward(w, r, rt, m.name)
				return
			} else if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		if m.e.cache.health.isDown() {
			if _, err := c.meta.ResolveTag(ctx, m.name, ref); byDigest || err != nil {
				down = append(down, m)
				continue
			}
		}
		if try(m) {
			return
		}
	}
	for _, m := range down {
		if try(m) {
			return
		}
	}
	if firstErr != nil {
		c.fail(w, r, firstErr, registry.ErrManifestUnknown, "manifest "+rt.Name+":"+ref)
		return
	}
	c.writeError(w, r, &registry.Error{Code: registry.ErrManifestUnknown,
		Message: fmt.Sprintf("manifest %s of %s is unknown to every member", ref, rt.Name)})
}

// virtualBlob serves a blob from a member that holds it, or fetches it
// through the first cache member whose upstream has it.
func (c *Connector) virtualBlob(w http.ResponseWriter, r *http.Request, rt registry.Route, ms []member) {
	ctx := r.Context()
	d := digest.Digest(rt.Ref)
	if storage.ValidateDigest(d) != nil {
		c.forward(w, r, rt, ms[0].name)
		return
	}
	for _, m := range ms {
		if c.holds(ctx, m, d, func() error {
			_, err := c.meta.BlobSize(ctx, m.name, d)
			return err
		}) {
			c.forward(w, r, rt, m.name)
			return
		}
	}
	// Caches known to be down are asked last.
	var caches, down []member
	for _, m := range ms {
		switch {
		case m.e.cache == nil:
		case m.e.cache.health.isDown():
			down = append(down, m)
		default:
			caches = append(caches, m)
		}
	}
	var firstErr error
	for _, m := range append(caches, down...) {
		err := c.serveBlob(w, r, rt, m.e.cache, m.name, m.remote, d)
		if err == nil || ctx.Err() != nil {
			return
		}
		if !isNotFound(err) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		c.fail(w, r, firstErr, registry.ErrBlobUnknown, "blob "+rt.Name+"@"+rt.Ref)
		return
	}
	c.writeError(w, r, &registry.Error{Code: registry.ErrBlobUnknown,
		Message: fmt.Sprintf("blob %s of %s is unknown to every member", rt.Ref, rt.Name)})
}

// virtualTags lists the union of the members' tags.
func (c *Connector) virtualTags(w http.ResponseWriter, r *http.Request, rt registry.Route, ms []member) {
	ctx := r.Context()
	var all []string
	known, stale := false, false
	var firstErr error
	for _, m := range ms {
		if m.e.cache == nil {
			tags, err := c.meta.Tags(ctx, m.name, "", -1)
			if err == nil {
				known = true
				all = append(all, tags...)
			} else if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		tags, st, err := c.cacheTags(ctx, m.e.cache, m.name, m.remote)
		if err == nil {
			known = true
			stale = stale || st
			all = append(all, tags...)
		} else if !isNotFound(err) && firstErr == nil {
			firstErr = err
		}
	}
	if !known {
		if firstErr != nil {
			c.fail(w, r, firstErr, registry.ErrNameUnknown, "repository "+rt.Name)
			return
		}
		c.writeError(w, r, &registry.Error{Code: registry.ErrNameUnknown,
			Message: fmt.Sprintf("repository %s is unknown to every member", rt.Name), Detail: map[string]string{"name": rt.Name}})
		return
	}
	if stale || firstErr != nil {
		w.Header().Set("Warning", staleWarning)
	}
	c.writeTags(w, r, rt.Name, all)
}

// rewriteMount points a cross-repository mount from a virtual name at the
// member that holds the blob, so the registry can link it.
func (c *Connector) rewriteMount(r *http.Request) (*http.Request, bool) {
	q := r.URL.Query()
	from, mount := q.Get("from"), q.Get("mount")
	if from == "" || mount == "" || !registry.ValidName(from) {
		return nil, false
	}
	e := c.owner(from)
	d := digest.Digest(mount)
	if e == nil || e.typ != TypeVirtual || storage.ValidateDigest(d) != nil || !c.mayMount(r, from) {
		return nil, false
	}
	for _, m := range c.members(e, strings.TrimPrefix(from, e.prefix)) {
		if _, err := c.meta.BlobSize(r.Context(), m.name, d); err == nil {
			q.Set("from", m.name)
			u := *r.URL
			u.RawQuery = q.Encode()
			r2 := r.WithContext(r.Context())
			r2.URL = &u
			return r2, true
		}
	}
	return nil, false
}
