package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/service"
)

// The daemon's registry primitives beyond push, pull and copy: ping answers that are not a
// registry's, meta headers, mirrors with a path, non-distributable layers, search filters,
// and the indexes that keep a manifest.

func TestPingNotRegistry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html>a web site</html>"))
	}))
	t.Cleanup(web.Close)
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	for name, start := range bothRegistries {
		if err := c.Ping(ctx, start(t)); err != nil {
			t.Errorf("ping %s: %v", name, err)
		}
	}
	err := c.Ping(ctx, strings.TrimPrefix(web.URL, "http://"))
	var pe *client.PingResponseError
	if !client.IsNotRegistry(err) || !errors.As(err, &pe) || pe.StatusCode != http.StatusNotFound || !strings.Contains(err.Error(), "not a V2 registry") {
		t.Errorf("ping of a web server: %v, want a ping response error", err)
	}
	if err := c.Ping(ctx, freeAddr(t)); err == nil || client.IsNotRegistry(err) {
		t.Errorf("ping of a closed port: %v, want a transport error", err)
	}
}

// headerProxy forwards to a registry and records the headers of every request.
type headerProxy struct {
	mu      sync.Mutex
	headers []http.Header
	srv     *httptest.Server
}

func newHeaderProxy(t *testing.T, upstream, stripPrefix string) *headerProxy {
	t.Helper()
	target, _ := url.Parse("http://" + upstream)
	p := &headerProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.headers = append(p.headers, r.Header.Clone())
		p.mu.Unlock()
		if stripPrefix != "" {
			rest, ok := strings.CutPrefix(r.URL.Path, stripPrefix)
			if !ok {
				http.Error(w, "outside the prefix", http.StatusNotFound)
				return
			}
			r.URL.Path, r.URL.RawPath = rest, ""
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *headerProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *headerProxy) seen() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.headers...)
}

func TestMetaHeaders(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	l, img, _, _ := testImages(t)
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			proxy := newHeaderProxy(t, start(t), "")
			c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)),
				client.WithHeaders(http.Header{"X-Meta-Build": {"ci-42"}, "X-Meta-Multi": {"a", "b"}}))
			ref := mustRef(t, proxy.host()+"/meta/app:v1")
			if _, err := c.Push(ctx, l, "img", ref, client.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Pull(ctx, ref, openLayout(t), client.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			seen := proxy.seen()
			if len(seen) < 5 {
				t.Fatalf("only %d requests went through the proxy", len(seen))
			}
			for i, h := range seen {
				if h.Get("X-Meta-Build") != "ci-42" || strings.Join(h.Values("X-Meta-Multi"), ",") != "a,b" || h.Get("User-Agent") != "berth-client-test" {
					t.Fatalf("request %d of %d lacks the meta headers: %v", i, len(seen), h)
				}
			}
			if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != img.Digest {
				t.Errorf("resolve through the proxy: %v, %v", d.Digest, err)
			}
		})
	}
}

// TestMirrorWithPath pulls a Docker Hub name through a mirror that serves the API under a
// path, as the daemon allows ("https://proxy.example/dockerhub").
func TestMirrorWithPath(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	l, img, _, _ := testImages(t)
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := start(t)
			pusher := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
			if _, err := pusher.Push(ctx, l, "img", mustRef(t, reg+"/library/pathmirrored:1"), client.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			proxy := newHeaderProxy(t, reg, "/hub/mirror")
			c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
			if err := c.Service().Reload(serviceOptions(t, []string{"http://" + proxy.host() + "/hub/mirror/"}, nil)); err != nil {
				t.Fatal(err)
			}
			d, err := c.Pull(ctx, mustRef(t, "pathmirrored:1"), openLayout(t), client.CopyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest != img.Digest {
				t.Fatalf("pulled %s, want %s", d.Digest, img.Digest)
			}
			if len(proxy.seen()) == 0 {
				t.Fatal("the mirror was not asked")
			}
		})
	}
}

// foreignImage writes an image whose second layer is a Docker foreign layer with a URL.
// withBlob says whether the layer's bytes are in the layout too.
func foreignImage(t *testing.T, withBlob bool) (*client.Layout, client.Descriptor, client.Descriptor) {
	t.Helper()
	l := openLayout(t)
	base := writeBlob(t, l, "application/vnd.docker.image.rootfs.diff.tar.gzip", randomBytes(3000, 71))
	data := randomBytes(5000, 72)
	foreign := client.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		Digest: digest.FromBytes(data), Size: int64(len(data)), URLs: []string{"https://foreign.example/layer.tar.gz"}}
	if withBlob {
		if err := l.WriteBlob(foreign, bytesReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	cfgData, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "windows",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{base.Digest, foreign.Digest}}})
	cfg := writeBlob(t, l, "application/vnd.docker.container.image.v1+json", cfgData)
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": client.MediaTypeDockerManifest,
		"config": cfg, "layers": []client.Descriptor{base, foreign}})
	m := writeBlob(t, l, client.MediaTypeDockerManifest, body)
	if err := l.Tag("foreign", m); err != nil {
		t.Fatal(err)
	}
	return l, m, foreign
}

// TestNondistributableLayers pushes and copies an image with a foreign layer: its bytes go
// only to registries allowed by allow-nondistributable-artifacts.
func TestNondistributableLayers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	l, m, foreign := foreignImage(t, true)
	berth := startBerth(t)
	// distribution refuses manifests with layer URLs unless they are allowed.
	dist := startDistribution(t, distOptions{allowURLs: "^https://foreign\\.example/"})
	newClientFor := func(allowed ...string) *client.Client {
		svc, err := service.New(service.Options{CertsDir: t.TempDir(), AllowNondistributableArtifacts: allowed})
		if err != nil {
			t.Fatal(err)
		}
		return newClient(t, client.WithBaseTransport(loopbackTransport(nil)), client.WithService(svc))
	}
	has := func(c *client.Client, ref string) bool {
		t.Helper()
		_, err := c.HeadBlob(ctx, mustRef(t, ref).Repo(), foreign.Digest)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	plain := newClientFor()
	allowing := newClientFor(dist, "127.0.0.0/8") // dist by name, berth by range

	// Pushed from a layout: to an allowed registry with the layer, else without.
	for _, tc := range []struct {
		c    *client.Client
		ref  string
		want bool
	}{
		{plain, berth + "/foreign/plain:1", false},
		{allowing, berth + "/foreign/allowed:1", true},
		{plain, dist + "/foreign/plain:1", false},
		{allowing, dist + "/foreign/allowed:1", true},
	} {
		d, err := tc.c.Push(ctx, l, "foreign", mustRef(t, tc.ref), client.CopyOptions{})
		if err != nil {
			t.Fatalf("push %s: %v", tc.ref, err)
		}
		if d.Digest != m.Digest {
			t.Fatalf("push %s: digest %s, want %s", tc.ref, d.Digest, m.Digest)
		}
		if got := has(plain, tc.ref); got != tc.want {
			t.Errorf("%s has the foreign layer: %v, want %v", tc.ref, got, tc.want)
		}
	}
	// Copied between registries: the same rule at the destination; a source without the
	// layer's bytes leaves it out even where it is allowed.
	for _, tc := range []struct {
		c        *client.Client
		from, to string
		want     bool
	}{
		{plain, berth + "/foreign/allowed:1", dist + "/foreign/copied-plain:1", false},
		{allowing, berth + "/foreign/allowed:1", dist + "/foreign/copied-allowed:1", true},
		{allowing, dist + "/foreign/plain:1", berth + "/foreign/from-lacking:1", false},
	} {
		if _, err := tc.c.Copy(ctx, mustRef(t, tc.from), mustRef(t, tc.to), client.CopyOptions{}); err != nil {
			t.Fatalf("copy %s → %s: %v", tc.from, tc.to, err)
		}
		if got := has(plain, tc.to); got != tc.want {
			t.Errorf("%s has the foreign layer after the copy: %v, want %v", tc.to, got, tc.want)
		}
		if got, err := plain.GetManifest(ctx, mustRef(t, tc.to)); err != nil || got.Descriptor.Digest != m.Digest {
			t.Errorf("%s: manifest %v, %v; want %s unchanged", tc.to, got, err, m.Digest)
		}
	}
	// Pulled into a layout: the foreign layer stays with its URL.
	pulled := openLayout(t)
	if _, err := allowing.Pull(ctx, mustRef(t, berth+"/foreign/allowed:1"), pulled, client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if pulled.HasBlob(foreign.Digest) {
		t.Error("a pull into a layout fetched the foreign layer")
	}
}

func TestSearchFilters(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	berth := startBerth(t)
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	l, _, _, _ := testImages(t)
	for _, r := range []string{"filters/one:1", "filters/two:1"} {
		if _, err := c.Push(ctx, l, "img", mustRef(t, berth+"/"+r), client.CopyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		filters []string
		want    int
	}{
		{nil, 2},
		{[]string{"stars=0"}, 2},
		{[]string{"stars=1"}, 0},
		{[]string{"is-official=false"}, 2},
		{[]string{"is-official=true"}, 0},
		{[]string{"is-automated=false", "stars=0"}, 2},
	} {
		f, err := client.ParseSearchFilters(tc.filters)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.SearchWithOptions(ctx, berth, "filters", client.SearchOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != tc.want {
			t.Errorf("search with %v: %d results %+v, want %d", tc.filters, len(res), res, tc.want)
		}
	}
}

func TestParseSearchFilters(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	results := []client.SearchResult{
		{Name: "official-popular", StarCount: 100, IsOfficial: true},
		{Name: "automated", StarCount: 3, IsAutomated: true},
		{Name: "plain", StarCount: 0},
	}
	for _, tc := range []struct {
		args []string
		want string // names kept, comma-separated
		err  string
	}{
		{args: nil, want: "official-popular,automated,plain"},
		{args: []string{"stars=3"}, want: "official-popular,automated"},
		{args: []string{"stars=3", "stars=50"}, want: "official-popular"}, // the highest wins
		{args: []string{"is-official=true"}, want: "official-popular"},
		{args: []string{"is-official=false"}, want: "automated,plain"},
		{args: []string{"is-automated=true"}, want: "automated"},
		{args: []string{"is-automated=0", "is-official=0"}, want: "plain"},
		{args: []string{"stars=x"}, err: "stars=x"},
		{args: []string{"stars=-1"}, err: "stars=-1"},
		{args: []string{"is-official=maybe"}, err: "is-official=maybe"},
		{args: []string{"is-official=true", "is-official=false"}, err: "both"},
		{args: []string{"name=x"}, err: "stars, is-official and is-automated"},
		{args: []string{"stars"}, err: "KEY=VALUE"},
	} {
		f, err := client.ParseSearchFilters(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSearchFilters(%v) = %+v, %v; want an error about %s", tc.args, f, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseSearchFilters(%v): %v", tc.args, err)
		}
		var kept []string
		for _, r := range results {
			if f.Match(r) {
				kept = append(kept, r.Name)
			}
		}
		if got := strings.Join(kept, ","); got != tc.want {
			t.Errorf("filters %v keep %s, want %s", tc.args, got, tc.want)
		}
	}
	if (client.SearchFilters{IsOfficial: &yes}).Match(client.SearchResult{}) || !(client.SearchFilters{IsOfficial: &no}).Match(client.SearchResult{}) {
		t.Error("Match on IsOfficial")
	}
}

// TestReferencingIndexes finds the tagged indexes that list a manifest, on both registries,
// and stops at its limits.
func TestReferencingIndexes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	l, img, idx, children := testImages(t)
	for name, start := range bothRegistries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := start(t)
			c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
			repo := mustRef(t, reg+"/refs/app")
			for _, p := range []struct{ name, tag string }{{"idx", "multi"}, {"idx", "also-multi"}, {"img", "single"}} {
				if _, err := c.Push(ctx, l, p.name, repo.WithTag(p.tag), client.CopyOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			refs, err := c.ReferencingIndexes(ctx, repo, children[1].Digest, client.IndexScanLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(refs) != 2 || refs[0] != (client.IndexReference{Tag: "also-multi", Index: idx.Digest}) || refs[1].Tag != "multi" {
				t.Errorf("indexes listing %s: %+v", children[1].Digest, refs)
			}
			for _, d := range []digest.Digest{idx.Digest, img.Digest} {
				if refs, err := c.ReferencingIndexes(ctx, repo, d, client.IndexScanLimits{}); err != nil || len(refs) != 0 {
					t.Errorf("indexes listing %s: %+v, %v; want none", d, refs, err)
				}
			}
			if _, err := c.ReferencingIndexes(ctx, repo, children[0].Digest, client.IndexScanLimits{MaxTags: 2}); !errors.Is(err, client.ErrScanIncomplete) {
				t.Errorf("3 tags with MaxTags 2: %v, want ErrScanIncomplete", err)
			}
			if _, err := c.ReferencingIndexes(ctx, repo, children[0].Digest, client.IndexScanLimits{MaxIndexSize: 10}); !errors.Is(err, client.ErrScanIncomplete) {
				t.Errorf("MaxIndexSize 10: %v, want ErrScanIncomplete", err)
			}
			if refs, err := c.ReferencingIndexes(ctx, mustRef(t, reg+"/refs/none"), children[0].Digest, client.IndexScanLimits{}); err != nil || len(refs) != 0 {
				t.Errorf("a repository that does not exist: %+v, %v", refs, err)
			}
		})
	}
}

// TestDeleteReferenced maps a registry's refusal to delete a manifest a kept index lists
// (409 MANIFEST_REFERENCED) to ErrReferenced.
func TestDeleteReferenced(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/other") {
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"busy"}]}`))
			return
		}
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_REFERENCED","message":"index sha256:abc lists this manifest"}]}`))
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	err := c.DeleteManifest(ctx, mustRef(t, host+"/a@sha256:"+strings.Repeat("1", 64)))
	if !errors.Is(err, client.ErrReferenced) || !strings.Contains(err.Error(), "index sha256:abc lists this manifest") {
		t.Errorf("409 MANIFEST_REFERENCED: %v", err)
	}
	err = c.DeleteManifest(ctx, mustRef(t, host+"/a:other"))
	if err == nil || errors.Is(err, client.ErrReferenced) {
		t.Errorf("another 409: %v, want an error that is not ErrReferenced", err)
	}
}
