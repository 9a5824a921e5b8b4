package gc

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/audit"
)

// TestAuditRemovals checks that a collection writes one audit line per
// removal (gc-tag, gc-manifest, gc-link, gc-blob) naming what it removed,
// and that a dry run writes none.
func TestAuditRemovals(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		var buf bytes.Buffer
		logger := audit.New(slog.New(slog.NewJSONHandler(&buf, nil)))
		e.image("team/app", "old", nil, "v1")
		e.image("team/app", "new", nil, "v2")
		p := mustPolicy(t, Rule{Repositories: []string{"**"}, KeepLast: intp(1), UntaggedAfter: time.Hour})
		collect := func(dryRun bool) *Report {
			t.Helper()
			opts := e.options(p)
			opts.Audit, opts.DryRun = logger, dryRun
			rep, err := Run(t.Context(), e.raw, e.blobs, opts)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		if rep := collect(true); len(rep.Tags) != 1 || buf.Len() != 0 {
			t.Fatalf("dry run: %d tags to remove, audit %q; want 1 and no lines", len(rep.Tags), buf.String())
		}
		var want []string
		add := func(rep *Report) {
			for _, g := range []struct {
				action string
				items  []Item
			}{{"gc-tag", rep.Tags}, {"gc-manifest", rep.Manifests}, {"gc-link", rep.Links}, {"gc-blob", rep.Blobs}} {
				for _, it := range g.items {
					want = append(want, g.action+" "+it.Repository+" "+it.Ref)
				}
			}
		}
		add(collect(false)) // the tag v1
		e.later()
		add(collect(false)) // its manifest, the links and bytes of its blobs
		var got []string
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var l struct {
				Msg, Action, Outcome, User, Repository, Digest, Tag string
				Audit                                               bool
			}
			if err := dec.Decode(&l); err != nil {
				t.Fatal(err)
			}
			if l.Msg != "audit" || !l.Audit || l.Outcome != audit.OK || l.User != "gc" {
				t.Errorf("audit line %+v: want msg audit, audit=true, outcome ok, user gc", l)
			}
			got = append(got, l.Action+" "+l.Repository+" "+l.Digest+l.Tag)
		}
		slices.Sort(got)
		slices.Sort(want)
		for _, action := range []string{"gc-tag", "gc-manifest", "gc-link", "gc-blob"} {
			if !slices.ContainsFunc(want, func(s string) bool { return strings.HasPrefix(s, action+" ") }) {
				t.Errorf("the collections removed no %s: %v", action, want)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("audit lines:\n%s\nwant one per removal:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
