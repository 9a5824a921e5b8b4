package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/berthhq/berth/registry"
)

// Page sizes, as the registry has them.
const (
	defaultCatalogPage = 1000
	maxPage            = 10000
	defaultSearchPage  = 25
	maxSearchPage      = 100
	// maxSearchScan bounds the names a search examines per source.
	maxSearchScan = 10000
	// storedBatch is how many names are read from metadata at a time.
	storedBatch = 500
)

func pagination(r *http.Request) (n int, last string, err *registry.Error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", &registry.Error{Code: registry.ErrPaginationInvalid, Message: fmt.Sprintf("n must be a non-negative integer, not %q", s)}
		}
		n = min(v, maxPage)
	}
	return n, last, nil
}

func (c *Connector) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.fail(w, r, err, registry.ErrUnknown, "")
		return
	}
	h := w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{}
	q.Set("last", last)
	q.Set("n", strconv.Itoa(n))
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

// writeTags answers a tag list of name from all its tags (any order, with
// duplicates), paginated as the registry paginates.
func (c *Connector) writeTags(w http.ResponseWriter, r *http.Request, name string, all []string) {
	n, last, perr := pagination(r)
	if perr != nil {
		c.writeError(w, r, perr)
		return
	}
	sort.Strings(all)
	tags := compactSorted(all)
	if last != "" {
		tags = tags[sort.Search(len(tags), func(i int) bool { return tags[i] > last }):]
	}
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			setNextLink(w, "/v2/"+name+"/tags/list", n, tags[n-1])
		}
	}
	if tags == nil {
		tags = []string{}
	}
	c.writeJSON(w, r, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

// source lists, in order, up to need names after last that a listing
// shows. Every source is sorted, so the first need names of the union are
// among the first need names of each source.
type source func(ctx context.Context, last string, need int) ([]string, error)

// mapStart translates a listing position in names under outPrefix into
// one under inPrefix: names under outPrefix sort after last exactly when
// their counterparts under inPrefix sort after the result. none reports
// that no name under outPrefix sorts after last.
func mapStart(last, outPrefix, inPrefix string) (start string, none bool) {
	switch {
	case strings.HasPrefix(last, outPrefix):
		return inPrefix + last[len(outPrefix):], false
	case last < outPrefix:
		return inPrefix, false
	}
	return "", true
}

// storedSource lists stored names under inPrefix as names under
// outPrefix, those keep accepts. scanMax (> 0) bounds the names examined.
func (c *Connector) storedSource(inPrefix, outPrefix string, scanMax int, keep func(in, out string) bool) source {
	return func(ctx context.Context, last string, need int) ([]string, error) {
		start, none := mapStart(last, outPrefix, inPrefix)
		if none {
			return nil, nil
		}
		var out []string
		scanned := 0
		for len(out) < need {
			batch, err := c.meta.Repositories(ctx, start, storedBatch)
			if err != nil {
				return nil, err
			}
			for _, in := range batch {
				if !strings.HasPrefix(in, inPrefix) {
					return out, nil // past the names under inPrefix
				}
				if o := outPrefix + in[len(inPrefix):]; keep(in, o) {
					out = append(out, o)
					if len(out) >= need {
						return out, nil
					}
				}
			}
			scanned += len(batch)
			if len(batch) < storedBatch || (scanMax > 0 && scanned >= scanMax) {
				break
			}
			start = batch[len(batch)-1]
		}
		return out, nil
	}
}

// sliceSource lists names of a sorted list under inPrefix as names under
// outPrefix.
func sliceSource(list []string, inPrefix, outPrefix string, keep func(in, out string) bool) source {
	return func(_ context.Context, last string, need int) ([]string, error) {
		start, none := mapStart(last, outPrefix, inPrefix)
		if none {
			return nil, nil
		}
		var out []string
		for i := sort.Search(len(list), func(i int) bool { return list[i] > start }); i < len(list) && len(out) < need; i++ {
			in := list[i]
			if !strings.HasPrefix(in, inPrefix) {
				break
			}
			if o := outPrefix + in[len(inPrefix):]; keep(in, o) {
				out = append(out, o)
			}
		}
		return out, nil
	}
}

// sources returns the sources of the catalog: stored repositories (those
// of virtual prefixes are not served under their own names), each cache's
// upstream catalog, and for each virtual registry its members' names
// under its prefix. With search set, only names containing term count,
// and scans are bounded.
func (c *Connector) sources(ctx context.Context, r *http.Request, search bool, term string) []source {
	lower := strings.ToLower(term)
	visible := func(name string) bool { return (!search || strings.Contains(name, lower)) && c.mayPull(r, name) }
	ownedBy := func(name string, e *entry) bool { return c.owner(name) == e }
	servedAsIs := func(name string) bool {
		e := c.owner(name)
		return (e == nil || e.typ != TypeVirtual) && visible(name)
	}
	scanMax := 0
	var srcs []source
	if search {
		scanMax = maxSearchScan
		// Stored names are searched by the metadata store itself.
		srcs = append(srcs, func(ctx context.Context, _ string, need int) ([]string, error) {
			names, err := c.meta.SearchRepositories(ctx, term, maxSearchScan)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, name := range names {
				if len(out) < need && servedAsIs(name) {
					out = append(out, name)
				}
			}
			return out, nil
		})
	} else {
		srcs = append(srcs, c.storedSource("", "", 0, func(in, _ string) bool { return servedAsIs(in) }))
	}
	catalogs := map[*entry][]string{}
	for _, e := range c.entries {
		if e.cache == nil {
			continue
		}
		list := c.upstreamCatalog(ctx, e.cache)
		catalogs[e] = list
		srcs = append(srcs, sliceSource(list, "", "", func(in, _ string) bool { return ownedBy(in, e) && visible(in) }))
	}
	for _, v := range c.entries {
		if v.typ != TypeVirtual {
			continue
		}
		for _, m := range v.member {
			keep := func(in, out string) bool {
				return ownedBy(in, m) && ownedBy(out, v) && registry.ValidName(out) && visible(out)
			}
			srcs = append(srcs, c.storedSource(m.prefix, v.prefix, scanMax, keep))
			if list, ok := catalogs[m]; ok {
				srcs = append(srcs, sliceSource(list, m.prefix, v.prefix, keep))
			}
		}
	}
	return srcs
}

// merge returns the first need names after last of the union of srcs.
func merge(ctx context.Context, srcs []source, last string, need int) ([]string, error) {
	var all []string
	for _, s := range srcs {
		names, err := s(ctx, last, need)
		if err != nil {
			return nil, err
		}
		all = append(all, names...)
	}
	sort.Strings(all)
	all = compactSorted(all)
	if len(all) > need {
		all = all[:need]
	}
	return all, nil
}

// serveCatalog answers /v2/_catalog over stored, upstream and virtual
// names, with keyset pagination over the merged, sorted set.
func (c *Connector) serveCatalog(w http.ResponseWriter, r *http.Request, rt registry.Route) {
	if !c.authorize(w, r, rt) {
		return
	}
	n, last, perr := pagination(r)
	if perr != nil {
		c.writeError(w, r, perr)
		return
	}
	if n < 0 {
		n = defaultCatalogPage
	}
	ctx := r.Context()
	repos, err := merge(ctx, c.sources(ctx, r, false, ""), last, n+1)
	if err != nil {
		c.fail(w, r, err, registry.ErrUnknown, "")
		return
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
	c.writeJSON(w, r, struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

type searchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// serveSearch answers Docker's /v1/search over the same names as the
// catalog: those containing the term.
func (c *Connector) serveSearch(w http.ResponseWriter, r *http.Request, rt registry.Route) {
	if !c.authorize(w, r, rt) {
		return
	}
	q := r.URL.Query()
	term := q.Get("q")
	n := defaultSearchPage
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			c.writeError(w, r, &registry.Error{Code: registry.ErrPaginationInvalid, Message: fmt.Sprintf("n must be a positive integer, not %q", s)})
			return
		}
		n = min(v, maxSearchPage)
	}
	ctx := r.Context()
	names, err := merge(ctx, c.sources(ctx, r, true, term), "", n)
	if err != nil {
		c.fail(w, r, err, registry.ErrUnknown, "")
		return
	}
	results := make([]searchResult, 0, len(names))
	for _, name := range names {
		results = append(results, searchResult{Name: name})
	}
	c.writeJSON(w, r, struct {
		NumPages   int            `json:"num_pages"`
		NumResults int            `json:"num_results"`
		PageSize   int            `json:"page_size"`
		Page       int            `json:"page"`
		Query      string         `json:"query"`
		Results    []searchResult `json:"results"`
	}{1, len(results), n, 1, term, results})
}
