package connector

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

// member is one member of a virtual registry for one repository: the
// entry and the repository name there.
type member struct {
	e      *entry
	name   string // stored name in the member
	remote string // upstream name, for a cache member
}

// virtualRepo is a repository of a virtual registry: reads try the
// members in order, writes go to the push target.
type virtualRepo struct {
	meta metadata.ReadWriter
	e    *entry
	name string // the virtual name, as served
	rest string // name without the virtual prefix
	ms   []member
}

// virtualRepository returns the repository name of virtual registry e.
// Cache members whose allow and deny lists exclude the name, and members
// under which the name would not be valid, are left out.
func (c *Connector) virtualRepository(e *entry, name string) *virtualRepo {
	rest := strings.TrimPrefix(name, e.prefix)
	v := &virtualRepo{meta: c.env.meta, e: e, name: name, rest: rest}
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
		v.ms = append(v.ms, mm)
	}
	return v
}

// none reports reads of a name no member serves.
func (v *virtualRepo) none() error {
	if len(v.ms) > 0 {
		return nil
	}
	return nameUnknown(v.name, "no member of %s serves %s", v.e.name, v.name)
}

// holds reports whether member m stores content d, and its size; check
// looks it up.
func (v *virtualRepo) holds(m member, kind string, d digest.Digest, check func() (int64, error)) (bool, int64) {
	if m.e.cache != nil {
		ok, n, _ := m.e.cache.stored(m.name, kind, d, m.e.cache.env.now(), check)
		return ok, n
	}
	n, err := check()
	return err == nil, n
}

// Manifest implements registry.Repository. By digest, content held
// locally by any member is served before an upstream is asked (it is the
// same content); by tag, the members' order decides. Caches known to be
// down are asked last: they answer only if they came back, and waiting for
// them first would delay every read. A tag cached in one keeps its place
// in the order (it is served stale).
func (v *virtualRepo) Manifest(ctx context.Context, ref string) (*registry.Manifest, error) {
	if err := v.none(); err != nil {
		return nil, err
	}
	byDigest := strings.Contains(ref, ":")
	from := func(m member, stale bool) (*registry.Manifest, error) {
		mf, err := registry.HostedRepository(v.meta, m.name).Manifest(ctx, ref)
		if err != nil {
			return nil, err
		}
		mf.Stale = stale
		return mf, nil
	}
	if byDigest {
		d := digest.Digest(ref)
		for _, m := range v.ms {
			if ok, _ := v.holds(m, presentManifest, d, func() (int64, error) {
				_, err := v.meta.GetManifest(ctx, m.name, d)
				return -1, err
			}); ok {
				return from(m, false)
			}
		}
	}
	var firstErr error
	try := func(m member) (*registry.Manifest, bool) {
		stale, err := m.e.cache.ensureManifest(ctx, m.name, m.remote, ref)
		if err == nil {
			if mf, err := from(m, stale); err == nil {
				return mf, true
			}
			return nil, false
		}
		if !isNotFound(err) && firstErr == nil {
			firstErr = err
		}
		return nil, false
	}
	var down []member
	for _, m := range v.ms {
		if m.e.cache == nil {
			if byDigest {
				continue // looked at above
			}
			if _, err := v.meta.ResolveTag(ctx, m.name, ref); err == nil {
				return from(m, false)
			} else if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		if m.e.cache.health.isDown() {
			if _, err := v.meta.ResolveTag(ctx, m.name, ref); byDigest || err != nil {
				down = append(down, m)
				continue
			}
		}
		if mf, ok := try(m); ok {
			return mf, nil
		}
	}
	for _, m := range down {
		if mf, ok := try(m); ok {
			return mf, nil
		}
	}
	if firstErr != nil {
		return nil, wireError(firstErr, registry.ErrManifestUnknown, "manifest "+v.name+":"+ref)
	}
	return nil, &registry.Error{Code: registry.ErrManifestUnknown,
		Message: fmt.Sprintf("manifest %s of %s is unknown to every member", ref, v.name)}
}

// Blob implements registry.Repository: from a member that holds it, or
// through the first cache member whose upstream has it (caches known to be
// down last).
func (v *virtualRepo) Blob(ctx context.Context, d digest.Digest, head, ranged bool) (*registry.Blob, error) {
	if err := v.none(); err != nil {
		return nil, err
	}
	for _, m := range v.ms {
		if ok, size := v.holds(m, presentBlob, d, func() (int64, error) { return v.meta.BlobSize(ctx, m.name, d) }); ok {
			return &registry.Blob{Size: size, Stored: true}, nil
		}
	}
	var caches, down []member
	for _, m := range v.ms {
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
		b, err := m.e.cache.blob(ctx, m.name, m.remote, d, head, ranged)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !isNotFound(err) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, wireError(firstErr, registry.ErrBlobUnknown, "blob "+v.name+"@"+d.String())
	}
	return nil, &registry.Error{Code: registry.ErrBlobUnknown,
		Message: fmt.Sprintf("blob %s of %s is unknown to every member", d, v.name)}
}

// Tags implements registry.Repository: the union of the members' tags.
func (v *virtualRepo) Tags(ctx context.Context, last string, n int) (*registry.TagList, error) {
	if err := v.none(); err != nil {
		return nil, err
	}
	var all []string
	known, stale := false, false
	var firstErr error
	for _, m := range v.ms {
		if m.e.cache == nil {
			tags, err := v.meta.Tags(ctx, m.name, "", -1)
			if err == nil {
				known = true
				all = append(all, tags...)
			} else if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		tags, st, err := m.e.cache.tags(ctx, m.name, m.remote)
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
			return nil, wireError(firstErr, registry.ErrNameUnknown, "repository "+v.name)
		}
		return nil, nameUnknown(v.name, "repository %s is unknown to every member", v.name)
	}
	return &registry.TagList{Tags: registry.PageOf(all, last, n), Stale: stale || firstErr != nil}, nil
}

// Referrers implements registry.Repository: those of every member (a
// cache's from its upstream too), merged.
func (v *virtualRepo) Referrers(ctx context.Context, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	if err := v.none(); err != nil {
		return nil, false, err
	}
	var all []metadata.Descriptor
	for _, m := range v.ms {
		if m.e.cache != nil {
			if list, err := m.e.cache.upstreamReferrers(ctx, m.name, m.remote, d); err == nil {
				all = append(all, list...)
			} else if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
		}
		list, err := allReferrers(ctx, v.meta, m.name, d)
		if err != nil {
			return nil, false, err
		}
		all = append(all, list...)
	}
	page, more := pageReferrers(all, q)
	return page, more, nil
}

// StoredBlob implements registry.Repository: the first member that stores
// the blob.
func (v *virtualRepo) StoredBlob(ctx context.Context, d digest.Digest) (string, int64, error) {
	for _, m := range v.ms {
		if size, err := v.meta.BlobSize(ctx, m.name, d); err == nil {
			return m.name, size, nil
		}
	}
	return "", 0, metadata.ErrNotFound
}

// Target implements registry.Repository: the push target's repository.
func (v *virtualRepo) Target(registry.Access) (*registry.Target, error) {
	if v.e.pushTo == nil {
		return nil, &registry.Error{Code: registry.ErrDenied,
			Message: fmt.Sprintf("%s is in %s, a virtual registry without a push target (pushTo): it is read-only", v.name, v.e.name)}
	}
	return &registry.Target{Name: v.e.pushTo.prefix + v.rest}, nil
}
