package gc

import (
	"errors"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	t.Parallel()
	r := &Report{
		Repositories: 2,
		Tags:         []Item{{Repository: "app", Ref: "old"}},
		Manifests:    []Item{{Repository: "app", Ref: "sha256:aa", Size: 300}},
		Links:        []Item{{Repository: "app", Ref: "sha256:bb", Size: 2048}, {Repository: "lib", Ref: "sha256:bb", Size: 2048}},
		Blobs:        []Item{{Ref: "sha256:bb", Size: 2048}, {Ref: "sha256:cc", Size: 3 << 20}},
	}
	if got, want := r.Summary(), "freed 2 blobs (3.0 MiB); removed 1 manifest, 2 blob links and 1 tag; 2 repositories examined"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	r.DryRun = true
	r.Errors = []error{errors.New("x")}
	if got, want := r.Summary(), "dry run: would free 2 blobs (3.0 MiB); would remove 1 manifest, 2 blob links and 1 tag; 2 repositories examined; 1 failure"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	var b strings.Builder
	if err := r.WriteList(&b); err != nil {
		t.Fatal(err)
	}
	want := `tag      app:old
manifest app@sha256:aa 300 B
link     app@sha256:bb 2.0 KiB
link     lib@sha256:bb 2.0 KiB
blob     sha256:bb 2.0 KiB
blob     sha256:cc 3.0 MiB
`
	if b.String() != want {
		t.Errorf("WriteList:\n%s\nwant:\n%s", b.String(), want)
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
