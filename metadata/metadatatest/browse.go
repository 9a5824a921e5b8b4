package metadatatest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/berthhq/berth/metadata"
)

// browseTests check metadata.Browser. A store that does not implement it
// skips them; the built-in stores assert at compile time that they do.
var browseTests = []struct {
	name string
	fn   func(t *testing.T, s metadata.Store)
}{
	{"TagInfos", testTagInfos},
	{"RepositoryUsage", testRepositoryUsage},
}

func browser(t *testing.T, s metadata.Store) metadata.Browser {
	t.Helper()
	b, ok := s.(metadata.Browser)
	if !ok {
		t.Skip("the store does not implement metadata.Browser")
	}
	return b
}

func testTagInfos(t *testing.T, s metadata.Store) {
	b := browser(t, s)
	ctx := t.Context()
	created := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	img := manifest("info-img", withBlobs(blob("info-l")))
	img.CreatedAt = created
	art := manifest("info-art", withArtifactType(typeSBOM), withSubject(img.Digest))
	before := time.Now()
	must(t, s.PutManifest(ctx, "info/app", img, "v1", "latest"))
	must(t, s.PutManifest(ctx, "info/app", art, "sbom"))
	must(t, s.PutManifest(ctx, "info/other", img, "v9"))
	after := time.Now()

	got, err := b.TagInfos(ctx, "info/app", []string{"sbom", "nope", "v1", "latest", "v9"})
	must(t, err)
	names := make([]string, len(got))
	for i, ti := range got {
		names[i] = ti.Name
	}
	checkList(t, "TagInfos names", names, []string{"latest", "sbom", "v1"})
	for _, ti := range got {
		want := img
		if ti.Name == "sbom" {
			want = art
		}
		if ti.Digest != want.Digest || ti.MediaType != want.MediaType || ti.Size != want.Size || ti.ArtifactType != want.ArtifactType {
			t.Errorf("TagInfos %s = %+v, want the manifest %s (%s, %d bytes, artifact type %q)", ti.Name, ti, want.Digest, want.MediaType, want.Size, want.ArtifactType)
		}
		within(t, "TagInfos "+ti.Name+" PushedAt", ti.PushedAt, before, after)
	}
	if got[0].CreatedAt.Equal(created) != true {
		t.Errorf("TagInfos latest CreatedAt = %v, want %v (the manifest's first push)", got[0].CreatedAt, created)
	}

	// A tag pushed again is newer; the manifest keeps its time.
	repush := time.Now()
	must(t, s.PutManifest(ctx, "info/app", img, "v1"))
	got, err = b.TagInfos(ctx, "info/app", []string{"v1"})
	must(t, err)
	if len(got) != 1 || got[0].PushedAt.Before(repush.Add(-time.Second)) || !got[0].CreatedAt.Equal(created) {
		t.Errorf("after a new push of v1: TagInfos = %+v, want PushedAt after %v and CreatedAt %v", got, repush, created)
	}

	for _, tc := range []struct {
		repo string
		tags []string
	}{{"info/app", nil}, {"info/unknown", []string{"v1"}}} {
		got, err := b.TagInfos(ctx, tc.repo, tc.tags)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("TagInfos(%s, %q) = %v, %v; want an empty list", tc.repo, tc.tags, got, err)
		}
	}
	many := make([]string, metadata.MaxTagInfos+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	if _, err := b.TagInfos(ctx, "info/app", many); err == nil {
		t.Errorf("TagInfos of %d names: no error, want one (at most %d)", len(many), metadata.MaxTagInfos)
	}
	if _, err := b.TagInfos(ctx, "info/app", many[:metadata.MaxTagInfos]); err != nil {
		t.Errorf("TagInfos of %d names: %v", metadata.MaxTagInfos, err)
	}
}

func testRepositoryUsage(t *testing.T, s metadata.Store) {
	b := browser(t, s)
	ctx := t.Context()
	l1, l2, shared := blob("use-1"), blob("use-2"), blob("use-shared")
	must(t, s.PutBlob(ctx, "use/a", l1, 100))
	must(t, s.PutBlob(ctx, "use/a", shared, 1000))
	must(t, s.PutBlob(ctx, "use/b", l2, 20))
	must(t, s.PutBlob(ctx, "use/b", shared, 1000))
	ma := manifest("use-a", withBlobs(l1, shared))
	must(t, s.PutManifest(ctx, "use/a", ma, "v1"))
	must(t, s.PutBlob(ctx, "use/c", l2, 20))

	got, err := b.RepositoryUsage(ctx, "", 10)
	must(t, err)
	want := []metadata.RepositoryUsage{
		{Name: "use/a", Blobs: 2, BlobBytes: 1100, Manifests: 1, ManifestBytes: ma.Size},
		{Name: "use/b", Blobs: 2, BlobBytes: 1020},
		{Name: "use/c", Blobs: 1, BlobBytes: 20},
	}
	if !slices.Equal(got, want) {
		t.Errorf("RepositoryUsage = %+v, want %+v", got, want)
	}
	got, err = b.RepositoryUsage(ctx, "use/a", 1)
	must(t, err)
	if !slices.Equal(got, want[1:2]) {
		t.Errorf("RepositoryUsage after use/a, 1 = %+v, want %+v", got, want[1:2])
	}
	got, err = b.RepositoryUsage(ctx, "use/c", 5)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("RepositoryUsage after the last = %v, %v; want an empty list", got, err)
	}
	for _, n := range []int{0, -1, metadata.MaxUsagePage + 1} {
		if _, err := b.RepositoryUsage(ctx, "", n); err == nil {
			t.Errorf("RepositoryUsage with n=%d: no error, want one", n)
		}
	}
}
