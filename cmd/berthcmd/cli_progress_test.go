package berthcmd

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"

	"github.com/berthhq/berth/client"
)

func progressEvents() []client.ProgressEvent {
	a := client.Descriptor{Digest: digest.FromString("a"), Size: 3 << 20}
	b := client.Descriptor{Digest: digest.FromString("b"), Size: 10}
	m := client.Descriptor{Digest: digest.FromString("manifest"), Size: 400}
	return []client.ProgressEvent{
		{Kind: client.BlobStarted, Descriptor: a},
		{Kind: client.BlobProgress, Descriptor: a, Transferred: 1 << 20},
		{Kind: client.BlobExists, Descriptor: b, Transferred: 10},
		{Kind: client.BlobProgress, Descriptor: a, Transferred: 3 << 20},
		{Kind: client.BlobDone, Descriptor: a, Transferred: 3 << 20},
		{Kind: client.ManifestDone, Descriptor: m, Transferred: 400},
	}
}

func TestLineProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, false, false)
	for _, e := range progressEvents() {
		p.event(e)
	}
	p.finish(false)
	want := []string{
		shortDigest(progressEvents()[0].Descriptor) + ": copying 3.0 MiB",
		shortDigest(progressEvents()[2].Descriptor) + ": exists  10 B",
		shortDigest(progressEvents()[0].Descriptor) + ": done    3.0 MiB",
		digest.FromString("manifest").String() + ": manifest written",
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

func TestQuietProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, true, true)
	for _, e := range progressEvents() {
		p.event(e)
	}
	p.finish(false)
	if buf.Len() != 0 {
		t.Errorf("quiet progress wrote %q", buf.String())
	}
}

// TestBarProgress draws bars into a buffer as on a terminal, from several goroutines as the
// client calls it, and checks that each blob is shown and the display ends.
func TestBarProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newBarProgress(&buf, mpb.WithAutoRefresh())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := client.Descriptor{Digest: digest.FromString(strings.Repeat("x", i+1)), Size: 1 << 20}
			p.event(client.ProgressEvent{Kind: client.BlobStarted, Descriptor: d})
			for n := int64(0); n <= d.Size; n += 64 << 10 {
				p.event(client.ProgressEvent{Kind: client.BlobProgress, Descriptor: d, Transferred: n})
			}
			p.event(client.ProgressEvent{Kind: client.BlobDone, Descriptor: d, Transferred: d.Size})
		}()
	}
	wg.Wait()
	p.event(client.ProgressEvent{Kind: client.BlobExists, Descriptor: client.Descriptor{Digest: digest.FromString("e"), Size: 5}})
	started := client.Descriptor{Digest: digest.FromString("never done"), Size: 100}
	p.event(client.ProgressEvent{Kind: client.BlobStarted, Descriptor: started})
	p.finish(true) // must return although a bar never completed
	out := buf.String()
	for i := range 4 {
		d := client.Descriptor{Digest: digest.FromString(strings.Repeat("x", i+1))}
		if !strings.Contains(out, shortDigest(d)) {
			t.Errorf("no bar for %s in:\n%s", shortDigest(d), out)
		}
	}
	if !strings.Contains(out, "exists") {
		t.Errorf("no line for the existing blob in:\n%s", out)
	}
}

func TestHumanSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 1 << 30: "1.0 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestChooseArchiveImage(t *testing.T) {
	t.Parallel()
	one := client.ArchiveImage{Descriptor: client.Descriptor{Digest: digest.FromString("1")}, RepoTags: []string{"registry.example/app:v1", "app:latest"}}
	two := client.ArchiveImage{Descriptor: client.Descriptor{Digest: digest.FromString("2")}}
	for _, tc := range []struct {
		images []client.ArchiveImage
		name   string
		want   string
		code   int
	}{
		{[]client.ArchiveImage{one}, "", "registry.example/app:v1", 0},
		{[]client.ArchiveImage{two}, "", digest.FromString("2").String(), 0},
		{[]client.ArchiveImage{one, two}, "", "", exitUsage},
		{[]client.ArchiveImage{one, two}, "app:latest", "registry.example/app:v1", 0},
		{[]client.ArchiveImage{one, two}, "docker.io/library/app:latest", "registry.example/app:v1", 0},
		{[]client.ArchiveImage{one, two}, digest.FromString("2").String(), digest.FromString("2").String(), 0},
		{[]client.ArchiveImage{one, two}, "app:v9", "", exitNotFound},
	} {
		got, err := chooseArchiveImage(tc.images, tc.name)
		switch {
		case tc.code != 0 && (err == nil || exitCode(err) != tc.code):
			t.Errorf("%q: %v, want exit code %d", tc.name, err, tc.code)
		case tc.code == 0 && (err != nil || got != tc.want):
			t.Errorf("%q: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
