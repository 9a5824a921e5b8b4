package gc

import (
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// TestPlan checks the planner on hand-made states, including shapes a
// push cannot easily produce.
func TestPlan(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	d := func(name string) digest.Digest { return digest.FromString(name) }
	old, young := now.Add(-48*time.Hour), now.Add(-time.Minute)
	m := func(name string, created time.Time, subject string, blobs []string, children ...string) metadata.ManifestState {
		ms := metadata.ManifestState{Digest: d(name), CreatedAt: created}
		if subject != "" {
			ms.Subject = d(subject)
		}
		for _, b := range blobs {
			ms.Blobs = append(ms.Blobs, d(b))
		}
		for _, c := range children {
			ms.Manifests = append(ms.Manifests, d(c))
		}
		return ms
	}
	link := func(name string, at time.Time) metadata.BlobLink {
		return metadata.BlobLink{Digest: d(name), LinkedAt: at}
	}
	tag := func(name, manifest string, at time.Time) metadata.TagState {
		return metadata.TagState{Name: name, Manifest: d(manifest), UpdatedAt: at}
	}
	untagged := &compiledRule{keepLast: -1, untaggedAfter: 24 * time.Hour}
	keepTwo := mustPolicy(t, Rule{Repositories: []string{"**"}, KeepLast: intp(2), KeepTags: []string{"stable"}})

	for _, c := range []struct {
		name          string
		rule          *compiledRule
		state         metadata.RepositoryState
		tags          []string
		manifests     []string
		blobs         []string
		wantUntouched bool
	}{
		{
			name: "referrer cycle and self-listing index terminate",
			rule: untagged,
			state: metadata.RepositoryState{
				Tags: []metadata.TagState{tag("t", "a", old)},
				Manifests: []metadata.ManifestState{
					m("a", old, "b", nil, "a"), m("b", old, "a", nil),
					m("c", old, "d", nil), m("d", old, "c", nil),
				},
			},
			manifests: []string{"c", "d"},
		},
		{
			name: "an untagged young index keeps its old children",
			rule: untagged,
			state: metadata.RepositoryState{
				Manifests: []metadata.ManifestState{m("idx", young, "", nil, "child", "absent"), m("child", old, "", []string{"l"})},
				Blobs:     []metadata.BlobLink{link("l", old)},
			},
			wantUntouched: true,
		},
		{
			name: "a referrer of an absent subject follows the untagged rule",
			rule: untagged,
			state: metadata.RepositoryState{
				Manifests: []metadata.ManifestState{m("sig", old, "never-pushed", []string{"s"}), m("sig2", young, "never-pushed", nil)},
				Blobs:     []metadata.BlobLink{link("s", old)},
			},
			manifests: []string{"sig"},
			blobs:     []string{"s"},
		},
		{
			name: "links: needed, renewed within the grace period, or gone",
			state: metadata.RepositoryState{
				Tags:      []metadata.TagState{tag("t", "img", old)},
				Manifests: []metadata.ManifestState{m("img", old, "", []string{"cfg", "unlinked"})},
				Blobs:     []metadata.BlobLink{link("cfg", old), link("renewed", now.Add(-grace/2)), link("stale", now.Add(-2*grace))},
			},
			blobs: []string{"stale"},
		},
		{
			name: "keepLast counts by push time, ties by name, and keepTags are extra",
			rule: &keepTwo.rules[0],
			state: metadata.RepositoryState{
				Tags: []metadata.TagState{
					tag("a", "img", old), tag("b", "img", young), tag("c", "img", young),
					tag("d", "img", old.Add(time.Hour)), tag("stable-1", "img", old), tag("unstable", "img", old),
				},
				Manifests: []metadata.ManifestState{m("img", old, "", nil)},
			},
			// b and c are the newest; "unstable" matches the unanchored
			// pattern too.
			tags: []string{"a", "d"},
		},
		{
			name: "keepLast 0 keeps only protected tags; their manifests stay without an untagged rule",
			rule: &compiledRule{keepLast: 0},
			state: metadata.RepositoryState{
				Tags:      []metadata.TagState{tag("x", "img", young)},
				Manifests: []metadata.ManifestState{m("img", old, "", []string{"l"})},
				Blobs:     []metadata.BlobLink{link("l", old)},
			},
			tags: []string{"x"},
		},
		{
			name: "tags removed by retention free their manifests under the untagged rule",
			rule: &compiledRule{keepLast: 1, untaggedAfter: time.Hour},
			state: metadata.RepositoryState{
				Tags:      []metadata.TagState{tag("new", "img2", young), tag("old", "img1", old)},
				Manifests: []metadata.ManifestState{m("img1", old, "", []string{"l1", "shared"}), m("img2", old, "", []string{"shared"})},
				Blobs:     []metadata.BlobLink{link("l1", old), link("shared", old)},
			},
			tags:      []string{"old"},
			manifests: []string{"img1"},
			blobs:     []string{"l1"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := planner{now: now, grace: grace, rule: c.rule}.plan(&c.state)
			if c.wantUntouched {
				if !got.Empty() {
					t.Errorf("plan = %+v, want nothing removed", got)
				}
				return
			}
			names := func(ds []digest.Digest) []string {
				out := []string{}
				for _, x := range ds {
					out = append(out, x.String())
				}
				slices.Sort(out)
				return out
			}
			want := func(ns []string) []string {
				out := []string{}
				for _, n := range ns {
					out = append(out, d(n).String())
				}
				slices.Sort(out)
				return out
			}
			if tags := append([]string{}, got.Tags...); !slices.Equal(tags, append([]string{}, c.tags...)) {
				t.Errorf("tags = %v, want %v", got.Tags, c.tags)
			}
			if !slices.Equal(names(got.Manifests), want(c.manifests)) {
				t.Errorf("manifests = %v, want %v", names(got.Manifests), want(c.manifests))
			}
			if !slices.Equal(names(got.Blobs), want(c.blobs)) {
				t.Errorf("blobs = %v, want %v", names(got.Blobs), want(c.blobs))
			}
		})
	}
}
