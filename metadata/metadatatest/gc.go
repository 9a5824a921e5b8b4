package metadatatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// gcTests are the suite's tests of metadata.Collector and LinkBlob.
var gcTests = []struct {
	name string
	fn   func(t *testing.T, s metadata.Store)
}{
	{"CollectState", testCollectState},
	{"CollectApply", testCollectApply},
	{"CollectTombstones", testCollectTombstones},
	{"LinkBlobPresence", testLinkBlobPresence},
	{"DeleteUnlinkedBlob", testDeleteUnlinkedBlob},
	{"DeleteUnlinkedBlobExcludesLinks", testDeleteUnlinkedBlobExcludesLinks},
	{"GCLock", testGCLock},
	{"LastGC", testLastGC},
}

// state returns what a planner sees of repo, through a dry run.
func state(t *testing.T, s metadata.Store, repo string) *metadata.RepositoryState {
	t.Helper()
	var got *metadata.RepositoryState
	c, err := s.CollectRepository(t.Context(), repo, func(st *metadata.RepositoryState) (*metadata.Collection, error) {
		got = st
		return nil, nil
	}, false)
	if err != nil {
		t.Fatalf("CollectRepository(%s, dry run): %v", repo, err)
	}
	if !c.Empty() {
		t.Errorf("CollectRepository(%s) with a nil plan = %+v, want an empty collection", repo, c)
	}
	return got
}

// within checks that tm is between from and to, give or take a second for
// the precision of the backend's clock and column.
func within(t *testing.T, what string, tm, from, to time.Time) {
	t.Helper()
	if tm.Before(from.Add(-time.Second)) || tm.After(to.Add(time.Second)) {
		t.Errorf("%s = %v, want between %v and %v", what, tm, from, to)
	}
}

// plan returns a planner that always returns c.
func plan(c *metadata.Collection) metadata.Planner {
	return func(*metadata.RepositoryState) (*metadata.Collection, error) { return c, nil }
}

// testCollectState checks the state a planner gets: every tag, manifest
// and link of the repository and nothing of others, with their times.
func testCollectState(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	cfg, layer := blob("state-config"), blob("state-layer")
	img := manifest("state-image", withBlobs(cfg, layer))
	img.CreatedAt = time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	idx := manifest("state-index", withMediaType(mediaTypeIndex), withManifests(img.Digest, blob("absent-child")))
	sig := manifest("state-sig", withSubject(img.Digest), withArtifactType(typeSignature))

	_, err := s.CollectRepository(ctx, "state/none", func(*metadata.RepositoryState) (*metadata.Collection, error) {
		t.Error("planner called for an unknown repository")
		return nil, nil
	}, false)
	wantErr(t, "CollectRepository of an unknown repository", err, metadata.ErrRepositoryNotFound)

	start := time.Now()
	must(t, s.PutBlob(ctx, "state/app", cfg, 10))
	must(t, s.PutBlob(ctx, "state/app", layer, 20))
	must(t, s.PutManifest(ctx, "state/app", img, "v1"))
	must(t, s.PutManifest(ctx, "state/app", idx, "latest"))
	must(t, s.PutManifest(ctx, "state/app", sig))
	must(t, s.PutManifest(ctx, "state/other", manifest("elsewhere"), "v1"))
	must(t, s.PutBlob(ctx, "state/other", blob("elsewhere"), 1))
	end := time.Now()

	st := state(t, s, "state/app")
	if st.Name != "state/app" {
		t.Errorf("Name = %q", st.Name)
	}
	var tags []string
	for _, tg := range st.Tags {
		tags = append(tags, tg.Name)
		within(t, "tag "+tg.Name+" UpdatedAt", tg.UpdatedAt, start, end)
		want := map[string]digest.Digest{"v1": img.Digest, "latest": idx.Digest}[tg.Name]
		if tg.Manifest != want {
			t.Errorf("tag %s points at %s, want %s", tg.Name, tg.Manifest, want)
		}
	}
	checkList(t, "state tags", tags, []string{"latest", "v1"})

	want := []*metadata.Manifest{img, idx, sig}
	slices.SortFunc(want, byDigest)
	if len(st.Manifests) != len(want) {
		t.Fatalf("state has %d manifests, want %d: %+v", len(st.Manifests), len(want), st.Manifests)
	}
	for i, w := range want {
		g := st.Manifests[i]
		if g.Digest != w.Digest || g.MediaType != w.MediaType || g.Size != w.Size || g.Subject != w.Subject ||
			!slices.Equal(g.Blobs, w.Blobs) || !slices.Equal(g.Manifests, w.Manifests) {
			t.Errorf("state manifest %d = %+v, want %s (media type %s, size %d, subject %q, blobs %v, manifests %v)",
				i, g, w.Digest, w.MediaType, w.Size, w.Subject, w.Blobs, w.Manifests)
		}
		if w == img {
			if !g.CreatedAt.Equal(img.CreatedAt) {
				t.Errorf("state CreatedAt = %v, want %v", g.CreatedAt, img.CreatedAt)
			}
		} else {
			within(t, "state CreatedAt", g.CreatedAt, start, end)
		}
	}

	links := map[digest.Digest]int64{}
	for _, b := range st.Blobs {
		links[b.Digest] = b.Size
		within(t, "LinkedAt", b.LinkedAt, start, end)
	}
	if len(links) != 2 || links[cfg] != 10 || links[layer] != 20 {
		t.Errorf("state links = %v, want %s: 10 and %s: 20", st.Blobs, cfg, layer)
	}
	if !slices.IsSortedFunc(st.Blobs, func(a, b metadata.BlobLink) int { return compareDigests(a.Digest, b.Digest) }) {
		t.Errorf("state links not ordered by digest: %v", st.Blobs)
	}

	// Pushing a tag again, and linking a blob again, renews their times.
	before := st.Tags[0].UpdatedAt
	var linkedBefore time.Time
	for _, b := range st.Blobs {
		if b.Digest == layer {
			linkedBefore = b.LinkedAt
		}
	}
	waitClockPast(t, before)
	waitClockPast(t, linkedBefore)
	must(t, s.PutManifest(ctx, "state/app", idx, "latest"))
	must(t, s.PutBlob(ctx, "state/app", layer, 20))
	st = state(t, s, "state/app")
	if !st.Tags[0].UpdatedAt.After(before) {
		t.Errorf("UpdatedAt after pushing the tag again = %v, want after %v", st.Tags[0].UpdatedAt, before)
	}
	for _, b := range st.Blobs {
		if b.Digest == layer && !b.LinkedAt.After(linkedBefore) {
			t.Errorf("LinkedAt after linking again = %v, want after %v", b.LinkedAt, linkedBefore)
		}
	}
}

// waitClockPast waits until the wall clock is past tm by more than the
// microsecond precision of the coarsest backend, so a later stamp is
// strictly later. It waits microseconds, not for an event.
func waitClockPast(t *testing.T, tm time.Time) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !time.Now().After(tm.Add(2 * time.Microsecond)); {
		if time.Now().After(deadline) {
			t.Fatalf("the clock does not pass %v", tm)
		}
	}
}

func compareDigests(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testCollectApply checks that an applied plan removes exactly what it
// lists, that a dry run and a failing plan remove nothing, and that a
// repository the plan empties goes away.
func testCollectApply(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	shared, own := blob("apply-shared"), blob("apply-own")
	keep := manifest("apply-keep", withBlobs(shared))
	drop := manifest("apply-drop", withBlobs(own))
	must(t, s.PutBlob(ctx, "apply/app", shared, 1))
	must(t, s.PutBlob(ctx, "apply/app", own, 2))
	must(t, s.PutBlob(ctx, "apply/other", shared, 1))
	must(t, s.PutManifest(ctx, "apply/app", keep, "keep", "old"))
	must(t, s.PutManifest(ctx, "apply/app", drop, "drop"))

	all := &metadata.Collection{Tags: []string{"old"}, Manifests: []digest.Digest{drop.Digest}, Blobs: []digest.Digest{own, shared}}

	// A dry run returns the plan and changes nothing.
	c, err := s.CollectRepository(ctx, "apply/app", plan(all), false)
	must(t, err)
	if len(c.Tags) != 1 || len(c.Manifests) != 1 || len(c.Blobs) != 2 {
		t.Errorf("dry run returned %+v, want the plan", c)
	}
	// A failing plan changes nothing either.
	boom := errors.New("boom")
	_, err = s.CollectRepository(ctx, "apply/app", func(*metadata.RepositoryState) (*metadata.Collection, error) { return nil, boom }, true)
	if !errors.Is(err, boom) {
		t.Errorf("CollectRepository with a failing plan: %v, want the plan's error", err)
	}
	checkList(t, "tags after a dry run and a failed plan", listTags(t, s, "apply/app", "", -1), []string{"drop", "keep", "old"})
	wantSize(t, s, "apply/app", own, 2)

	c, err = s.CollectRepository(ctx, "apply/app", plan(all), true)
	must(t, err)
	if len(c.Tags) != 1 || len(c.Manifests) != 1 || len(c.Blobs) != 2 {
		t.Errorf("CollectRepository returned %+v, want the plan", c)
	}
	checkList(t, "tags after collection", listTags(t, s, "apply/app", "", -1), []string{"keep"})
	wantTag(t, s, "apply/app", "keep", keep)
	_, err = s.GetManifest(ctx, "apply/app", drop.Digest)
	wantErr(t, "GetManifest of a collected manifest", err, metadata.ErrNotFound)
	for _, d := range []digest.Digest{own, shared} {
		_, err = s.BlobSize(ctx, "apply/app", d)
		wantErr(t, "BlobSize of a collected link", err, metadata.ErrNotFound)
	}
	_, err = s.AnyBlobSize(ctx, own)
	wantErr(t, "AnyBlobSize of a blob no repository links any more", err, metadata.ErrNotFound)
	wantSize(t, s, "apply/other", shared, 1)
	if size, err := s.AnyBlobSize(ctx, shared); err != nil || size != 1 {
		t.Errorf("AnyBlobSize of a blob another repository links = %d, %v", size, err)
	}

	// Collecting everything left deletes the repository.
	_, err = s.CollectRepository(ctx, "apply/app", plan(&metadata.Collection{Manifests: []digest.Digest{keep.Digest}}), true)
	must(t, err)
	checkList(t, "Repositories after emptying one", listRepos(t, s, "", -1), []string{"apply/other"})
	_, err = s.Tags(ctx, "apply/app", "", -1)
	wantErr(t, "Tags of an emptied repository", err, metadata.ErrRepositoryNotFound)
}

// testCollectTombstones checks that PutManifest refuses references to
// collected content until it is pushed again or the tombstone is purged.
func testCollectTombstones(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	cfg, layer := blob("tomb-config"), blob("tomb-layer")
	child := manifest("tomb-child", withBlobs(cfg))
	img := manifest("tomb-image", withBlobs(cfg, layer))
	idx := manifest("tomb-index", withMediaType(mediaTypeIndex), withManifests(child.Digest))
	must(t, s.PutBlob(ctx, "tomb/app", cfg, 1))
	must(t, s.PutBlob(ctx, "tomb/app", layer, 1))
	must(t, s.PutManifest(ctx, "tomb/app", child))
	start := time.Now()
	_, err := s.CollectRepository(ctx, "tomb/app",
		plan(&metadata.Collection{Manifests: []digest.Digest{child.Digest}, Blobs: []digest.Digest{layer}}), true)
	must(t, err)

	// The client checked the layer and the child before they went.
	wantErr(t, "PutManifest referencing a collected blob", s.PutManifest(ctx, "tomb/app", img, "v1"), metadata.ErrCollected)
	wantErr(t, "PutManifest referencing a collected child", s.PutManifest(ctx, "tomb/app", idx, "v1"), metadata.ErrCollected)
	_, err = s.ResolveTag(ctx, "tomb/app", "v1")
	wantErr(t, "ResolveTag after refused pushes", err, metadata.ErrNotFound)
	for _, m := range []*metadata.Manifest{img, idx} {
		_, err = s.GetManifest(ctx, "tomb/app", m.Digest)
		wantErr(t, "GetManifest after a refused push", err, metadata.ErrNotFound)
	}
	// Other repositories are not concerned.
	must(t, s.PutManifest(ctx, "tomb/other", img, "v1"))
	must(t, s.PutManifest(ctx, "tomb/other", idx, "v1"))

	// Pushing the content again lifts the refusal.
	must(t, s.PutBlob(ctx, "tomb/app", layer, 1))
	must(t, s.PutManifest(ctx, "tomb/app", img, "v1"))
	must(t, s.PutManifest(ctx, "tomb/app", child))
	must(t, s.PutManifest(ctx, "tomb/app", idx, "v2"))

	// Purging: tombstones written before the cutoff go, later ones stay.
	_, err = s.CollectRepository(ctx, "tomb/app", plan(&metadata.Collection{Blobs: []digest.Digest{layer}}), true)
	must(t, err)
	img2 := manifest("tomb-image-2", withBlobs(cfg, layer))
	wantErr(t, "PutManifest referencing a collected blob again", s.PutManifest(ctx, "tomb/app", img2), metadata.ErrCollected)
	if n, err := s.PurgeTombstones(ctx, start.Add(-time.Minute)); err != nil || n != 0 {
		t.Errorf("PurgeTombstones(before any) = %d, %v; want 0", n, err)
	}
	wantErr(t, "PutManifest after purging nothing", s.PutManifest(ctx, "tomb/app", img2), metadata.ErrCollected)
	n, err := s.PurgeTombstones(ctx, time.Now().Add(time.Minute))
	must(t, err)
	// The child's tombstone went when it was pushed again; the layer's
	// was written twice into one row.
	if n != 1 {
		t.Errorf("PurgeTombstones(after all) = %d, want 1", n)
	}
	// A sparse manifest is accepted again, as before garbage collection.
	must(t, s.PutManifest(ctx, "tomb/app", img2))
}

// testLinkBlobPresence checks that LinkBlob asks about the bytes exactly
// when no repository links the blob, and that a failed check links
// nothing.
func testLinkBlobPresence(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	d := blob("presence")
	calls := 0
	present := func(context.Context) error { calls++; return nil }

	must(t, s.LinkBlob(ctx, "presence/a", d, 5, present))
	if calls != 1 {
		t.Errorf("present called %d times for a new blob, want 1", calls)
	}
	wantSize(t, s, "presence/a", d, 5)
	must(t, s.LinkBlob(ctx, "presence/b", d, 5, present))
	must(t, s.LinkBlob(ctx, "presence/a", d, 5, present))
	if calls != 1 {
		t.Errorf("present called %d times in all, want 1: other links prove the bytes are there", calls)
	}
	must(t, s.LinkBlob(ctx, "presence/a", blob("no-check"), 5, nil))

	gone := fmt.Errorf("%w: bytes missing", metadata.ErrCollected)
	e := blob("presence-gone")
	err := s.LinkBlob(ctx, "presence/c", e, 5, func(context.Context) error { return gone })
	wantErr(t, "LinkBlob whose check fails", err, metadata.ErrCollected)
	_, err = s.BlobSize(ctx, "presence/c", e)
	wantErr(t, "BlobSize after a failed LinkBlob", err, metadata.ErrNotFound)
	_, err = s.AnyBlobSize(ctx, e)
	wantErr(t, "AnyBlobSize after a failed LinkBlob", err, metadata.ErrNotFound)
	checkList(t, "Repositories after a failed LinkBlob", listRepos(t, s, "", -1), []string{"presence/a", "presence/b"})

	// Once every link is gone, the next link checks again.
	must(t, s.DeleteBlob(ctx, "presence/a", d))
	must(t, s.DeleteBlob(ctx, "presence/b", d))
	must(t, s.LinkBlob(ctx, "presence/a", d, 5, present))
	if calls != 2 {
		t.Errorf("present called %d times after the last link went, want 2", calls)
	}
}

// testDeleteUnlinkedBlob checks when DeleteUnlinkedBlob removes.
func testDeleteUnlinkedBlob(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	d := blob("unlinked")
	removed := 0
	remove := func(context.Context) error { removed++; return nil }

	must(t, s.PutBlob(ctx, "unlinked/app", d, 3))
	if ok, err := s.DeleteUnlinkedBlob(ctx, d, remove); err != nil || ok || removed != 0 {
		t.Errorf("DeleteUnlinkedBlob of a linked blob = %v, %v (remove called %d times); want false and no call", ok, err, removed)
	}
	wantSize(t, s, "unlinked/app", d, 3)

	must(t, s.DeleteBlob(ctx, "unlinked/app", d))
	if ok, err := s.DeleteUnlinkedBlob(ctx, d, remove); err != nil || !ok || removed != 1 {
		t.Errorf("DeleteUnlinkedBlob of an unlinked blob = %v, %v (remove called %d times); want true and one call", ok, err, removed)
	}
	// Bytes metadata never heard of (an upload that never got linked).
	if ok, err := s.DeleteUnlinkedBlob(ctx, blob("never-linked"), remove); err != nil || !ok || removed != 2 {
		t.Errorf("DeleteUnlinkedBlob of an unknown blob = %v, %v; want true", ok, err)
	}
	_, err := s.AnyBlobSize(ctx, blob("never-linked"))
	wantErr(t, "AnyBlobSize after DeleteUnlinkedBlob", err, metadata.ErrNotFound)

	// A failing remove is returned and leaves the blob linkable.
	boom := errors.New("storage down")
	if _, err := s.DeleteUnlinkedBlob(ctx, d, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("DeleteUnlinkedBlob with a failing remove: %v, want its error", err)
	}
	must(t, s.LinkBlob(ctx, "unlinked/app", d, 3, func(context.Context) error { return nil }))
	wantSize(t, s, "unlinked/app", d, 3)
}

// testDeleteUnlinkedBlobExcludesLinks starts a LinkBlob of the blob while
// DeleteUnlinkedBlob is deleting its bytes: the link must wait, then see
// the bytes gone and fail. A store that let it through would link a blob
// whose bytes are about to disappear. remove gives the link a moment to
// get through before it deletes: that only lets a faulty store fail the
// test, it is not needed for a correct one to pass.
func testDeleteUnlinkedBlobExcludesLinks(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	for i := range 3 {
		d := blob(fmt.Sprintf("racing-%d", i))
		var bytesThere atomic.Bool
		bytesThere.Store(true)
		linked := make(chan error, 1)
		ok, err := s.DeleteUnlinkedBlob(ctx, d, func(ctx context.Context) error {
			go func() {
				linked <- s.LinkBlob(ctx, "racing/app", d, 7, func(context.Context) error {
					if !bytesThere.Load() {
						return fmt.Errorf("%w: %s", metadata.ErrCollected, d)
					}
					return nil
				})
			}()
			select {
			case err := <-linked:
				linked <- err
			case <-time.After(50 * time.Millisecond):
			}
			bytesThere.Store(false)
			return nil
		})
		if err != nil || !ok {
			t.Fatalf("DeleteUnlinkedBlob = %v, %v; want true", ok, err)
		}
		err = <-linked
		wantErr(t, "LinkBlob racing DeleteUnlinkedBlob", err, metadata.ErrCollected)
		if _, err := s.BlobSize(ctx, "racing/app", d); err == nil {
			t.Errorf("blob %s linked although its bytes were deleted", d)
		}
	}
}

// testGCLock checks that the collection lock excludes a second holder
// until released.
func testGCLock(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	release, err := s.LockGC(ctx)
	if err != nil {
		t.Fatalf("LockGC: %v", err)
	}
	if r2, err := s.LockGC(ctx); !errors.Is(err, metadata.ErrGCLocked) {
		if err == nil {
			r2()
		}
		t.Errorf("second LockGC: %v, want ErrGCLocked", err)
	}
	release()
	release2, err := s.LockGC(ctx)
	if err != nil {
		t.Fatalf("LockGC after release: %v", err)
	}
	release2()
}

// testLastGC checks the record of the last collection.
func testLastGC(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	if last, err := s.LastGC(ctx); err != nil || !last.IsZero() {
		t.Errorf("LastGC of a new store = %v, %v; want the zero time", last, err)
	}
	for _, tm := range []time.Time{
		time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		must(t, s.SetLastGC(ctx, tm))
		if last, err := s.LastGC(ctx); err != nil || !last.Equal(tm) {
			t.Errorf("LastGC = %v, %v; want %v", last, err, tm)
		}
	}
}
