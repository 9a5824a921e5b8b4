// Package metadatatest is the conformance suite of metadata.Store: every
// implementation runs it, so the registry behaves the same whichever
// backend keeps its metadata. An implementation's test file needs two
// lines:
//
//	func TestStore(t *testing.T) {
//		metadatatest.Run(t, func(t *testing.T) metadata.Store { /* a new, empty store */ })
//	}
//
// and, for a backend that keeps data across restarts, a persistence check
// whose open function reaches the same data on every call (the same file,
// the same database schema):
//
//	func TestPersistence(t *testing.T) {
//		metadatatest.RunPersistence(t, func(t *testing.T) metadata.Store { /* same data */ })
//	}
//
// The suite closes every store it is given, checking Close's error, so the
// open functions need not register a cleanup (if they do, Close must
// tolerate a second call). Subtests run one after the other, so a backend
// may share a server between them as long as each open returns an empty
// store.
package metadatatest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// Media types used in the fixtures. The store treats them as opaque
// strings; they are real ones so a failure reads naturally.
const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	typeSignature     = "application/vnd.example.signature.v1"
	typeSBOM          = "application/spdx+json"
	typeAttestation   = "application/vnd.in-toto+json"
)

// allReferrers pages through every referrer of d in repo, one descriptor
// per page, checking that pages follow each other in digest order.
func allReferrers(ctx context.Context, s metadata.Store, repo string, d digest.Digest, artifactType string) ([]metadata.Descriptor, error) {
	q := metadata.ReferrersQuery{ArtifactType: artifactType, Limit: 1}
	out := []metadata.Descriptor{}
	for {
		page, more, err := s.Referrers(ctx, repo, d, q)
		if err != nil {
			return nil, err
		}
		if page == nil {
			return nil, errors.New("Referrers returned a nil page, want an empty list")
		}
		if len(page) > 1 {
			return nil, fmt.Errorf("a page of Limit 1 holds %d descriptors", len(page))
		}
		out = append(out, page...)
		if !more {
			return out, nil
		}
		if len(page) == 0 {
			return nil, errors.New("an empty page says more follow")
		}
		q.After = page[0].Digest
	}
}

// Run runs the conformance suite. open must return a new, empty store each
// time it is called.
func Run(t *testing.T, open func(t *testing.T) metadata.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s metadata.Store)
	}{
		{"Blobs", testBlobs},
		{"BlobIsolation", testBlobIsolation},
		{"Manifests", testManifests},
		{"ManifestReplace", testManifestReplace},
		{"ManifestCreatedAt", testManifestCreatedAt},
		{"ManifestCopies", testManifestCopies},
		{"Tags", testTags},
		{"DeleteTagAndDeleteManifest", testDeleteTagAndManifest},
		{"TagPagination", testTagPagination},
		{"RepositoryLifecycle", testRepositoryLifecycle},
		{"RepositoryPagination", testRepositoryPagination},
		{"Referrers", testReferrers},
		{"ReferrersPages", testReferrersPages},
		{"IndexesOf", testIndexesOf},
		{"BlobRepositories", testBlobRepositories},
		{"Changes", testChanges},
		{"Search", testSearch},
		{"CanceledContext", testCanceledContext},
		{"Concurrency", testConcurrency},
	}
	tests = append(tests, gcTests...)
	tests = append(tests, browseTests...)
	tests = append(tests, opsTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t, open))
		})
	}
}

// RunPersistence checks that a store's data survives Close: it writes
// through one store, closes it, and reads everything back through a second
// (and a third) one. Every call of open must reach the same data; the
// first must find it empty.
func RunPersistence(t *testing.T, open func(t *testing.T) metadata.Store) {
	ctx := t.Context()
	layer := blob("persist-layer")
	base := manifest("persist-base", withBlobs(layer))
	sig := manifest("persist-sig", withSubject(base.Digest), withArtifactType(typeSignature),
		withAnnotations(map[string]string{"k": "v"}))
	created := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	base.CreatedAt = created

	// current is the open store; reopen closes it (checking the error)
	// before opening the next, and the cleanup closes the last.
	var current metadata.Store
	t.Cleanup(func() {
		if current != nil {
			if err := current.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	reopen := func() metadata.Store {
		t.Helper()
		if current != nil {
			err := current.Close()
			current = nil
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		current = open(t)
		if current == nil {
			t.Fatal("open returned a nil store")
		}
		return current
	}

	s := reopen()
	must(t, s.PutBlob(ctx, "persist/app", layer, 1234))
	must(t, s.PutManifest(ctx, "persist/app", base, "v1", "latest"))
	must(t, s.PutManifest(ctx, "persist/app", sig))
	must(t, s.PutBlob(ctx, "persist/gone", layer, 1234))
	must(t, s.DeleteBlob(ctx, "persist/gone", layer))

	s = reopen()
	if size, err := s.BlobSize(ctx, "persist/app", layer); err != nil || size != 1234 {
		t.Errorf("after reopen: BlobSize = %d, %v; want 1234", size, err)
	}
	got, err := s.ResolveTag(ctx, "persist/app", "latest")
	if err != nil {
		t.Fatalf("after reopen: ResolveTag: %v", err)
	}
	checkManifest(t, "after reopen", got, base)
	if !got.CreatedAt.Equal(created) {
		t.Errorf("after reopen: CreatedAt = %v, want %v", got.CreatedAt, created)
	}
	checkList(t, "after reopen: Tags", listTags(t, s, "persist/app", "", -1), []string{"latest", "v1"})
	checkList(t, "after reopen: Repositories", listRepos(t, s, "", -1), []string{"persist/app"})
	refs, err := allReferrers(ctx, s, "persist/app", base.Digest, "")
	must(t, err)
	checkDescriptors(t, "after reopen: Referrers", refs, sig)

	// The reopened store keeps working, and what it writes persists too.
	must(t, s.DeleteTag(ctx, "persist/app", "v1"))
	must(t, s.PutManifest(ctx, "persist/app", base, "v2"))

	s = reopen()
	checkList(t, "after second reopen: Tags", listTags(t, s, "persist/app", "", -1), []string{"latest", "v2"})
	got, err = s.GetManifest(ctx, "persist/app", base.Digest)
	if err != nil {
		t.Fatalf("after second reopen: GetManifest: %v", err)
	}
	if !got.CreatedAt.Equal(created) {
		t.Errorf("after second reopen: CreatedAt = %v, want %v", got.CreatedAt, created)
	}
}

// newStore opens a store and closes it when the test ends.
func newStore(t *testing.T, open func(t *testing.T) metadata.Store) metadata.Store {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testBlobs covers one repository's blob lifecycle, and that a blob alone
// makes a repository.
func testBlobs(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	d := blob("layer")

	_, err := s.BlobSize(ctx, "app", d)
	wantErr(t, "BlobSize in an unknown repository", err, metadata.ErrNotFound)
	_, err = s.AnyBlobSize(ctx, d)
	wantErr(t, "AnyBlobSize of an unknown blob", err, metadata.ErrNotFound)
	wantErr(t, "DeleteBlob in an unknown repository", s.DeleteBlob(ctx, "app", d), metadata.ErrNotFound)

	must(t, s.PutBlob(ctx, "app", d, 42))
	must(t, s.PutBlob(ctx, "app", d, 42)) // repeating is harmless
	wantSize(t, s, "app", d, 42)
	if size, err := s.AnyBlobSize(ctx, d); err != nil || size != 42 {
		t.Errorf("AnyBlobSize = %d, %v; want 42", size, err)
	}
	_, err = s.BlobSize(ctx, "app", blob("other"))
	wantErr(t, "BlobSize of an unknown blob", err, metadata.ErrNotFound)

	// The blob made the repository exist, without tags.
	checkList(t, "Repositories", listRepos(t, s, "", -1), []string{"app"})
	tags, err := s.Tags(ctx, "app", "", -1)
	if err != nil || tags == nil || len(tags) != 0 {
		t.Errorf("Tags of a repository with only blobs = %#v, %v; want an empty, non-nil list", tags, err)
	}

	must(t, s.DeleteBlob(ctx, "app", d))
	_, err = s.BlobSize(ctx, "app", d)
	wantErr(t, "BlobSize after DeleteBlob", err, metadata.ErrNotFound)
	_, err = s.AnyBlobSize(ctx, d)
	wantErr(t, "AnyBlobSize after the last DeleteBlob", err, metadata.ErrNotFound)
	wantErr(t, "second DeleteBlob", s.DeleteBlob(ctx, "app", d), metadata.ErrNotFound)

	// Pushing again after a delete works.
	must(t, s.PutBlob(ctx, "app", d, 42))
	wantSize(t, s, "app", d, 42)
}

// testBlobIsolation checks that blobs are linked per repository while
// AnyBlobSize sees every repository's.
func testBlobIsolation(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	shared, onlyA := blob("shared"), blob("only-a")

	must(t, s.PutBlob(ctx, "team/a", shared, 10))
	must(t, s.PutBlob(ctx, "team/a", onlyA, 20))
	must(t, s.PutBlob(ctx, "team/b", blob("only-b"), 30))

	_, err := s.BlobSize(ctx, "team/b", onlyA)
	wantErr(t, "BlobSize of a blob of another repository", err, metadata.ErrNotFound)
	if size, err := s.AnyBlobSize(ctx, onlyA); err != nil || size != 20 {
		t.Errorf("AnyBlobSize of a blob of another repository = %d, %v; want 20", size, err)
	}
	wantErr(t, "DeleteBlob of a blob of another repository", s.DeleteBlob(ctx, "team/b", onlyA), metadata.ErrNotFound)
	wantSize(t, s, "team/a", onlyA, 20)

	// Mounting the shared blob into b, then deleting it from a, leaves b's.
	must(t, s.PutBlob(ctx, "team/b", shared, 10))
	must(t, s.DeleteBlob(ctx, "team/a", shared))
	_, err = s.BlobSize(ctx, "team/a", shared)
	wantErr(t, "BlobSize after DeleteBlob", err, metadata.ErrNotFound)
	wantSize(t, s, "team/b", shared, 10)
	if size, err := s.AnyBlobSize(ctx, shared); err != nil || size != 10 {
		t.Errorf("AnyBlobSize while another repository holds the blob = %d, %v; want 10", size, err)
	}
	must(t, s.DeleteBlob(ctx, "team/b", shared))
	_, err = s.AnyBlobSize(ctx, shared)
	wantErr(t, "AnyBlobSize after every repository deleted the blob", err, metadata.ErrNotFound)

	// A repository name that is a prefix of another is a different one.
	must(t, s.PutBlob(ctx, "team/a/sub", blob("sub"), 5))
	_, err = s.BlobSize(ctx, "team/a", blob("sub"))
	wantErr(t, "BlobSize in a parent path", err, metadata.ErrNotFound)
}

// testManifests checks that every field comes back as put, per repository.
func testManifests(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	// Blobs in descending order, so an implementation that sorts them
	// instead of keeping the manifest's order fails.
	layers := []digest.Digest{blob("config"), blob("layer-1"), blob("layer-2"), blob("layer-3")}
	slices.Sort(layers)
	slices.Reverse(layers)
	img := manifest("image", withBlobs(layers...), withArtifactType("application/vnd.example.config.v1+json"),
		withAnnotations(map[string]string{
			"org.opencontainers.image.title": "image",
			"org.example.unicode":            "grüße ✓",
		}))
	img2 := manifest("image-2", withBlobs(blob("layer-1")))
	idx := manifest("index", withMediaType(mediaTypeIndex), withManifests(img2.Digest, img.Digest))

	_, err := s.GetManifest(ctx, "app", img.Digest)
	wantErr(t, "GetManifest in an unknown repository", err, metadata.ErrNotFound)

	must(t, s.PutManifest(ctx, "app", img))
	must(t, s.PutManifest(ctx, "app", img2))
	must(t, s.PutManifest(ctx, "app", idx))

	for _, want := range []*metadata.Manifest{img, img2, idx} {
		got, err := s.GetManifest(ctx, "app", want.Digest)
		if err != nil {
			t.Fatalf("GetManifest(%s): %v", want.Digest, err)
		}
		checkManifest(t, "GetManifest", got, want)
		if got.CreatedAt.IsZero() {
			t.Errorf("GetManifest(%s).CreatedAt is zero", want.Digest)
		}
	}

	_, err = s.GetManifest(ctx, "app", manifest("never-pushed").Digest)
	wantErr(t, "GetManifest of an unknown digest", err, metadata.ErrNotFound)
	_, err = s.GetManifest(ctx, "other", img.Digest)
	wantErr(t, "GetManifest from another repository", err, metadata.ErrNotFound)

	// The same manifest in a second repository is a separate record.
	must(t, s.PutManifest(ctx, "other", img))
	must(t, s.DeleteManifest(ctx, "other", img.Digest))
	got, err := s.GetManifest(ctx, "app", img.Digest)
	if err != nil {
		t.Fatalf("GetManifest after deleting the copy in another repository: %v", err)
	}
	checkManifest(t, "GetManifest after deleting the copy in another repository", got, img)
}

// testManifestReplace pushes a digest twice with different fields.
func testManifestReplace(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	first := manifest("replace", withBlobs(blob("a"), blob("b")), withManifests(blob("child")),
		withAnnotations(map[string]string{"version": "1"}), withArtifactType("type/one"),
		withSubject(blob("subject-1")))
	must(t, s.PutManifest(ctx, "app", first, "keep"))
	before, err := s.GetManifest(ctx, "app", first.Digest)
	must(t, err)

	// Same digest, everything else different: references and annotations
	// are replaced, not merged.
	second := &metadata.Manifest{
		Digest:       first.Digest,
		MediaType:    mediaTypeIndex,
		ArtifactType: "type/two",
		Size:         first.Size + 1,
		Content:      []byte(`{"replaced":true}`),
		Annotations:  map[string]string{"other": "x"},
		Blobs:        []digest.Digest{blob("c")},
		CreatedAt:    before.CreatedAt.Add(time.Hour),
	}
	must(t, s.PutManifest(ctx, "app", second, "new"))
	got, err := s.GetManifest(ctx, "app", first.Digest)
	must(t, err)
	checkManifest(t, "GetManifest after replace", got, second)
	if !got.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("CreatedAt after replace = %v, want the first push's %v", got.CreatedAt, before.CreatedAt)
	}

	// The tag from the first push stays; the new one is added.
	checkList(t, "Tags after replace", listTags(t, s, "app", "", -1), []string{"keep", "new"})
	refs, err := allReferrers(ctx, s, "app", blob("subject-1"), "")
	must(t, err)
	checkDescriptors(t, "Referrers of the old subject after replace", refs)
}

// testManifestCreatedAt checks who sets CreatedAt and that re-pushes keep it.
func testManifestCreatedAt(t *testing.T, s metadata.Store) {
	ctx := t.Context()

	// Zero: the store sets the time of the push. Allow a second either way
	// for the precision of the backend's clock and column.
	m := manifest("now")
	start := time.Now()
	must(t, s.PutManifest(ctx, "app", m))
	end := time.Now()
	got, err := s.GetManifest(ctx, "app", m.Digest)
	must(t, err)
	if got.CreatedAt.Before(start.Add(-time.Second)) || got.CreatedAt.After(end.Add(time.Second)) {
		t.Errorf("CreatedAt of a push with zero CreatedAt = %v, want between %v and %v", got.CreatedAt, start, end)
	}
	first := got.CreatedAt
	must(t, s.PutManifest(ctx, "app", m, "later"))
	got, err = s.GetManifest(ctx, "app", m.Digest)
	must(t, err)
	if !got.CreatedAt.Equal(first) {
		t.Errorf("CreatedAt after a second push = %v, want the first push's %v", got.CreatedAt, first)
	}

	// Given: kept as is, and kept over later pushes.
	at := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	g := manifest("given")
	g.CreatedAt = at
	must(t, s.PutManifest(ctx, "app", g))
	g2 := manifest("given")
	g2.CreatedAt = at.Add(48 * time.Hour)
	must(t, s.PutManifest(ctx, "app", g2, "t"))
	got, err = s.ResolveTag(ctx, "app", "t")
	must(t, err)
	if !got.CreatedAt.Equal(at) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, at)
	}

	// After a delete, the next push is a first push again.
	must(t, s.DeleteManifest(ctx, "app", g.Digest))
	must(t, s.PutManifest(ctx, "app", g2))
	got, err = s.GetManifest(ctx, "app", g.Digest)
	must(t, err)
	if !got.CreatedAt.Equal(g2.CreatedAt) {
		t.Errorf("CreatedAt after delete and push = %v, want %v", got.CreatedAt, g2.CreatedAt)
	}
}

// testManifestCopies guards against a store sharing slices or maps with
// its callers.
func testManifestCopies(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	m := manifest("copies", withBlobs(blob("l")), withManifests(blob("c")),
		withAnnotations(map[string]string{"k": "v"}))
	want := clone(m)
	must(t, s.PutManifest(ctx, "app", m, "t"))

	// Changing what was put, or what was returned, changes nothing stored.
	m.Content[0] = 'X'
	m.Blobs[0] = blob("changed")
	m.Annotations["k"] = "changed"
	got, err := s.GetManifest(ctx, "app", want.Digest)
	must(t, err)
	checkManifest(t, "GetManifest after changing the put manifest", got, want)
	got.Content[0] = 'Y'
	got.Blobs[0] = blob("changed")
	got.Manifests[0] = blob("changed")
	got.Annotations["k"] = "changed"
	got, err = s.ResolveTag(ctx, "app", "t")
	must(t, err)
	checkManifest(t, "ResolveTag after changing a returned manifest", got, want)
}

// testTags covers tagging, moving tags and tag lookups across repositories.
func testTags(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	m1 := manifest("one", withBlobs(blob("l1")))
	m2 := manifest("two", withBlobs(blob("l2")))

	_, err := s.ResolveTag(ctx, "app", "latest")
	wantErr(t, "ResolveTag in an unknown repository", err, metadata.ErrNotFound)
	_, err = s.Tags(ctx, "app", "", -1)
	wantErr(t, "Tags of an unknown repository", err, metadata.ErrRepositoryNotFound)

	must(t, s.PutManifest(ctx, "app", m1, "latest", "v1"))
	wantTag(t, s, "app", "latest", m1)
	wantTag(t, s, "app", "v1", m1)
	_, err = s.ResolveTag(ctx, "app", "v2")
	wantErr(t, "ResolveTag of an unknown tag", err, metadata.ErrNotFound)
	_, err = s.ResolveTag(ctx, "other", "latest")
	wantErr(t, "ResolveTag in another repository", err, metadata.ErrNotFound)

	// Moving a tag leaves the other tags and the old manifest alone.
	must(t, s.PutManifest(ctx, "app", m2, "latest", "v2"))
	wantTag(t, s, "app", "latest", m2)
	wantTag(t, s, "app", "v1", m1)
	wantTag(t, s, "app", "v2", m2)
	checkList(t, "Tags", listTags(t, s, "app", "", -1), []string{"latest", "v1", "v2"})

	// Re-pushing without tags keeps the tags the manifest has.
	must(t, s.PutManifest(ctx, "app", m1))
	wantTag(t, s, "app", "v1", m1)
	// Re-tagging with the tag it already has is harmless.
	must(t, s.PutManifest(ctx, "app", m2, "latest", "latest"))
	wantTag(t, s, "app", "latest", m2)

	// The same tag name in another repository is independent.
	must(t, s.PutManifest(ctx, "other", m1, "latest"))
	wantTag(t, s, "other", "latest", m1)
	wantTag(t, s, "app", "latest", m2)
	checkList(t, "Tags of the other repository", listTags(t, s, "other", "", -1), []string{"latest"})

	// Tag names are case-sensitive.
	must(t, s.PutManifest(ctx, "app", m1, "Latest"))
	wantTag(t, s, "app", "Latest", m1)
	wantTag(t, s, "app", "latest", m2)
}

// testDeleteTagAndManifest checks that DeleteTag removes only the tag and
// DeleteManifest the manifest with all its tags.
func testDeleteTagAndManifest(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	m1 := manifest("one")
	m2 := manifest("two")
	must(t, s.PutManifest(ctx, "app", m1, "a", "b", "c"))
	must(t, s.PutManifest(ctx, "app", m2, "latest"))
	must(t, s.PutManifest(ctx, "other", m1, "a"))

	// DeleteTag removes only the tag.
	must(t, s.DeleteTag(ctx, "app", "a"))
	_, err := s.ResolveTag(ctx, "app", "a")
	wantErr(t, "ResolveTag after DeleteTag", err, metadata.ErrNotFound)
	wantTag(t, s, "app", "b", m1)
	if _, err := s.GetManifest(ctx, "app", m1.Digest); err != nil {
		t.Errorf("GetManifest after DeleteTag: %v", err)
	}
	wantTag(t, s, "other", "a", m1)
	wantErr(t, "second DeleteTag", s.DeleteTag(ctx, "app", "a"), metadata.ErrNotFound)
	wantErr(t, "DeleteTag of an unknown tag", s.DeleteTag(ctx, "app", "nope"), metadata.ErrNotFound)
	wantErr(t, "DeleteTag in an unknown repository", s.DeleteTag(ctx, "nope", "a"), metadata.ErrNotFound)

	// Deleting every tag keeps the repository: the manifest is still there.
	must(t, s.DeleteTag(ctx, "app", "latest"))
	checkList(t, "Tags", listTags(t, s, "app", "", -1), []string{"b", "c"})

	// DeleteManifest removes the manifest and every tag pointing at it,
	// nothing else.
	must(t, s.DeleteManifest(ctx, "app", m1.Digest))
	for _, tag := range []string{"b", "c"} {
		_, err := s.ResolveTag(ctx, "app", tag)
		wantErr(t, "ResolveTag after DeleteManifest", err, metadata.ErrNotFound)
	}
	_, err = s.GetManifest(ctx, "app", m1.Digest)
	wantErr(t, "GetManifest after DeleteManifest", err, metadata.ErrNotFound)
	wantErr(t, "second DeleteManifest", s.DeleteManifest(ctx, "app", m1.Digest), metadata.ErrNotFound)
	wantErr(t, "DeleteManifest in an unknown repository", s.DeleteManifest(ctx, "nope", m1.Digest), metadata.ErrNotFound)
	tags, err := s.Tags(ctx, "app", "", -1)
	if err != nil || tags == nil || len(tags) != 0 {
		t.Errorf("Tags of a repository with an untagged manifest = %#v, %v; want an empty, non-nil list", tags, err)
	}
	if _, err := s.GetManifest(ctx, "app", m2.Digest); err != nil {
		t.Errorf("GetManifest of the other manifest: %v", err)
	}
	wantTag(t, s, "other", "a", m1)

	// A tag can point at a manifest pushed again after the delete.
	must(t, s.PutManifest(ctx, "app", m1, "b"))
	wantTag(t, s, "app", "b", m1)
	checkList(t, "Tags after pushing again", listTags(t, s, "app", "", -1), []string{"b"})
}

// tagNames are valid tags whose byte order differs from dictionary,
// case-folding, numeric and locale-aware orders.
var tagNames = []string{
	"1.0", "1.0-rc1", "1.0.1", "1.0_b", "10", "2",
	"A", "Latest", "_x",
	"a", "a-b", "a.b", "a0", "a_b", "ab", "latest", "v1",
}

// testTagPagination pages through tags that sort differently byte-wise
// than in most other orders.
func testTagPagination(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	checkSorted(t, tagNames)
	m := manifest("paged")
	// Push in an order unrelated to the expected one.
	shuffled := slices.Clone(tagNames)
	slices.Reverse(shuffled)
	must(t, s.PutManifest(ctx, "app", m, shuffled[:5]...))
	must(t, s.PutManifest(ctx, "app", m, shuffled[5:]...))
	// Tags of another repository must not show up.
	must(t, s.PutManifest(ctx, "app-other", m, "a-c", "zz"))

	checkPages(t, "Tags", tagNames, func(last string, n int) ([]string, error) {
		return s.Tags(ctx, "app", last, n)
	})

	_, err := s.Tags(ctx, "unknown", "", 0)
	wantErr(t, "Tags(n=0) of an unknown repository", err, metadata.ErrRepositoryNotFound)
	_, err = s.Tags(ctx, "unknown", "a", 10)
	wantErr(t, "Tags(last, n) of an unknown repository", err, metadata.ErrRepositoryNotFound)
}

// testRepositoryLifecycle checks when a repository exists: from its first
// blob or manifest until the last is deleted.
func testRepositoryLifecycle(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	m := manifest("life")
	l := blob("life-layer")

	if repos := listRepos(t, s, "", -1); repos == nil || len(repos) != 0 {
		t.Errorf("Repositories of an empty store = %#v, want an empty, non-nil list", repos)
	}

	// A manifest alone makes a repository; deleting it removes it.
	must(t, s.PutManifest(ctx, "only/manifest", m, "t"))
	checkList(t, "Repositories", listRepos(t, s, "", -1), []string{"only/manifest"})
	must(t, s.DeleteManifest(ctx, "only/manifest", m.Digest))
	checkList(t, "Repositories after deleting the only manifest", listRepos(t, s, "", -1), []string{})
	_, err := s.Tags(ctx, "only/manifest", "", -1)
	wantErr(t, "Tags of an emptied repository", err, metadata.ErrRepositoryNotFound)
	_, err = allReferrers(ctx, s, "only/manifest", m.Digest, "")
	wantErr(t, "Referrers of an emptied repository", err, metadata.ErrRepositoryNotFound)

	// A blob and a manifest: the repository lives until both are gone.
	must(t, s.PutBlob(ctx, "both", l, 7))
	must(t, s.PutManifest(ctx, "both", m))
	must(t, s.DeleteManifest(ctx, "both", m.Digest))
	checkList(t, "Repositories with a blob left", listRepos(t, s, "", -1), []string{"both"})
	if tags, err := s.Tags(ctx, "both", "", -1); err != nil || len(tags) != 0 {
		t.Errorf("Tags of a repository with a blob left = %v, %v; want an empty list", tags, err)
	}
	must(t, s.PutManifest(ctx, "both", m))
	must(t, s.DeleteBlob(ctx, "both", l))
	checkList(t, "Repositories with a manifest left", listRepos(t, s, "", -1), []string{"both"})
	must(t, s.DeleteManifest(ctx, "both", m.Digest))
	checkList(t, "Repositories after deleting everything", listRepos(t, s, "", -1), []string{})
	if names, err := s.SearchRepositories(ctx, "both", -1); err != nil || len(names) != 0 {
		t.Errorf("SearchRepositories for an emptied repository = %v, %v; want none", names, err)
	}
	_, err = s.Tags(ctx, "both", "", 0)
	wantErr(t, "Tags(n=0) of an emptied repository", err, metadata.ErrRepositoryNotFound)

	// Pushing again brings it back.
	must(t, s.PutBlob(ctx, "both", l, 7))
	checkList(t, "Repositories after pushing again", listRepos(t, s, "", -1), []string{"both"})
}

// repoNames are valid repository names in byte order, which is neither
// path order ("a/b-c" before "a/b/c") nor locale order.
var repoNames = []string{
	"a", "a-b", "a.b", "a/b", "a/b-c", "a/b/c", "a/b_c", "a0", "a__b", "a_b", "ab",
	"b", "library/alpine", "library/alpine-edge", "library/alpine/x", "library/alpine0",
	"z/z",
}

// testRepositoryPagination pages through the catalog in byte order.
func testRepositoryPagination(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	checkSorted(t, repoNames)
	shuffled := slices.Clone(repoNames)
	slices.Reverse(shuffled)
	for i, name := range shuffled {
		// Alternate blobs and manifests: either makes a repository.
		if i%2 == 0 {
			must(t, s.PutBlob(ctx, name, blob("b"), 1))
		} else {
			must(t, s.PutManifest(ctx, name, manifest("m"), "latest"))
		}
	}
	checkPages(t, "Repositories", repoNames, func(last string, n int) ([]string, error) {
		return s.Repositories(ctx, last, n)
	})
}

// testReferrers covers listing, filtering and ordering referrers, and that
// they follow deletes and replacements.
func testReferrers(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	subject := manifest("subject")
	sig := manifest("sig", withSubject(subject.Digest), withArtifactType(typeSignature),
		withAnnotations(map[string]string{"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}))
	sbom1 := manifest("sbom-1", withSubject(subject.Digest), withArtifactType(typeSBOM))
	sbom2 := manifest("sbom-2", withSubject(subject.Digest), withArtifactType(typeSBOM), withMediaType(mediaTypeIndex))
	unrelated := manifest("unrelated", withSubject(blob("another subject")), withArtifactType(typeSBOM))
	plain := manifest("plain")
	// More referrers, of growing size, pushed in an order that is not the
	// digest order, so neither push order nor size can pass for it.
	var attestations []*metadata.Manifest
	for i := range 8 {
		attestations = append(attestations, manifest(fmt.Sprintf("attestation-%d%s", i, strings.Repeat(" ", i)),
			withSubject(subject.Digest), withArtifactType(typeAttestation)))
	}
	if slices.IsSortedFunc(attestations, byDigest) {
		t.Fatal("fixture: attestations are in digest order")
	}

	_, err := allReferrers(ctx, s, "app", subject.Digest, "")
	wantErr(t, "Referrers in an unknown repository", err, metadata.ErrRepositoryNotFound)

	for _, m := range append([]*metadata.Manifest{subject, sig, sbom1, sbom2, unrelated, plain}, attestations...) {
		must(t, s.PutManifest(ctx, "app", m))
	}
	// A referrer in another repository, whose subject is not stored there.
	elsewhere := manifest("elsewhere", withSubject(subject.Digest), withArtifactType(typeSignature))
	must(t, s.PutManifest(ctx, "other", elsewhere))

	refs, err := allReferrers(ctx, s, "app", subject.Digest, "")
	must(t, err)
	checkDescriptors(t, "Referrers", refs, append([]*metadata.Manifest{sig, sbom1, sbom2}, attestations...)...)

	refs, err = allReferrers(ctx, s, "app", subject.Digest, typeAttestation)
	must(t, err)
	checkDescriptors(t, "Referrers filtered by artifactType", refs, attestations...)

	refs, err = allReferrers(ctx, s, "app", subject.Digest, typeSBOM)
	must(t, err)
	checkDescriptors(t, "Referrers filtered by artifactType", refs, sbom1, sbom2)

	refs, err = allReferrers(ctx, s, "app", subject.Digest, "application/vnd.example.none")
	must(t, err)
	if refs == nil {
		t.Error("Referrers matching no artifactType returned nil, want an empty list")
	}
	checkDescriptors(t, "Referrers matching no artifactType", refs)

	refs, err = allReferrers(ctx, s, "app", blob("nothing refers to this"), "")
	must(t, err)
	if refs == nil {
		t.Error("Referrers of an unreferenced digest returned nil, want an empty list")
	}
	checkDescriptors(t, "Referrers of an unreferenced digest", refs)

	refs, err = allReferrers(ctx, s, "other", subject.Digest, "")
	must(t, err)
	checkDescriptors(t, "Referrers in the other repository", refs, elsewhere)

	// Referrers follow deletes and replacements of the referring manifest,
	// and do not depend on the subject still being there.
	must(t, s.DeleteManifest(ctx, "app", sig.Digest))
	sbom1.ArtifactType = typeSignature
	must(t, s.PutManifest(ctx, "app", sbom1))
	must(t, s.DeleteManifest(ctx, "app", subject.Digest))
	refs, err = allReferrers(ctx, s, "app", subject.Digest, typeSBOM)
	must(t, err)
	checkDescriptors(t, "Referrers after delete and replace", refs, sbom2)
	refs, err = allReferrers(ctx, s, "app", subject.Digest, typeSignature)
	must(t, err)
	checkDescriptors(t, "Referrers after delete and replace", refs, sbom1)
}

// testSearch checks case-insensitive substring search, its order and limit,
// and that wildcard characters in the query are literal.
// testReferrersPages checks the bounds of a page: by count, and by bytes
// (each page ends before the descriptor that would take it past MaxBytes,
// but holds at least one, however large).
func testReferrersPages(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	subject := manifest("pages-subject")
	must(t, s.PutManifest(ctx, "app", subject))
	big := strings.Repeat("x", 10000)
	var all []*metadata.Manifest
	for i := range 6 {
		a := map[string]string{"i": fmt.Sprint(i)}
		if i%2 == 0 {
			a["big"] = big
		}
		m := manifest(fmt.Sprintf("pages-ref-%d", i), withSubject(subject.Digest), withArtifactType(typeSBOM), withAnnotations(a))
		must(t, s.PutManifest(ctx, "app", m))
		all = append(all, m)
	}
	slices.SortFunc(all, byDigest)

	page, more, err := s.Referrers(ctx, "app", subject.Digest, metadata.ReferrersQuery{Limit: 4})
	must(t, err)
	if !more {
		t.Error("a page of 4 of 6 referrers says none follow")
	}
	checkDescriptors(t, "first page of 4", page, all[:4]...)
	page, more, err = s.Referrers(ctx, "app", subject.Digest, metadata.ReferrersQuery{Limit: 4, After: page[3].Digest})
	must(t, err)
	if more {
		t.Error("the last page says more follow")
	}
	checkDescriptors(t, "second page", page, all[4:]...)

	// By bytes: pages never exceed MaxBytes unless they hold one
	// descriptor, and together they list every referrer once.
	const maxBytes = 12000
	var got []metadata.Descriptor
	q := metadata.ReferrersQuery{Limit: 100, MaxBytes: maxBytes}
	for pages := 0; ; pages++ {
		if pages > len(all) {
			t.Fatal("paging by bytes does not end")
		}
		page, more, err := s.Referrers(ctx, "app", subject.Digest, q)
		must(t, err)
		if len(page) == 0 {
			t.Fatal("an empty page")
		}
		size := 0
		for i := range page {
			size += metadata.DescriptorSize(&page[i])
		}
		if len(page) > 1 && size > maxBytes {
			t.Errorf("a page of %d descriptors holds %d bytes, bound %d", len(page), size, maxBytes)
		}
		got = append(got, page...)
		if !more {
			break
		}
		q.After = page[len(page)-1].Digest
	}
	checkDescriptors(t, "referrers paged by bytes", got, all...)
}

// testIndexesOf checks the reverse lookup of index children.
func testIndexesOf(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	child := manifest("io-child", withBlobs(blob("io-layer")))
	other := manifest("io-other")
	ix1 := manifest("io-index-1", withMediaType(mediaTypeIndex), withManifests(child.Digest, other.Digest, child.Digest))
	ix2 := manifest("io-index-2", withMediaType(mediaTypeIndex), withManifests(child.Digest))
	for _, m := range []*metadata.Manifest{child, other, ix1, ix2} {
		must(t, s.PutManifest(ctx, "app", m))
	}
	// The same index in another repository does not count for this one.
	must(t, s.PutManifest(ctx, "elsewhere", manifest("io-index-3", withMediaType(mediaTypeIndex), withManifests(other.Digest))))

	indexes := func(repo string, d digest.Digest, n int) []string {
		t.Helper()
		got, err := s.IndexesOf(ctx, repo, d, n)
		must(t, err)
		out := digestStrings(got)
		slices.Sort(out)
		return out
	}
	want := []string{ix1.Digest.String(), ix2.Digest.String()}
	slices.Sort(want)
	checkList(t, "IndexesOf(child)", indexes("app", child.Digest, 10), want)
	if got := indexes("app", child.Digest, 1); len(got) != 1 || !slices.Contains(want, got[0]) {
		t.Errorf("IndexesOf(child, 1) = %q, want one of %q", got, want)
	}
	checkList(t, "IndexesOf(other)", indexes("app", other.Digest, 10), []string{ix1.Digest.String()})
	checkList(t, "IndexesOf(an index nothing lists)", indexes("app", ix1.Digest, 10), []string{})
	checkList(t, "IndexesOf in an unknown repository", indexes("unknown", child.Digest, 10), []string{})
	// Deleting the index drops its references.
	must(t, s.DeleteManifest(ctx, "app", ix1.Digest))
	checkList(t, "IndexesOf(other) after the index is deleted", indexes("app", other.Digest, 10), []string{})
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// testBlobRepositories checks the reverse lookup of blob links, and that
// the walk stops when asked to.
func testBlobRepositories(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	d := blob("br-shared")
	repos := []string{"b/one", "a", "a/b", "a-b", "ab"}
	for _, r := range repos {
		must(t, s.PutBlob(ctx, r, d, 5))
	}
	must(t, s.PutBlob(ctx, "z", blob("br-other"), 5))
	all := func(d digest.Digest) []string {
		t.Helper()
		got := []string{}
		must(t, s.BlobRepositories(ctx, d, func(name string) bool {
			got = append(got, name)
			return true
		}))
		slices.Sort(got)
		return got
	}
	slices.Sort(repos)
	checkList(t, "BlobRepositories", all(d), repos)
	calls := 0
	must(t, s.BlobRepositories(ctx, d, func(string) bool { calls++; return calls < 2 }))
	if calls != 2 {
		t.Errorf("yield was called %d times after it returned false on the second", calls)
	}
	must(t, s.DeleteBlob(ctx, "a-b", d))
	checkList(t, "BlobRepositories after a delete", all(d), []string{"a", "a/b", "ab", "b/one"})
	checkList(t, "BlobRepositories of an unknown blob", all(blob("br-none")), []string{})
}

func testSearch(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	names := []string{
		"a%b", "a_b", "axb", "legacy/ALPINE", "library/alpine", "library/ubuntu",
		"team/alpine-tools", "team/busybox", "zz/alpine",
	}
	checkSorted(t, names)
	for _, name := range names {
		must(t, s.PutBlob(ctx, name, blob("x"), 1))
	}
	must(t, s.PutBlob(ctx, "gone/alpine", blob("x"), 1))
	must(t, s.DeleteBlob(ctx, "gone/alpine", blob("x")))

	search := func(query string, n int, want ...string) {
		t.Helper()
		got, err := s.SearchRepositories(ctx, query, n)
		if err != nil {
			t.Errorf("SearchRepositories(%q, %d): %v", query, n, err)
			return
		}
		if got == nil {
			t.Errorf("SearchRepositories(%q, %d) returned nil, want a non-nil list", query, n)
		}
		checkList(t, fmt.Sprintf("SearchRepositories(%q, %d)", query, n), got, want)
	}
	alpines := []string{"legacy/ALPINE", "library/alpine", "team/alpine-tools", "zz/alpine"}
	search("alpine", -1, alpines...)
	search("ALP", -1, alpines...)
	search("Alpine", 10, alpines...)
	search("alpine", 2, alpines[:2]...)
	search("alpine", 0)
	search("y/ub", -1, "library/ubuntu")
	search("nothing", 10)
	search("_", -1, "a_b")
	search("%", -1, "a%b")
	search("a*b", -1)
	search("", -1, names...)
	search("", 3, names[:3]...)
}

// testCanceledContext checks that a canceled context stops a call before
// it writes anything.
func testCanceledContext(t *testing.T, s metadata.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := manifest("canceled")
	err := s.PutManifest(ctx, "app", m, "latest")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PutManifest with a canceled context: err = %v, want context.Canceled", err)
	}
	err = s.PutBlob(ctx, "app", blob("canceled"), 1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PutBlob with a canceled context: err = %v, want context.Canceled", err)
	}
	_, err = s.ResolveTag(ctx, "app", "latest")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ResolveTag with a canceled context: err = %v, want context.Canceled", err)
	}
	// Nothing was written.
	checkList(t, "Repositories after canceled writes", listRepos(t, s, "", -1), []string{})
}

// testConcurrency has writers push blobs, manifests and tags into their own
// repository and a shared one at the same time as they read back and list,
// then checks that every write landed exactly once.
func testConcurrency(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	const (
		workers   = 16
		perWorker = 12
		shared    = "conc/shared"
	)
	own := func(w int) string { return fmt.Sprintf("conc/own-%02d", w) }
	layer := func(w, i int) digest.Digest { return blob(fmt.Sprintf("layer-%d-%d", w, i)) }
	image := func(w, i int) *metadata.Manifest {
		return manifest(fmt.Sprintf("image-%d-%d", w, i), withBlobs(layer(w, i)))
	}
	common := manifest("common")

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each step must succeed; report the first failure and stop,
			// so one bug does not print hundreds of lines.
			step := func(what string, err error) bool {
				if err != nil {
					t.Errorf("worker %d: %s: %v", w, what, err)
					return false
				}
				return true
			}
			for i := range perWorker {
				l, m := layer(w, i), image(w, i)
				if !step("PutBlob own", s.PutBlob(ctx, own(w), l, int64(w*1000+i))) ||
					!step("PutBlob shared", s.PutBlob(ctx, shared, l, int64(w*1000+i))) ||
					!step("PutBlob common", s.PutBlob(ctx, shared, blob("common-layer"), 99)) ||
					!step("PutManifest own", s.PutManifest(ctx, own(w), m, fmt.Sprintf("t%02d", i))) ||
					!step("PutManifest shared", s.PutManifest(ctx, shared, m, fmt.Sprintf("w%02d-t%02d", w, i), "latest")) ||
					!step("PutManifest common", s.PutManifest(ctx, shared, common, "common")) {
					return
				}
				// Read your writes, while others write.
				got, err := s.ResolveTag(ctx, own(w), fmt.Sprintf("t%02d", i))
				if !step("ResolveTag own", err) {
					return
				}
				if got.Digest != m.Digest {
					t.Errorf("worker %d: ResolveTag own t%02d = %s, want %s", w, i, got.Digest, m.Digest)
					return
				}
				if size, err := s.BlobSize(ctx, shared, l); !step("BlobSize shared", err) {
					return
				} else if size != int64(w*1000+i) {
					t.Errorf("worker %d: BlobSize = %d, want %d", w, size, w*1000+i)
					return
				}
				_, err = s.Tags(ctx, shared, "", 5)
				if !step("Tags shared", err) {
					return
				}
				_, err = s.Repositories(ctx, "", -1)
				if !step("Repositories", err) {
					return
				}
				// A manifest pushed and deleted again by each worker.
				tmp := manifest(fmt.Sprintf("tmp-%d-%d", w, i))
				if !step("PutManifest tmp", s.PutManifest(ctx, shared, tmp, fmt.Sprintf("tmp-%d", w))) ||
					!step("DeleteManifest tmp", s.DeleteManifest(ctx, shared, tmp.Digest)) {
					return
				}
			}
			// Delete every other tag of the own repository.
			for i := 0; i < perWorker; i += 2 {
				if !step("DeleteTag", s.DeleteTag(ctx, own(w), fmt.Sprintf("t%02d", i))) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	wantRepos := []string{shared}
	wantShared := []string{"common", "latest"}
	for w := range workers {
		wantRepos = append(wantRepos, own(w))
		var wantOwn []string
		for i := range perWorker {
			if i%2 == 1 {
				wantOwn = append(wantOwn, fmt.Sprintf("t%02d", i))
			}
			wantShared = append(wantShared, fmt.Sprintf("w%02d-t%02d", w, i))
			wantSize(t, s, own(w), layer(w, i), int64(w*1000+i))
			wantSize(t, s, shared, layer(w, i), int64(w*1000+i))
			if _, err := s.GetManifest(ctx, own(w), image(w, i).Digest); err != nil {
				t.Errorf("GetManifest %s: %v", own(w), err)
			}
		}
		checkList(t, "Tags of "+own(w), listTags(t, s, own(w), "", -1), wantOwn)
	}
	slices.Sort(wantRepos)
	slices.Sort(wantShared)
	checkList(t, "Repositories", listRepos(t, s, "", -1), wantRepos)
	checkList(t, "Tags of "+shared, listTags(t, s, shared, "", -1), wantShared)
	wantTag(t, s, shared, "common", common)
	latest, err := s.ResolveTag(ctx, shared, "latest")
	must(t, err)
	if !slices.ContainsFunc(wantShared, func(tag string) bool {
		m, err := s.ResolveTag(ctx, shared, tag)
		return err == nil && tag != "latest" && m.Digest == latest.Digest
	}) {
		t.Errorf("latest points at %s, which no worker pushed", latest.Digest)
	}
	wantSize(t, s, shared, blob("common-layer"), 99)
}

// checkPages checks a paginated listing against want, which is in order:
// all at once, page by page for several page sizes, and the edges.
func checkPages(t *testing.T, what string, want []string, list func(last string, n int) ([]string, error)) {
	t.Helper()
	call := func(last string, n int) []string {
		t.Helper()
		got, err := list(last, n)
		if err != nil {
			t.Fatalf("%s(last=%q, n=%d): %v", what, last, n, err)
		}
		if got == nil {
			t.Errorf("%s(last=%q, n=%d) returned nil, want a non-nil list", what, last, n)
		}
		return got
	}

	checkList(t, what+"(n=-1)", call("", -1), want)
	checkList(t, what+"(n=-5)", call("", -5), want)
	checkList(t, what+"(n=len)", call("", len(want)), want)
	checkList(t, what+"(n=len+100)", call("", len(want)+100), want)
	checkList(t, what+"(n=0)", call("", 0), []string{})
	checkList(t, what+"(last=first, n=0)", call(want[0], 0), []string{})

	for _, n := range []int{1, 2, 3, 5, len(want) - 1} {
		var all []string
		last := ""
		for page := 0; ; page++ {
			if page > len(want) {
				t.Fatalf("%s: paging with n=%d does not end", what, n)
			}
			got := call(last, n)
			start := min(page*n, len(want))
			checkList(t, fmt.Sprintf("%s(last=%q, n=%d)", what, last, n), got, want[start:min(start+n, len(want))])
			if len(got) == 0 {
				break
			}
			all = append(all, got...)
			last = got[len(got)-1]
		}
		checkList(t, fmt.Sprintf("%s paged by %d", what, n), all, want)
	}

	// last need not be in the list: the listing starts after where it
	// would sort.
	for i, name := range want {
		checkList(t, fmt.Sprintf("%s(last=%q)", what, name), call(name, -1), want[i+1:])
		// Just above name: "\x01" sorts before every character a name
		// may contain (and, unlike NUL, every database accepts it).
		between := name + "\x01"
		checkList(t, fmt.Sprintf("%s(last=%q)", what, between), call(between, -1), want[i+1:])
	}
	checkList(t, what+"(last before all)", call("\x01", -1), want)
	checkList(t, what+"(last after all)", call(want[len(want)-1]+"~", 10), []string{})
	checkList(t, what+"(last=\"~\")", call("~", -1), []string{})
}

// manifest returns a manifest fixture whose content, digest and size are
// derived from name and whose media type is the OCI image manifest's.
func manifest(name string, opts ...func(*metadata.Manifest)) *metadata.Manifest {
	content := []byte(`{"schemaVersion":2,"name":"` + name + `"}`)
	m := &metadata.Manifest{
		Digest:    digest.FromBytes(content),
		MediaType: mediaTypeManifest,
		Size:      int64(len(content)),
		Content:   content,
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// withBlobs and the other with functions set one field of a manifest
// fixture.
func withBlobs(ds ...digest.Digest) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.Blobs = ds }
}

func withManifests(ds ...digest.Digest) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.Manifests = ds }
}

func withSubject(d digest.Digest) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.Subject = d }
}

func withArtifactType(at string) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.ArtifactType = at }
}

func withAnnotations(a map[string]string) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.Annotations = a }
}

func withMediaType(mt string) func(*metadata.Manifest) {
	return func(m *metadata.Manifest) { m.MediaType = mt }
}

// blob returns the digest of a made-up blob.
func blob(name string) digest.Digest {
	return digest.FromString("blob " + name)
}

// clone deep-copies a manifest.
func clone(m *metadata.Manifest) *metadata.Manifest {
	c := *m
	c.Content = slices.Clone(m.Content)
	c.Blobs = slices.Clone(m.Blobs)
	c.Manifests = slices.Clone(m.Manifests)
	c.Annotations = maps.Clone(m.Annotations)
	return &c
}

// must stops the test on an unexpected error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err is in category target and is not a backend's own
// "no rows" error leaking through.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error, want %v", what, target)
	case !errors.Is(err, target):
		t.Errorf("%s: err = %v, want %v", what, err, target)
	case errors.Is(err, sql.ErrNoRows):
		t.Errorf("%s: err = %v wraps sql.ErrNoRows", what, err)
	}
}

// wantSize checks BlobSize.
func wantSize(t *testing.T, s metadata.Store, repo string, d digest.Digest, want int64) {
	t.Helper()
	size, err := s.BlobSize(t.Context(), repo, d)
	if err != nil || size != want {
		t.Errorf("BlobSize(%s, %s) = %d, %v; want %d", repo, d, size, err, want)
	}
}

// wantTag checks that tag resolves to want, comparing the whole manifest.
func wantTag(t *testing.T, s metadata.Store, repo, tag string, want *metadata.Manifest) {
	t.Helper()
	got, err := s.ResolveTag(t.Context(), repo, tag)
	if err != nil {
		t.Errorf("ResolveTag(%s, %s): %v", repo, tag, err)
		return
	}
	checkManifest(t, fmt.Sprintf("ResolveTag(%s, %s)", repo, tag), got, want)
}

// checkManifest compares every field but CreatedAt; nil and empty lists
// and maps are equal.
func checkManifest(t *testing.T, what string, got, want *metadata.Manifest) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil manifest", what)
		return
	}
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.Digest != want.Digest {
		diff("Digest", got.Digest, want.Digest)
	}
	if got.MediaType != want.MediaType {
		diff("MediaType", got.MediaType, want.MediaType)
	}
	if got.ArtifactType != want.ArtifactType {
		diff("ArtifactType", got.ArtifactType, want.ArtifactType)
	}
	if got.Size != want.Size {
		diff("Size", got.Size, want.Size)
	}
	if string(got.Content) != string(want.Content) {
		diff("Content", string(got.Content), string(want.Content))
	}
	if got.Subject != want.Subject {
		diff("Subject", got.Subject, want.Subject)
	}
	if !maps.Equal(got.Annotations, want.Annotations) {
		diff("Annotations", got.Annotations, want.Annotations)
	}
	if !slices.Equal(got.Blobs, want.Blobs) {
		diff("Blobs", got.Blobs, want.Blobs)
	}
	if !slices.Equal(got.Manifests, want.Manifests) {
		diff("Manifests", got.Manifests, want.Manifests)
	}
	if len(diffs) > 0 {
		t.Errorf("%s: %s", what, strings.Join(diffs, "; "))
	}
}

// checkDescriptors compares a referrers list with the descriptors of want,
// which it sorts by digest as Referrers must.
func checkDescriptors(t *testing.T, what string, got []metadata.Descriptor, want ...*metadata.Manifest) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, byDigest)
	if len(got) != len(want) {
		t.Errorf("%s: %d descriptors, want %d: %v", what, len(got), len(want), got)
		return
	}
	for i, m := range want {
		g := got[i]
		if g.Digest != m.Digest || g.MediaType != m.MediaType || g.Size != m.Size ||
			g.ArtifactType != m.ArtifactType || !maps.Equal(g.Annotations, m.Annotations) {
			t.Errorf("%s[%d] = %+v, want mediaType %s digest %s size %d artifactType %q annotations %v",
				what, i, g, m.MediaType, m.Digest, m.Size, m.ArtifactType, m.Annotations)
		}
	}
}

// byDigest orders manifests by digest, as Referrers lists them.
func byDigest(a, b *metadata.Manifest) int {
	return strings.Compare(string(a.Digest), string(b.Digest))
}

// checkList compares name lists; nil equals empty.
func checkList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// checkSorted guards the fixtures: a list written out by hand must be in
// byte order, or the tests using it would test the wrong thing.
func checkSorted(t *testing.T, names []string) {
	t.Helper()
	if !slices.IsSorted(names) {
		t.Fatalf("fixture not in byte order: %q", names)
	}
}

// listTags lists tags, failing the test on error.
func listTags(t *testing.T, s metadata.Store, repo, last string, n int) []string {
	t.Helper()
	tags, err := s.Tags(t.Context(), repo, last, n)
	if err != nil {
		t.Fatalf("Tags(%s): %v", repo, err)
	}
	return tags
}

// listRepos lists repositories, failing the test on error.
func listRepos(t *testing.T, s metadata.Store, last string, n int) []string {
	t.Helper()
	repos, err := s.Repositories(t.Context(), last, n)
	if err != nil {
		t.Fatalf("Repositories: %v", err)
	}
	return repos
}

// testChanges checks the change notifications of a store that offers
// them: every committed change to tags or manifests is told, with the
// repository, soon after it commits. ("" may come too, when the store
// loses track; it does not count here.)
func testChanges(t *testing.T, s metadata.Store) {
	n, ok := s.(metadata.Notifier)
	if !ok {
		t.Skip("the store sends no change notifications")
	}
	ctx := t.Context()
	got := make(chan string, 100)
	stop := n.Changes(func(repo string) { got <- repo })
	defer stop()
	expect := func(what, repo string) {
		t.Helper()
		deadline := time.After(10 * time.Second) // a bound against a hang, not a synchronisation
		for {
			select {
			case r := <-got:
				if r == repo {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no notification for %s", what, repo)
			}
		}
	}
	m := manifest("changes-1")
	must(t, s.PutManifest(ctx, "changes/app", m, "v1"))
	expect("PutManifest", "changes/app")
	must(t, s.DeleteTag(ctx, "changes/app", "v1"))
	expect("DeleteTag", "changes/app")
	must(t, s.DeleteManifest(ctx, "changes/app", m.Digest))
	expect("DeleteManifest", "changes/app")
}
