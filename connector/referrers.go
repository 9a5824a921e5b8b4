package connector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client/transport"
	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
)

// Bounds of referrers lists kept from upstreams.
const (
	maxReferrerLists = 10000
	// maxReferrers bounds the referrers of one subject read from an
	// upstream or the store.
	maxReferrers = 10000
	// maxReferrerPages bounds the pages of an upstream's referrers list.
	maxReferrerPages = 100
)

// referrers lists the manifests whose subject is d at the upstream: its
// referrers API, or, where it has none (404), the index the referrers tag
// schema keeps under the tag sha256-<hex> (as oras and cosign push to
// such registries). A subject without referrers is an empty list.
func (u *upstream) referrers(ctx context.Context, name string, d digest.Digest, maxManifest int64) ([]metadata.Descriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*u.timeout)
	defer cancel()
	resp, err := u.do(ctx, http.MethodGet, "/v2/"+name+"/referrers/"+d.String(), nil, http.Header{"Accept": {mediatype.OCIIndex}}, http.StatusOK)
	var te *transport.Error
	if kindOf(err) == kindNotFound || (errors.As(err, &te) && noReferrersAPI[te.StatusCode]) {
		return u.referrersTag(ctx, name, d, maxManifest)
	}
	if err != nil {
		return nil, err
	}
	var out []metadata.Descriptor
	for page := 0; ; page++ {
		var idx ocispec.Index
		err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&idx)
		resp.Body.Close()
		if err != nil {
			return nil, u.bad("decoding the referrers of %s@%s: %v", name, d, err)
		}
		out = append(out, idx.Manifests...)
		nu, err := transport.NextLink(resp)
		if err != nil || nu == nil || nu.Host != u.base.Host || nu.Scheme != u.base.Scheme ||
			page+1 >= maxReferrerPages || len(out) >= maxReferrers {
			break
		}
		if resp, err = u.doURL(ctx, nu.String()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// noReferrersAPI are the answers (besides 404) of registries that do not
// know the referrers route.
var noReferrersAPI = map[int]bool{http.StatusBadRequest: true, http.StatusMethodNotAllowed: true, http.StatusNotImplemented: true}

// referrersTag reads the referrers tag schema's index of d.
func (u *upstream) referrersTag(ctx context.Context, name string, d digest.Digest, maxManifest int64) ([]metadata.Descriptor, error) {
	tag := d.Algorithm().String() + "-" + d.Encoded()
	fm, err := u.getManifest(ctx, name, tag, maxManifest)
	if kindOf(err) == kindNotFound {
		return []metadata.Descriptor{}, nil
	}
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(fm.body, &idx); err != nil || !mediatype.IsIndex(idx.MediaType) {
		return nil, u.bad("the referrers tag %s of %s is no image index", tag, name)
	}
	return idx.Manifests, nil
}

// upstreamReferrers returns the upstream's referrers of d, kept for the
// tag TTL.
func (ca *cache) upstreamReferrers(ctx context.Context, local, remote string, d digest.Digest) ([]metadata.Descriptor, error) {
	now := ca.env.now()
	key := local + "@" + d.String()
	if list, ok := ca.referrers.get(key, now); ok {
		return list, nil
	}
	if ca.health.isDown() {
		return nil, &upstreamError{kind: kindUnavailable, upstream: ca.up.name, err: errors.New("down since " + ca.health.downSinceString())}
	}
	list, err := ca.up.referrers(ctx, remote, d, ca.env.maxManifest)
	ca.observe(err)
	if err != nil {
		return nil, err
	}
	ca.referrers.put(key, list, now, now.Add(ca.tagTTL))
	return list, nil
}

// Referrers implements registry.Repository: the upstream's referrers
// (its referrers API, or the tag schema's index), with those cached; the
// cached ones alone when the upstream cannot be asked. The referrer
// manifests and their blobs are fetched and cached when a client pulls
// them, like any content.
func (r *cacheRepo) Referrers(ctx context.Context, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	if err := r.refuse(); err != nil {
		return nil, false, err
	}
	cached, err := allReferrers(ctx, r.ca.env.meta, r.local, d)
	if err != nil {
		return nil, false, err
	}
	up, err := r.ca.upstreamReferrers(ctx, r.local, r.remote, d)
	if err != nil && ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	if err != nil && !isNotFound(err) {
		r.ca.env.log.Info("serving cached referrers: the upstream could not be asked", "registry", r.ca.name, "repo", r.local, "subject", d, "err", err)
	}
	page, more := pageReferrers(append(up, cached...), q)
	return page, more, nil
}

// allReferrers lists every stored referrer of d in repo (up to
// maxReferrers).
func allReferrers(ctx context.Context, meta metadata.Reader, repo string, d digest.Digest) ([]metadata.Descriptor, error) {
	list, _, err := meta.Referrers(ctx, repo, d, metadata.ReferrersQuery{Limit: maxReferrers})
	if errors.Is(err, metadata.ErrRepositoryNotFound) || errors.Is(err, metadata.ErrNotFound) {
		return nil, nil
	}
	return list, err
}

// pageReferrers returns the page q selects of list (any order, with
// duplicates): each digest once (the first seen wins), ordered by digest
// as the stores order them, of q's artifact type, after q.After, within
// q's bounds.
func pageReferrers(list []metadata.Descriptor, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool) {
	seen := map[digest.Digest]bool{}
	var all []metadata.Descriptor
	for _, d := range list {
		if seen[d.Digest] || d.Digest.Validate() != nil {
			continue
		}
		seen[d.Digest] = true
		if q.ArtifactType != "" && d.ArtifactType != q.ArtifactType {
			continue
		}
		if q.After != "" && strings.Compare(string(d.Digest), string(q.After)) <= 0 {
			continue
		}
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b metadata.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	page := []metadata.Descriptor{}
	used := 0
	for i, d := range all {
		size := metadata.DescriptorSize(&all[i])
		if !q.Fits(len(page), used, size) {
			return page, true
		}
		page = append(page, d)
		used += size
	}
	return page, false
}
