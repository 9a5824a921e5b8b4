package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berthhq/berth/metadata"
)

// Page sizes for listings.
const (
	// defaultCatalogPage is the catalog page size when the client names none.
	defaultCatalogPage = 1000
	// maxPage bounds n, so one request cannot ask for an unbounded answer.
	maxPage = 10000
)

// pagination reads n and last. n is -1 when absent.
func pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", errf(ErrPaginationInvalid, "n must be a non-negative integer, not %q", s)
		}
		n = min(v, maxPage)
	}
	return n, last, nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

// setNextLink sets the Link header pointing at the page after last.
func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{}
	q.Set("last", last)
	q.Set("n", strconv.Itoa(n))
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func (reg *Registry) tags(w http.ResponseWriter, r *http.Request, rt Route) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	repo, err := reg.resolve(rt)
	if err != nil {
		return err
	}
	// One more than asked tells whether there is a next page.
	ask := n
	if n >= 0 {
		ask = n + 1
	}
	list, err := repo.Tags(r.Context(), last, ask)
	if err != nil {
		return metaErr(err, ErrNameUnknown, rt.Name)
	}
	tags := list.Tags
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			setNextLink(w, "/v2/"+rt.Name+"/tags/list", n, tags[n-1])
		}
	}
	if tags == nil {
		tags = []string{}
	}
	if list.Stale {
		w.Header().Set("Warning", StaleWarning)
	}
	return writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Name, tags})
}

func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request, _ Route) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	if n < 0 {
		n = defaultCatalogPage
	}
	repos, err := reg.resolver.Catalog(r.Context(), last, n+1, reg.visible(r))
	if err != nil {
		return err
	}
	if len(repos) > n {
		repos = repos[:n]
		if n > 0 {
			setNextLink(w, "/v2/_catalog", n, repos[n-1])
		}
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// visible returns the filter of listings: the repositories the caller of
// r may pull.
func (reg *Registry) visible(r *http.Request) func(string) bool {
	if reg.opts.MayPull == nil {
		return func(string) bool { return true }
	}
	return func(name string) bool { return reg.opts.MayPull(r, name) }
}

// Bounds of a referrers page. A client pages through the rest with the
// Link header, as the distribution spec allows; without the bounds, a few
// referrers with large annotations would make one answer (and the
// memory behind it) as large as all of them.
const (
	referrersPageCount = 1000
	referrersPageBytes = 1 << 20
)

func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Ref)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	query := metadata.ReferrersQuery{ArtifactType: q.Get("artifactType"), Limit: referrersPageCount, MaxBytes: referrersPageBytes}
	if last := q.Get("last"); last != "" {
		after, err := parseDigest(last)
		if err != nil {
			return errf(ErrDigestInvalid, "last must be the digest the previous page ended with, not %q", last)
		}
		query.After = after
	}
	repo, err := reg.resolve(rt)
	if err != nil {
		return err
	}
	refs, more, err := repo.Referrers(r.Context(), d, query)
	if err != nil && !errors.Is(err, metadata.ErrRepositoryNotFound) && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	h := w.Header()
	if query.ArtifactType != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if more && len(refs) > 0 {
		next := url.Values{}
		next.Set("last", refs[len(refs)-1].Digest.String())
		if query.ArtifactType != "" {
			next.Set("artifactType", query.ArtifactType)
		}
		h.Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, "/v2/"+rt.Name+"/referrers/"+d.String(), next.Encode()))
	}
	return writeReferrers(w, r, refs)
}

// writeReferrers sends a page of referrers as an image index, encoding
// one descriptor at a time rather than the whole index at once.
func writeReferrers(w http.ResponseWriter, r *http.Request, refs []metadata.Descriptor) error {
	w.Header().Set("Content-Type", MediaTypeOCIIndex)
	if len(refs) == 0 {
		return writeJSON(w, r, MediaTypeOCIIndex, struct {
			SchemaVersion int                   `json:"schemaVersion"`
			MediaType     string                `json:"mediaType"`
			Manifests     []metadata.Descriptor `json:"manifests"`
		}{2, MediaTypeOCIIndex, []metadata.Descriptor{}})
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[`)
	enc := json.NewEncoder(bw)
	for i := range refs {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		if err := enc.Encode(&refs[i]); err != nil {
			return nil // headers are out: the client sees a cut body
		}
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
	return nil
}

func (reg *Registry) pingV1(w http.ResponseWriter, r *http.Request, _ Route) error {
	w.Header().Set("X-Docker-Registry-Standalone", "true")
	return writeJSON(w, r, "application/json", struct {
		Standalone bool `json:"standalone"`
	}{true})
}

// SearchResult is one repository a search found, as the Docker daemon's
// search API answers it, with where the name comes from: Docker's fields
// first, then source and registry, which Docker's clients ignore.
type SearchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
	// Source is SourceHosted, SourceCached, SourceUpstream or
	// SourceVirtual.
	Source string `json:"source,omitempty"`
	// Registry names the configured registry that serves the name
	// (empty for the implicit hosted one).
	Registry string `json:"registry,omitempty"`
}

// Sources of search results.
const (
	// SourceHosted: pushed to berth.
	SourceHosted = "hosted"
	// SourceCached: a cache holds content of it.
	SourceCached = "cached"
	// SourceUpstream: an upstream has it (its catalog or search); nothing
	// is cached yet.
	SourceUpstream = "upstream"
	// SourceVirtual: served by a virtual registry.
	SourceVirtual = "virtual"
)

// ResultSearcher is a Resolver whose searches say more than names (where
// each comes from, an upstream's description and stars). The search API
// uses it when the Resolver offers it.
type ResultSearcher interface {
	// SearchResults is Search with the results described.
	SearchResults(ctx context.Context, term string, n int, visible func(name string) bool) ([]SearchResult, error)
}

// searchV1 answers the Docker daemon's search API with repositories whose
// name contains the term.
func (reg *Registry) searchV1(w http.ResponseWriter, r *http.Request, _ Route) error {
	q := r.URL.Query()
	term := q.Get("q")
	n := 25
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return errf(ErrPaginationInvalid, "n must be a positive integer, not %q", s)
		}
		n = min(v, 100)
	}
	var results []SearchResult
	if rs, ok := reg.resolver.(ResultSearcher); ok {
		found, err := rs.SearchResults(r.Context(), term, n, reg.visible(r))
		if err != nil {
			return err
		}
		results = found
	} else {
		names, err := reg.resolver.Search(r.Context(), term, n, reg.visible(r))
		if err != nil {
			return err
		}
		for _, name := range names {
			results = append(results, SearchResult{Name: name, Source: SourceHosted})
		}
	}
	if results == nil {
		results = []SearchResult{}
	}
	return writeJSON(w, r, "application/json", struct {
		NumPages   int            `json:"num_pages"`
		NumResults int            `json:"num_results"`
		PageSize   int            `json:"page_size"`
		Page       int            `json:"page"`
		Query      string         `json:"query"`
		Results    []SearchResult `json:"results"`
	}{1, len(results), n, 1, term, results})
}
