package gc

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// TestReachability covers what a collection keeps and removes, without
// retention rules beyond an untagged period.
func TestReachability(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		untagged := mustPolicy(t, Rule{Repositories: []string{"**"}, UntaggedAfter: time.Hour})

		// A tagged image, and an untagged one sharing a base layer with it.
		base := e.push("app", "base-layer")
		tagged := e.image("app", "tagged", []digest.Digest{base}, "v1")
		loose := e.image("app", "loose", []digest.Digest{base})

		// A multi-platform index: its children are untagged.
		amd := e.image("app", "amd64", nil)
		arm := e.image("app", "arm64", nil)
		idx := manifest("index", mtIndex, nil, []digest.Digest{amd.Digest, arm.Digest}, "")
		e.put("app", idx, "multi")

		// Referrers of the tagged image, a referrer of the signature,
		// and a signature of the loose image.
		sig := manifest("sig", mtSignature, []digest.Digest{e.push("app", "sig-blob")}, nil, tagged.Digest)
		sbom := manifest("sbom", mtSBOM, []digest.Digest{e.push("app", "sbom-blob")}, nil, idx.Digest)
		sigOfSig := manifest("sig-of-sig", mtSignature, []digest.Digest{e.push("app", "sig-sig-blob")}, nil, sig.Digest)
		looseSig := manifest("loose-sig", mtSignature, []digest.Digest{e.push("app", "loose-sig-blob")}, nil, loose.Digest)
		for _, m := range []*metadata.Manifest{sig, sbom, sigOfSig, looseSig} {
			e.put("app", m)
		}

		// Another repository shares the loose image's layer blob.
		looseLayer := loose.Blobs[1]
		if err := e.meta.LinkBlob(ctx, "other", looseLayer, int64(len("loose/layer"))); err != nil {
			t.Fatal(err)
		}
		otherImg := e.image("other", "other", []digest.Digest{looseLayer}, "latest")

		// A blob pushed with no manifest yet, and bytes no one linked.
		pending := e.push("app", "pending")
		if _, err := e.blobs.Put(ctx, "app", digest.FromString("orphan"), strings.NewReader("orphan")); err != nil {
			t.Fatal(err)
		}

		// Nothing is old yet: nothing goes, with or without the policy.
		for _, p := range []*Policy{nil, untagged} {
			rep := e.run(p)
			if len(rep.Manifests)+len(rep.Links)+len(rep.Blobs)+len(rep.Tags) != 0 {
				t.Fatalf("collection of fresh content removed %v %v %v %v", refs(rep.Manifests), refs(rep.Links), refs(rep.Blobs), refs(rep.Tags))
			}
		}
		e.checkConsistent()

		// Later, without rules: untagged manifests stay, so only the
		// pending link and the orphan bytes go.
		e.later()
		rep := e.run(nil)
		if got, want := refs(rep.Links), []string{"app@" + pending.String()}; !slices.Equal(got, want) {
			t.Errorf("links removed = %v, want %v", got, want)
		}
		if got := refs(rep.Blobs); !slices.Equal(got, []string{pending.String(), digest.FromString("orphan").String()}) &&
			!slices.Equal(got, []string{digest.FromString("orphan").String(), pending.String()}) {
			t.Errorf("blobs deleted = %v, want the pending and the orphan blob", got)
		}
		if len(rep.Manifests) != 0 {
			t.Errorf("manifests removed without an untagged rule: %v", refs(rep.Manifests))
		}
		e.wantBlob("app", pending, false, false)
		e.wantImage("app", loose, true)

		// With the untagged rule: the loose image and its signature go;
		// the rest stays, the shared base and the blob another repository
		// links included.
		rep = e.run(untagged)
		wantRefs := []string{"app@" + loose.Digest.String(), "app@" + looseSig.Digest.String()}
		slices.Sort(wantRefs)
		if got := refs(rep.Manifests); !slices.Equal(got, wantRefs) {
			t.Errorf("manifests removed = %v, want %v", got, wantRefs)
		}
		e.wantManifest("app", loose.Digest, false)
		e.wantManifest("app", looseSig.Digest, false)
		e.wantBlob("app", loose.Blobs[0], false, false)    // its config
		e.wantBlob("app", looseLayer, false, true)         // other links it
		e.wantBlob("app", looseSig.Blobs[0], false, false) // the signature's blob
		e.wantBlob("app", base, true, true)                // the tagged image needs it
		for _, m := range []*metadata.Manifest{tagged, amd, arm, idx, sig, sbom, sigOfSig} {
			e.wantImage("app", m, true)
		}
		e.wantImage("other", otherImg, true)
		e.checkConsistent()

		// Untagging the index lets it, its children and its SBOM go.
		if err := e.meta.DeleteTag(ctx, "app", "multi"); err != nil {
			t.Fatal(err)
		}
		e.run(untagged)
		for _, m := range []*metadata.Manifest{idx, amd, arm, sbom} {
			e.wantImage("app", m, false)
		}
		e.wantImage("app", tagged, true)

		// Deleting through the API removes only the manifest; the next
		// collection takes the blobs, and the emptied repository.
		if err := e.meta.DeleteManifest(ctx, "other", otherImg.Digest); err != nil {
			t.Fatal(err)
		}
		e.wantBlob("other", otherImg.Blobs[0], true, true)
		e.run(untagged)
		e.wantBlob("other", otherImg.Blobs[0], false, false)
		e.wantBlob("other", looseLayer, false, false)
		repos, err := e.meta.Repositories(ctx, "", -1)
		if err != nil || !slices.Equal(repos, []string{"app"}) {
			t.Errorf("Repositories = %v, %v; want [app]", repos, err)
		}
		e.checkConsistent()
	})
}

// TestGrace checks that links and bytes younger than the grace period are
// kept, by their link time and by the time the bytes were written. (That
// linking again renews the time is the metadata suite's business; the
// planner tests check that the renewed time is what counts.)
func TestGrace(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		d := e.push("app", "young")
		orphan := digest.FromString("orphan")
		if _, err := e.blobs.Put(t.Context(), "app", orphan, strings.NewReader("orphan")); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(grace / 2)
		e.run(nil)
		e.wantBlob("app", d, true, true)
		e.wantBlob("app", orphan, false, true)

		e.clock.Advance(grace/2 + grace/4)
		rep := e.run(nil)
		e.wantBlob("app", d, false, false)
		e.wantBlob("app", orphan, false, false)
		if want := int64(len("young") + len("orphan")); rep.BytesFreed() != want {
			t.Errorf("BytesFreed = %d, want %d", rep.BytesFreed(), want)
		}
	})
}

// TestRetention checks keepLast, keepTags and how rules pick repositories.
func TestRetention(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		// Pushed in this order, oldest first.
		names := []string{"release-1", "a", "b", "c", "release-2", "d", "e"}
		imgs := map[string]*metadata.Manifest{}
		for _, repo := range []string{"team/app", "team/app/sub", "keep/app"} {
			for _, n := range names {
				imgs[repo+":"+n] = e.image(repo, repo+"-"+n, nil, n)
			}
		}
		// Pushing "a" again makes it the newest.
		e.put("team/app", imgs["team/app:a"], "a")

		p := mustPolicy(t,
			Rule{Repositories: []string{"keep/**"}},
			Rule{Repositories: []string{"team/*"}, KeepLast: intp(2), KeepTags: []string{"^release-"}},
			Rule{Repositories: []string{"**"}, KeepLast: intp(4)},
		)
		rep := e.run(p)
		wantTags := func(repo string, want ...string) {
			t.Helper()
			got, err := e.meta.Tags(ctx, repo, "", -1)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("tags of %s = %v, %v; want %v", repo, got, err, want)
			}
		}
		wantTags("team/app", "a", "e", "release-1", "release-2")
		wantTags("team/app/sub", "c", "d", "e", "release-2") // "**": the 4 newest
		wantTags("keep/app", "a", "b", "c", "d", "e", "release-1", "release-2")
		if len(rep.Tags) != 3+3 {
			t.Errorf("tags removed = %v, want 6", refs(rep.Tags))
		}
		// No untagged period: the untagged images stay.
		e.wantImage("team/app", imgs["team/app:b"], true)

		// With one, they go once old enough, and only them.
		p = mustPolicy(t, Rule{Repositories: []string{"team/*"}, KeepLast: intp(2), KeepTags: []string{"^release-"}, UntaggedAfter: time.Hour})
		e.run(p)
		e.wantImage("team/app", imgs["team/app:b"], true)
		e.later()
		e.run(p)
		for _, n := range []string{"b", "c", "d"} {
			e.wantImage("team/app", imgs["team/app:"+n], false)
		}
		for _, n := range []string{"a", "e", "release-1", "release-2"} {
			e.wantImage("team/app", imgs["team/app:"+n], true)
		}
		e.wantImage("team/app/sub", imgs["team/app/sub:a"], true) // untagged, but no untagged rule there
		e.checkConsistent()
	})
}

// TestDryRun checks that a dry run reports what a real run then removes,
// and removes nothing itself.
func TestDryRun(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		p := mustPolicy(t, Rule{Repositories: []string{"**"}, KeepLast: intp(1), UntaggedAfter: time.Hour})
		e.image("app", "old", nil, "old")
		e.image("app", "new", nil, "new")
		e.push("app", "dangling")
		e.push("lib", "shared")
		e.image("lib", "lib", []digest.Digest{digest.FromString("shared")}, "v1")
		e.later()
		before := e.storedBlobs()

		opts := e.options(p)
		opts.DryRun = true
		dry, err := Run(t.Context(), e.raw, e.blobs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(e.storedBlobs(), before) {
			t.Error("a dry run deleted blobs")
		}
		if tags, _ := e.meta.Tags(t.Context(), "app", "", -1); len(tags) != 2 {
			t.Errorf("a dry run removed tags: %v left", tags)
		}
		if last, _ := e.raw.LastGC(t.Context()); !last.IsZero() {
			t.Errorf("a dry run was recorded as a collection at %v", last)
		}

		real := e.run(p)
		for _, c := range []struct {
			what      string
			dry, real []Item
		}{
			{"tags", dry.Tags, real.Tags},
			{"manifests", dry.Manifests, real.Manifests},
			{"links", dry.Links, real.Links},
			{"blobs", dry.Blobs, real.Blobs},
		} {
			if !slices.Equal(refs(c.dry), refs(c.real)) {
				t.Errorf("%s: dry run reported %v, the real run removed %v", c.what, refs(c.dry), refs(c.real))
			}
		}
		if len(real.Blobs) != 3 || real.BytesFreed() != dry.BytesFreed() {
			t.Errorf("real run freed %v (%d bytes), dry run %d bytes; want the old image's config and layer and the dangling blob",
				refs(real.Blobs), real.BytesFreed(), dry.BytesFreed())
		}
		if last, _ := e.raw.LastGC(t.Context()); last.IsZero() {
			t.Error("the real run was not recorded")
		}
	})
}

// TestLocked checks that Run refuses to start while the lock is held.
func TestLocked(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		release, err := e.raw.LockGC(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(t.Context(), e.raw, e.blobs, e.options(nil))
		if !errors.Is(err, ErrLocked) {
			t.Errorf("Run while locked: %v, want ErrLocked", err)
		}
		release()
		if _, err := Run(t.Context(), e.raw, e.blobs, e.options(nil)); err != nil {
			t.Errorf("Run after release: %v", err)
		}
	})
}
