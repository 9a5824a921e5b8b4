package connector

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/registry"
)

// maxSearchScan bounds the names a search examines per source.
const maxSearchScan = 10000

// source lists, in order, up to need names after last that a listing
// shows. Every source is sorted, so the first need names of the union are
// among the first need names of each source.
type source func(ctx context.Context, last string, need int) ([]string, error)

// sliceSource lists names of a sorted list under inPrefix as names under
// outPrefix.
func sliceSource(list []string, inPrefix, outPrefix string, keep func(in, out string) bool) source {
	return func(_ context.Context, last string, need int) ([]string, error) {
		start, none := registry.ListStart(last, outPrefix, inPrefix)
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

// storedSource lists stored names under inPrefix as names under outPrefix
// (registry.StoredNames).
func (c *Connector) storedSource(inPrefix, outPrefix string, scanMax int, keep func(in, out string) bool) source {
	return func(ctx context.Context, last string, need int) ([]string, error) {
		return registry.StoredNames(ctx, c.env.meta, inPrefix, outPrefix, last, need, scanMax, keep)
	}
}

// sources returns the sources of a listing: stored repositories (those of
// virtual prefixes are not served under their own names), each cache's
// upstream catalog, and for each virtual registry its members' names
// under its prefix. With search set, only names containing term count,
// and scans are bounded.
func (c *Connector) sources(ctx context.Context, visible func(string) bool, search bool, term string) []source {
	lower := strings.ToLower(term)
	shown := func(name string) bool { return (!search || strings.Contains(name, lower)) && visible(name) }
	ownedBy := func(name string, e *entry) bool { return c.owner(name) == e }
	servedAsIs := func(name string) bool {
		e := c.owner(name)
		return (e == nil || e.typ != TypeVirtual) && shown(name)
	}
	scanMax := 0
	var srcs []source
	if search {
		scanMax = maxSearchScan
		// Stored names are searched by the metadata store itself.
		srcs = append(srcs, func(ctx context.Context, _ string, need int) ([]string, error) {
			return registry.SearchStored(ctx, c.env.meta, term, need, servedAsIs)
		})
	} else {
		srcs = append(srcs, c.storedSource("", "", 0, func(in, _ string) bool { return servedAsIs(in) }))
	}
	catalogs := map[*entry][]string{}
	for _, e := range c.entries {
		if e.cache == nil {
			continue
		}
		list := e.cache.upstreamCatalog(ctx)
		catalogs[e] = list
		srcs = append(srcs, sliceSource(list, "", "", func(in, _ string) bool { return ownedBy(in, e) && shown(in) }))
	}
	for _, v := range c.entries {
		if v.typ != TypeVirtual {
			continue
		}
		for _, m := range v.member {
			keep := func(in, out string) bool {
				return ownedBy(in, m) && ownedBy(out, v) && registry.ValidName(out) && shown(out)
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
	if all == nil {
		all = []string{}
	}
	return all, nil
}

// Catalog implements registry.Resolver over stored, upstream and virtual
// names, with keyset pagination over the merged, sorted set.
func (c *Connector) Catalog(ctx context.Context, last string, n int, visible func(string) bool) ([]string, error) {
	if !c.active {
		return registry.Hosted{Meta: c.env.meta}.Catalog(ctx, last, n, visible)
	}
	return merge(ctx, c.sources(ctx, visible, false, ""), last, n)
}

// Search implements registry.Resolver over the same names as the catalog:
// those containing the term.
// Names an upstream's search API found come after them, up to n.
func (c *Connector) Search(ctx context.Context, term string, n int, visible func(string) bool) ([]string, error) {
	if !c.active {
		return registry.Hosted{Meta: c.env.meta}.Search(ctx, term, n, visible)
	}
	results, err := c.SearchResults(ctx, term, n, visible)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(results))
	for i, r := range results {
		names[i] = r.Name
	}
	return names, nil
}

// maxSearchTerm bounds the terms sent to an upstream's search.
const maxSearchTerm = 256

// maxUpstreamSearch bounds how long a search waits for an upstream's
// search API.
const maxUpstreamSearch = 5 * time.Second

// upstreamSearch asks each cache whose provider searches (Docker Hub) for
// term, and returns what it found as local names that visible accepts.
func (c *Connector) upstreamSearch(ctx context.Context, term string, n int, visible func(string) bool) []registry.SearchResult {
	if term == "" || len(term) > maxSearchTerm {
		return nil
	}
	var out []registry.SearchResult
	for _, e := range c.entries {
		ca := e.cache
		if ca == nil || ca.health.isDown() {
			continue
		}
		s, ok := ca.up.provider.(provider.Searcher)
		if !ok {
			continue
		}
		key := fmt.Sprint(n) + "\x00" + term
		now := c.env.now()
		found, ok := ca.searches.get(key, now)
		if !ok {
			sctx, cancel := context.WithTimeout(ctx, min(maxUpstreamSearch, ca.up.timeout))
			var err error
			found, err = s.Search(sctx, term, n)
			cancel()
			if err != nil {
				c.env.log.Info("upstream search failed", "registry", ca.name, "err", err)
				continue
			}
			ca.searches.put(key, found, now, now.Add(searchTTL))
		}
		for _, r := range found {
			rest, ok := ca.localRest(r.Name)
			if !ok {
				continue
			}
			name := ca.prefix + rest
			if !registry.ValidName(name) || c.owner(name) != e || !visible(name) {
				continue
			}
			out = append(out, registry.SearchResult{Name: name, Description: r.Description, StarCount: r.Stars,
				IsOfficial: r.Official, IsAutomated: r.Automated, Source: registry.SourceUpstream, Registry: ca.name})
		}
	}
	return out
}

// SearchResults implements registry.ResultSearcher: hosted, cached and
// virtual names and the upstreams' catalogs (as Search), then what the
// upstreams' search APIs found, each marked with its source; up to n.
func (c *Connector) SearchResults(ctx context.Context, term string, n int, visible func(string) bool) ([]registry.SearchResult, error) {
	var names []string
	var err error
	if c.active {
		names, err = merge(ctx, c.sources(ctx, visible, true, term), "", n)
	} else {
		names, err = registry.Hosted{Meta: c.env.meta}.Search(ctx, term, n, visible)
	}
	if err != nil {
		return nil, err
	}
	out := make([]registry.SearchResult, 0, len(names))
	at := map[string]int{}
	for _, name := range names {
		at[name] = len(out)
		out = append(out, c.describe(ctx, name))
	}
	if !c.active {
		return out, nil
	}
	for _, r := range c.upstreamSearch(ctx, term, n, visible) {
		if i, ok := at[r.Name]; ok {
			// Known locally: the upstream says what it is.
			src := out[i].Source
			out[i] = r
			out[i].Source = src
			continue
		}
		if len(out) >= n {
			break
		}
		at[r.Name] = len(out)
		out = append(out, r)
	}
	return out, nil
}

// describe says where a listed name comes from.
func (c *Connector) describe(ctx context.Context, name string) registry.SearchResult {
	r := registry.SearchResult{Name: name, Source: registry.SourceHosted}
	e := c.owner(name)
	if e == nil {
		return r
	}
	r.Registry = e.name
	switch e.typ {
	case TypeVirtual:
		r.Source = registry.SourceVirtual
	case TypeCache:
		r.Source = registry.SourceUpstream
		if _, err := c.env.meta.Tags(ctx, name, "", 0); err == nil {
			r.Source = registry.SourceCached
		}
	}
	return r
}
