package storage

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver/inmemory"
)

func TestWalkBlobs(t *testing.T) {
	ctx := context.Background()
	s := New(inmemory.New())
	walk := func() []BlobInfo {
		t.Helper()
		var got []BlobInfo
		if err := s.WalkBlobs(ctx, func(b BlobInfo) error {
			got = append(got, b)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := walk(); len(got) != 0 {
		t.Errorf("walk of an empty store = %v", got)
	}

	a, b := "first blob", "second, longer blob"
	da, db := digest.FromString(a), digest.SHA512.FromString(b)
	for _, c := range []struct {
		d       digest.Digest
		content string
	}{{da, a}, {db, b}} {
		if _, err := s.Put(ctx, "repo", c.d, strings.NewReader(c.content)); err != nil {
			t.Fatal(err)
		}
	}
	// Strays in the blob area are not blobs.
	for _, p := range []string{
		"/blobs/sha256/ab/not-hex/data",
		"/blobs/sha256/" + da.Encoded()[:2] + "/" + da.Encoded() + "/other",
		"/blobs/sha256/00/" + da.Encoded() + "/data", // wrong prefix directory
		"/blobs/md5/d4/d41d8cd98f00b204e9800998ecf8427e/data",
		"/blobs/README",
	} {
		if err := s.Driver().PutContent(ctx, p, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	got := walk()
	var ds []digest.Digest
	for _, bi := range got {
		ds = append(ds, bi.Digest)
		want := map[digest.Digest]int64{da: int64(len(a)), db: int64(len(b))}[bi.Digest]
		if bi.Size != want || bi.ModTime.IsZero() {
			t.Errorf("%s: size %d, mod time %v; want %d and a time", bi.Digest, bi.Size, bi.ModTime, want)
		}
	}
	want := []digest.Digest{da, db}
	slices.Sort(want)
	if !slices.Equal(ds, want) {
		t.Errorf("walk = %v, want %v", ds, want)
	}

	stop := errors.New("stop")
	if err := s.WalkBlobs(ctx, func(BlobInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("walk stopped by fn: %v, want its error", err)
	}
}
