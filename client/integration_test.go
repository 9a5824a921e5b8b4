package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// testImages writes a Docker schema 2 image and a two-platform OCI index into a layout, named
// "img" and "idx".
func testImages(t testing.TB) (l *client.Layout, img, idx client.Descriptor, children []client.Descriptor) {
	t.Helper()
	l = openLayout(t)
	img = writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"}, docker: true,
		layers: []layer{{1, 200 << 10}, {2, 30 << 10}}})
	amd := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"},
		layers: []layer{{3, 150 << 10}, {2, 30 << 10}}})
	arm := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		layers: []layer{{4, 120 << 10}}})
	children = []client.Descriptor{amd, arm}
	idx = writeIndex(t, l, children...)
	for name, d := range map[string]client.Descriptor{"img": img, "idx": idx} {
		if err := l.Tag(name, d); err != nil {
			t.Fatal(err)
		}
	}
	return l, img, idx, children
}

// TestCopyBetweenRegistries pushes an image and an index to berth, copies them to the
// distribution registry and back, pulls them, and checks every digest on the way.
func TestCopyBetweenRegistries(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	dist := startDistribution(t, distOptions{})
	l, img, idx, _ := testImages(t)
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)), client.WithConcurrency(2))

	rec := &recorder{}
	for _, tc := range []struct {
		name string
		want client.Descriptor
	}{{"img", img}, {"idx", idx}} {
		rec.reset()
		d, err := c.Push(ctx, l, tc.name, mustRef(t, berth+"/app:"+tc.name), client.CopyOptions{Progress: rec.add})
		if err != nil {
			t.Fatalf("push %s: %v", tc.name, err)
		}
		if d.Digest != tc.want.Digest {
			t.Fatalf("push %s: digest %s, want %s", tc.name, d.Digest, tc.want.Digest)
		}
		rec.checkProgress(t)
		for _, b := range blobsOf(t, l, tc.want) {
			if k, ok := rec.final()[b]; !ok && !slices.Contains(rec.manifests(), b) {
				t.Errorf("push %s: no progress for %s", tc.name, b)
			} else if ok && k != client.BlobDone && k != client.BlobExists {
				t.Errorf("push %s: blob %s ended as %v", tc.name, b, k)
			}
		}
	}

	// berth → distribution → berth (another repository), then pull.
	for _, name := range []string{"img", "idx"} {
		want := img
		if name == "idx" {
			want = idx
		}
		hops := []struct{ from, to string }{
			{berth + "/app:" + name, dist + "/mirror/app:" + name},
			{dist + "/mirror/app:" + name, berth + "/back/app:" + name},
		}
		for _, hop := range hops {
			d, err := c.Copy(ctx, mustRef(t, hop.from), mustRef(t, hop.to), client.CopyOptions{})
			if err != nil {
				t.Fatalf("copy %s → %s: %v", hop.from, hop.to, err)
			}
			if d.Digest != want.Digest {
				t.Fatalf("copy %s → %s: digest %s, want %s", hop.from, hop.to, d.Digest, want.Digest)
			}
			got, err := c.GetManifest(ctx, mustRef(t, hop.to))
			if err != nil {
				t.Fatal(err)
			}
			if got.Descriptor.Digest != want.Digest {
				t.Fatalf("%s has digest %s, want %s", hop.to, got.Descriptor.Digest, want.Digest)
			}
		}
		pulled := openLayout(t)
		ref := mustRef(t, berth+"/back/app:"+name)
		d, err := c.Pull(ctx, ref, pulled, client.CopyOptions{})
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if d.Digest != want.Digest {
			t.Fatalf("pull %s: digest %s", ref, d.Digest)
		}
		if r, err := pulled.Resolve(ref.String()); err != nil || r.Digest != want.Digest {
			t.Fatalf("pulled layout names %s as %v, %v", ref, r.Digest, err)
		}
		for _, b := range blobsOf(t, l, want) {
			if !pulled.HasBlob(b) {
				t.Errorf("pull %s: blob %s missing", name, b)
			}
		}
	}

	// Blobs read back through the API match their digests, from both registries.
	for _, host := range []string{berth + "/back/app", dist + "/mirror/app"} {
		repo := mustRef(t, host)
		for _, b := range blobsOf(t, l, img)[1:] {
			rc, err := c.GetBlob(ctx, repo, b)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || digest.FromBytes(data) != b {
				t.Fatalf("blob %s from %s: %v", b, host, err)
			}
		}
	}

	// Delete by digest, on both registries.
	for _, host := range []string{berth, dist} {
		ref := mustRef(t, host+"/"+map[string]string{berth: "back/app", dist: "mirror/app"}[host]+"@"+img.Digest.String())
		if err := c.DeleteManifest(ctx, ref); err != nil {
			t.Fatalf("delete %s: %v", ref, err)
		}
		_, err := c.HeadManifest(ctx, ref)
		expectNotFound(t, "head after delete", err)
		if err != nil && !strings.Contains(err.Error(), ref.String()) {
			t.Errorf("error %q does not name %s", err, ref)
		}
	}
}

// TestCopyMountsAndSkips: within one registry blobs are mounted; what the destination
// has is not sent again.
func TestCopyMountsAndSkips(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	l, img, idx, children := testImages(t)
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	if _, err := c.Push(ctx, l, "idx", mustRef(t, berth+"/src/app:idx"), client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	if _, err := c.Copy(ctx, mustRef(t, berth+"/src/app:idx"), mustRef(t, berth+"/dst/app:v1"), client.CopyOptions{Progress: rec.add}); err != nil {
		t.Fatal(err)
	}
	final := rec.final()
	if len(final) == 0 {
		t.Fatal("no blob events")
	}
	for d, k := range final {
		if k != client.BlobMounted && k != client.BlobExists {
			t.Errorf("blob %s: %v, want mounted", d, k)
		}
	}
	if m := rec.manifests(); len(m) != 3 || m[2] != idx.Digest {
		t.Errorf("manifests written %v: want both children, then the index %s", m, idx.Digest)
	}

	// Again: the index is there, so nothing but the tag is written.
	rec.reset()
	if _, err := c.Copy(ctx, mustRef(t, berth+"/src/app:idx"), mustRef(t, berth+"/dst/app:v2"), client.CopyOptions{Progress: rec.add}); err != nil {
		t.Fatal(err)
	}
	if len(rec.final()) != 0 {
		t.Errorf("second copy moved blobs: %v", rec.final())
	}
	if tags, err := c.Tags(ctx, mustRef(t, berth+"/dst/app"), client.ListOptions{}); err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Errorf("tags %v, %v", tags, err)
	}

	// An image sharing a layer with one already there: that layer exists, the rest is sent.
	pushed := openLayout(t)
	shared := writeImage(t, pushed, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"},
		layers: []layer{{3, 150 << 10}, {99, 10 << 10}}})
	if err := pushed.Tag("shared", shared); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	if _, err := c.Push(ctx, pushed, "shared", mustRef(t, berth+"/dst/app:shared"), client.CopyOptions{Progress: rec.add}); err != nil {
		t.Fatal(err)
	}
	sharedLayer := digest.FromBytes(randomBytes(150<<10, 3))
	newLayer := digest.FromBytes(randomBytes(10<<10, 99))
	if k := rec.final()[sharedLayer]; k != client.BlobExists {
		t.Errorf("shared layer: %v, want exists", k)
	}
	if k := rec.final()[newLayer]; k != client.BlobDone {
		t.Errorf("new layer: %v, want done", k)
	}
	_ = img
	_ = children
}

// TestCopyPlatformFilter keeps only the matching children of an index.
func TestCopyPlatformFilter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	dist := startDistribution(t, distOptions{})
	l, _, idx, children := testImages(t)
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	if _, err := c.Push(ctx, l, "idx", mustRef(t, berth+"/app:idx"), client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	arm, err := client.ParsePlatform("linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	dst := mustRef(t, dist+"/filtered:arm")
	d, err := c.Copy(ctx, mustRef(t, berth+"/app:idx"), dst, client.CopyOptions{Platforms: []client.Platform{arm}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest == idx.Digest {
		t.Fatal("the filtered index has the source's digest")
	}
	m, err := c.GetManifest(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := m.Index()
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Manifests) != 1 || ix.Manifests[0].Digest != children[1].Digest {
		t.Fatalf("filtered index lists %v", ix.Manifests)
	}
	_, err = c.HeadManifest(ctx, dst.Repo().WithDigest(children[0].Digest))
	expectNotFound(t, "the amd64 image", err)
	if _, err := c.HeadManifest(ctx, dst.Repo().WithDigest(children[1].Digest)); err != nil {
		t.Errorf("the arm64 image: %v", err)
	}

	_, err = c.Copy(ctx, mustRef(t, berth+"/app:idx"), mustRef(t, dist+"/filtered:none"),
		client.CopyOptions{Platforms: []client.Platform{{OS: "windows", Architecture: "amd64"}}})
	expectNotFound(t, "no platform matches", err)
}

// breakingProxy forwards to a registry, but cuts the connection of the nth PATCH after
// passing its first half on as a complete chunk, as a connection that broke mid-chunk
// leaves a registry holding part of the data.
type breakingProxy struct {
	srv        *httptest.Server
	patches    atomic.Int32
	statusGets atomic.Int32
	breakAt    int32
}

func newBreakingProxy(t *testing.T, upstream string, breakAt int32) *breakingProxy {
	t.Helper()
	p := &breakingProxy{breakAt: breakAt}
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = loopbackTransport(nil)
	rp.ModifyResponse = func(resp *http.Response) error {
		// Keep the client on the proxy when the registry answers with absolute URLs.
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, "http://"+upstream, p.srv.URL, 1))
		}
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			p.statusGets.Add(1)
		}
		if r.Method == http.MethodPatch && p.patches.Add(1) == p.breakAt {
			body, _ := io.ReadAll(r.Body)
			start, _, _ := strings.Cut(r.Header.Get("Content-Range"), "-")
			var s int64
			fmt.Sscan(start, &s)
			half := body[:len(body)/2]
			u := *target
			u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPatch, u.String(), bytes.NewReader(half))
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", s, s+int64(len(half))-1))
			if resp, err := loopbackTransport(nil).RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *breakingProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// TestChunkedUploadResume uploads in chunks, resumes an abandoned upload from the offset
// the registry reports, and survives a connection that breaks in the middle of a chunk.
func TestChunkedUploadResume(t *testing.T) {
	t.Parallel()
	const chunk = 64 << 10
	data := randomBytes(5*chunk+1234, 42)
	desc := client.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			host := start(t)
			c := newClient(t, client.WithChunkSize(chunk), client.WithBaseTransport(loopbackTransport(nil)))
			readBack := func(repo client.Reference) {
				t.Helper()
				rc, err := c.GetBlob(ctx, repo, desc.Digest)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("blob read back from %s: %d bytes, %v", repo, len(got), err)
				}
			}

			// Chunked by PushBlob.
			repo := mustRef(t, host+"/chunked/a")
			if err := c.PushBlob(ctx, repo, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			readBack(repo)

			// Abandoned after two chunks, resumed from its location.
			repo = mustRef(t, host+"/chunked/b")
			u, err := c.StartUpload(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < 2*chunk; off += chunk {
				if err := u.WriteChunk(ctx, data[off:off+chunk]); err != nil {
					t.Fatal(err)
				}
			}
			location := u.Location()
			resumed, err := newClient(t, client.WithChunkSize(chunk), client.WithBaseTransport(loopbackTransport(nil))).ResumeUpload(ctx, repo, location)
			if err != nil {
				t.Fatal(err)
			}
			if resumed.Offset() != 2*chunk {
				t.Fatalf("resumed at %d, want %d", resumed.Offset(), 2*chunk)
			}
			for off := resumed.Offset(); off < int64(len(data)); off = resumed.Offset() {
				end := min(off+chunk, int64(len(data)))
				if err := resumed.WriteChunk(ctx, data[off:end]); err != nil {
					t.Fatal(err)
				}
			}
			if err := resumed.Commit(ctx, desc.Digest); err != nil {
				t.Fatal(err)
			}
			readBack(repo)

			// A connection broken in the third chunk: the registry holds half of it, the
			// client asks where the data ends and sends the rest.
			proxy := newBreakingProxy(t, host, 3)
			pc := newClient(t, client.WithChunkSize(chunk), client.WithBaseTransport(loopbackTransport(nil)))
			repo = mustRef(t, proxy.host()+"/chunked/c")
			if err := pc.PushBlob(ctx, repo, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if proxy.statusGets.Load() == 0 {
				t.Error("the upload went on without asking the registry for its status")
			}
			readBack(mustRef(t, host+"/chunked/c"))
		})
	}
}

// TestListingPagination follows Link headers through tags and the catalog.
func TestListingPagination(t *testing.T) {
	t.Parallel()
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			host := start(t)
			c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
			l := openLayout(t)
			img := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"}, layers: []layer{{7, 1000}}})
			if err := l.Tag("x", img); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 1; i <= 7; i++ {
				tag := fmt.Sprintf("t%02d", i)
				want = append(want, tag)
				if _, err := c.Push(ctx, l, "x", mustRef(t, host+"/paged:"+tag), client.CopyOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Push(ctx, l, "x", mustRef(t, host+"/paged2:v"), client.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			repo := mustRef(t, host+"/paged")
			var sizes []int
			var got []string
			for page, err := range c.TagPages(ctx, repo, client.ListOptions{PageSize: 3}) {
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page))
				got = append(got, page...)
			}
			if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
				t.Errorf("tag pages %v: %v, want %v", sizes, got, want)
			}
			all, err := c.Tags(ctx, repo, client.ListOptions{PageSize: 2, Last: "t03"})
			if err != nil || !slices.Equal(all, want[3:]) {
				t.Errorf("tags after t03: %v, %v", all, err)
			}
			repos, err := c.Catalog(ctx, host, client.ListOptions{PageSize: 1})
			if err != nil || !slices.Equal(repos, []string{"paged", "paged2"}) {
				t.Errorf("catalog: %v, %v", repos, err)
			}
			_, err = c.Tags(ctx, mustRef(t, host+"/nothing-here"), client.ListOptions{})
			expectNotFound(t, "tags of an unknown repository", err)
		})
	}
}

// TestReferrers: berth answers the referrers API; against the distribution registry the
// client keeps and reads the fallback tag.
func TestReferrers(t *testing.T) {
	t.Parallel()
	const sbomType = "application/vnd.berth.test.sbom"
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			host := start(t)
			c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
			l := openLayout(t)
			img := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"}, layers: []layer{{8, 2000}}})
			if err := l.Tag("x", img); err != nil {
				t.Fatal(err)
			}
			ref := mustRef(t, host+"/subject:v1")
			if _, err := c.Push(ctx, l, "x", ref, client.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			// An artifact whose subject is the image.
			empty := []byte("{}")
			sbom := []byte(`{"sbom":true}`)
			emptyDesc := client.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2}
			sbomDesc := client.Descriptor{MediaType: "application/json", Digest: digest.FromBytes(sbom), Size: int64(len(sbom))}
			for _, b := range []struct {
				d    client.Descriptor
				data []byte
			}{{emptyDesc, empty}, {sbomDesc, sbom}} {
				if err := c.PushBlob(ctx, ref, b.d, bytes.NewReader(b.data)); err != nil {
					t.Fatal(err)
				}
			}
			subject := client.Descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: img.Size}
			body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": client.MediaTypeOCIManifest,
				"artifactType": sbomType, "config": emptyDesc, "layers": []client.Descriptor{sbomDesc}, "subject": subject})
			art := client.NewManifest(client.MediaTypeOCIManifest, body)
			if _, err := c.PutManifest(ctx, ref.Repo().WithDigest(art.Descriptor.Digest), art); err != nil {
				t.Fatal(err)
			}

			got, err := c.Referrers(ctx, ref, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Digest != art.Descriptor.Digest || got[0].ArtifactType != sbomType {
				t.Fatalf("referrers of %s: %+v", ref, got)
			}
			if got, err := c.Referrers(ctx, ref, "application/other"); err != nil || len(got) != 0 {
				t.Errorf("referrers of another type: %+v, %v", got, err)
			}
			tags, err := c.Tags(ctx, ref.Repo(), client.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			hasFallback := slices.Contains(tags, client.ReferrersTag(img.Digest))
			if wantFallback := name == "distribution"; hasFallback != wantFallback {
				t.Errorf("fallback tag present: %v, want %v (tags %v)", hasFallback, wantFallback, tags)
			}
			// A subject with no referrers.
			if got, err := c.Referrers(ctx, ref.Repo().WithDigest(art.Descriptor.Digest), ""); err != nil || len(got) != 0 {
				t.Errorf("referrers of the artifact: %+v, %v", got, err)
			}
		})
	}
}

// TestSearch: berth serves /v1/search; the distribution registry has no such API.
func TestSearch(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	dist := startDistribution(t, distOptions{})
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	l := openLayout(t)
	img := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"}, layers: []layer{{9, 500}}})
	if err := l.Tag("x", img); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"team/searchable-app:1", "other:1"} {
		if _, err := c.Push(ctx, l, "x", mustRef(t, berth+"/"+r), client.CopyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	registry, term := client.SplitSearchTerm(berth + "/searchable")
	if registry != berth || term != "searchable" {
		t.Fatalf("SplitSearchTerm: %q %q", registry, term)
	}
	res, err := c.Search(ctx, registry, term, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !strings.Contains(res[0].Name, "team/searchable-app") {
		t.Errorf("search results %+v", res)
	}
	_, err = c.Search(ctx, dist, "x", 0)
	if !errors.Is(err, client.ErrUnsupported) {
		t.Errorf("search on distribution: %v, want ErrUnsupported", err)
	}
}

// TestMirrors pulls Docker Hub names through mirrors: a mirror without the image is passed
// over for the next one. (The test dialer refuses anything but loopback, so Docker Hub
// itself is never reached.)
func TestMirrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	empty := startBerth(t)
	full := startBerth(t)
	l := openLayout(t)
	img := writeImage(t, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"}, layers: []layer{{10, 4000}}})
	if err := l.Tag("x", img); err != nil {
		t.Fatal(err)
	}
	pusher := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	if _, err := pusher.Push(ctx, l, "x", mustRef(t, full+"/library/mirrored:1"), client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	if err := c.Service().Reload(serviceOptions(t, []string{"http://" + empty, "http://" + full}, nil)); err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, "mirrored:1")
	if ref.String() != "docker.io/library/mirrored:1" {
		t.Fatalf("normalised to %s", ref)
	}
	pulled := openLayout(t)
	d, err := c.Pull(ctx, ref, pulled, client.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != img.Digest {
		t.Fatalf("pulled %s, want %s", d.Digest, img.Digest)
	}
}

// TestHTTPOnlyForInsecure: a registry that speaks plain HTTP is reached only once it is
// listed as insecure (loopback addresses always are).
func TestHTTPOnlyForInsecure(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	_, port, _ := strings.Cut(berth, ":")
	name := "plain.test:" + port
	c := newClient(t, client.WithBaseTransport(loopbackTransport(map[string]string{name: berth})))
	if err := c.Ping(ctx, berth); err != nil {
		t.Fatalf("loopback registry over HTTP: %v", err)
	}
	if err := c.Ping(ctx, name); err == nil {
		t.Fatal("a registry not listed as insecure was reached over plain HTTP")
	}
	if err := c.Service().Reload(serviceOptions(t, nil, []string{name})); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx, name); err != nil {
		t.Fatalf("insecure registry over HTTP: %v", err)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// bothRegistries starts each of the registries the client is tested
// against, by name, and returns its host.
var bothRegistries = map[string]func(testing.TB) string{
	"berth":        startBerth,
	"distribution": func(t testing.TB) string { return startDistribution(t, distOptions{}) },
}
