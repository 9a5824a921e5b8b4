package connector

import (
	"context"
	"sort"
	"strings"

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
func (c *Connector) Search(ctx context.Context, term string, n int, visible func(string) bool) ([]string, error) {
	if !c.active {
		return registry.Hosted{Meta: c.env.meta}.Search(ctx, term, n, visible)
	}
	return merge(ctx, c.sources(ctx, visible, true, term), "", n)
}
