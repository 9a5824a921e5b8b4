package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/connector/provider/providertest"
)

// TestReferrersThroughCacheWithOras attaches an SBOM and a signature to an image on a
// distribution with oras, discovers them with oras through a berth cache and a virtual
// registry over it, and pulls them back byte for byte; a cosign-style signature tag pulls
// through as any tag does.
func TestReferrersThroughCacheWithOras(t *testing.T) {
	t.Parallel()
	oras := newTool(t, peer(t, "oras"), clientEnv(t))
	dist := startDistribution(t, distOptions{})
	img := newImage(t, "linux", "amd64", 1)
	distClient(t, dist).pushImage("team/app", "v1", img)
	subject := img.Manifest.Digest()

	sbom := []byte(`{"bomFormat":"CycloneDX","serialNumber":"` + sha256Digest(randomBytes(t, 16)) + `"}`)
	sig := randomBytes(t, 256)
	writeFile(t, oras.dir, "sbom.json", sbom)
	writeFile(t, oras.dir, "sig.bin", sig)
	attach := func(artifactType, file string) string {
		out := oras.run("attach", "--plain-http", "--format", "json", "--artifact-type", artifactType,
			dist.Addr+"/team/app@"+subject, file)
		var d descriptor
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("oras attach output: %v\n%s", err, out)
		}
		return d.Digest
	}
	sbomD := attach(sbomType, "sbom.json:application/json")
	sigD := attach("application/vnd.cncf.notary.signature", "sig.bin:application/jose+json")
	// cosign keeps its signature under the tag sha256-<hex>.sig.
	cosign := newImage(t, "linux", "amd64", 1)
	cosignTag := strings.Replace(subject, ":", "-", 1) + ".sig"
	distClient(t, dist).pushImage("team/app", cosignTag, cosign)

	_, c := startConfigured(t, t.TempDir(), fmt.Sprintf(`registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream: {url: "http://%s"}
  - name: local
    type: hosted
    prefix: local/
  - name: all
    type: virtual
    prefix: all/
    members: [local, hub]
`, dist.Addr))
	host := strings.TrimPrefix(c.base.String(), "http://")
	for _, repo := range []string{"hub/team/app", "all/team/app"} {
		out := oras.run("discover", "--plain-http", "--format", "json", host+"/"+repo+"@"+subject)
		var disc struct {
			Referrers []descriptor `json:"referrers"`
			Manifests []descriptor `json:"manifests"`
		}
		if err := json.Unmarshal([]byte(out), &disc); err != nil {
			t.Fatalf("oras discover: %v\n%s", err, out)
		}
		found := map[string]string{}
		for _, d := range append(disc.Referrers, disc.Manifests...) {
			found[d.Digest] = d.ArtifactType
		}
		if found[sbomD] != sbomType || found[sigD] != "application/vnd.cncf.notary.signature" || len(found) != 2 {
			t.Errorf("oras discover through %s found %v, want the SBOM %s and the signature %s", repo, found, sbomD, sigD)
		}
	}
	// The referrers pull through: manifests and blobs, cached like any content.
	outDir := t.TempDir()
	oras.run("pull", "--plain-http", "-o", outDir, host+"/hub/team/app@"+sbomD)
	if got, err := os.ReadFile(filepath.Join(outDir, "sbom.json")); err != nil || !bytes.Equal(got, sbom) {
		t.Fatalf("SBOM pulled through the cache differs: %v", err)
	}
	if got := c.blob("all/team/app", sha256Digest(sig)); !bytes.Equal(got, sig) {
		t.Fatal("signature blob pulled through the virtual registry differs")
	}
	c.checkImage("hub/team/app", img)
	body, _, _ := c.manifest("hub/team/app", cosignTag)
	if !bytes.Equal(body, cosign.Manifest.Data) {
		t.Fatal("cosign signature tag pulled through the cache differs")
	}
}

// TestPrefetchAndSyncFillTheCache: with prefetch: layers, pulling an index's manifest fetches
// the layers of the platforms kept in the background; a sync list mirrors matching tags on
// its own. Both are counted at the upstream, and what they fetched is then served without it.
func TestPrefetchAndSyncFillTheCache(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	ix := newIndex(t, "linux/amd64", "linux/arm64")
	other := newImage(t, "linux", "amd64", 2)
	dc := distClient(t, dist)
	dc.pushIndex("team/app", "v1", ix)
	dc.pushImage("team/app", "v2", other)
	dc.pushImage("team/app", "latest", newImage(t, "linux", "amd64", 1))
	preUp := startCountingProxy(t, "http://"+dist.Addr)
	syncUp := startCountingProxy(t, "http://"+dist.Addr)

	_, c := startConfigured(t, t.TempDir(), fmt.Sprintf(`registries:
  - name: pre
    type: cache
    prefix: pre/
    upstream: {url: %s}
    prefetch: layers
    prefetchPlatforms: [linux/amd64]
  - name: mirror
    type: cache
    prefix: mirror/
    upstream: {url: %s}
    sync:
      - repository: team/app
        tags: "v*"
        platforms: [linux/arm64]
    syncInterval: 1h
`, preUp.URL(), syncUp.URL()))

	amd, arm := ix.Images[0], ix.Images[1]
	c.manifest("pre/team/app", "v1")
	want := int64(1 + 1 + len(amd.Layers)) // the child manifest, its config and layers
	waitStatus(t, c, "pre", "the prefetch of v1", func(s connector.Status) bool {
		return s.Prefetch != nil && s.Prefetch.Pending == 0 && s.Prefetch.Fetched >= want
	})
	for _, b := range append([]blob{amd.Config}, amd.Layers...) {
		if n := preUp.count("GET blobs " + b.Digest()); n != 1 {
			t.Errorf("amd64 blob %s fetched %d times by the prefetch, want 1", b.Digest(), n)
		}
	}
	if n := preUp.count("GET manifests " + arm.Manifest.Digest()); n != 0 {
		t.Errorf("the arm64 manifest was fetched %d times; prefetchPlatforms keeps only amd64", n)
	}
	preUp.reset()
	c.checkImage("pre/team/app", amd)
	if n := preUp.count("GET other") + len(preUp.counts); n != 0 {
		t.Errorf("pulling the prefetched image asked the upstream %d times: %v", n, preUp.counts)
	}

	s := waitStatus(t, c, "mirror", "the first sync", func(s connector.Status) bool {
		return s.Sync != nil && s.Sync.LastEnd != nil
	})
	if s.Sync.LastResult != "ok" || s.Sync.Tags != 2 || s.Sync.Failed != 0 {
		t.Fatalf("sync status %+v, want ok with v1 and v2", s.Sync)
	}
	for _, b := range append([]blob{arm.Config}, arm.Layers...) {
		if n := syncUp.count("GET blobs " + b.Digest()); n != 1 {
			t.Errorf("arm64 blob %s fetched %d times by the sync, want 1", b.Digest(), n)
		}
	}
	for _, b := range append([]blob{other.Config}, other.Layers...) {
		if n := syncUp.count("GET blobs " + b.Digest()); n != 1 {
			t.Errorf("v2 blob %s fetched %d times by the sync, want 1", b.Digest(), n)
		}
	}
	if n := syncUp.count("GET manifests latest"); n != 0 {
		t.Error("the sync fetched latest, which its tag glob leaves out")
	}
	if n := syncUp.count("GET manifests " + amd.Manifest.Digest()); n != 0 {
		t.Error("the sync fetched the amd64 image, which its platforms leave out")
	}
	syncUp.reset()
	c.checkImage("mirror/team/app", other)
	c.checkImage("mirror/team/app", arm)
	syncUp.mu.Lock()
	fetched := 0
	for k, n := range syncUp.counts {
		if strings.HasPrefix(k, "GET ") {
			fetched += n
		}
	}
	syncUp.mu.Unlock()
	if fetched != 0 {
		t.Errorf("pulling synced images fetched from the upstream: %v", syncUp.counts)
	}
}

// TestDockerHubSearchAndRateLimits: a dockerhub cache searches through Docker Hub's search
// API (a stand-in serving its JSON), merged with hosted and cached names in /v1/search, each
// marked by source; the pull limit the upstream announces shows in health.
func TestDockerHubSearchAndRateLimits(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	img := newImage(t, "linux", "amd64", 1)
	distClient(t, dist).pushImage("library/alpine", "3", img)
	hub := providertest.NewHubSearch(
		providertest.HubRepo{Name: "alpine", Description: "A minimal Docker image based on Alpine Linux", Stars: 11000, Official: true},
		providertest.HubRepo{Name: "someone/alpine-tools", Description: "tools", Stars: 4},
	)
	t.Cleanup(hub.Close)
	// Docker Hub announces its pull limit on manifest requests.
	var remaining atomic.Int64
	remaining.Store(100)
	target, _ := url.Parse("http://" + dist.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{Proxy: nil}
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
			w.Header().Set("Ratelimit-Limit", "100;w=21600")
			w.Header().Set("Ratelimit-Remaining", fmt.Sprintf("%d;w=21600", remaining.Add(-1)))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(limited.Close)

	debug := freeAddr(t)
	_, c := startConfigured(t, t.TempDir(), fmt.Sprintf(`debug:
  addr: %s
registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream:
      url: %s
      provider: dockerhub
      dockerhub: {searchURL: %s}
  - name: local
    type: hosted
    prefix: local/
`, debug, limited.URL, hub.URL()))
	c.pushImage("local/alpine-base", "v1", newImage(t, "linux", "amd64", 1))
	c.checkImage("hub/alpine", img) // library/ is added for one-component names

	s := statusOf(t, c, "hub")
	if s.Provider != "dockerhub" || s.RateLimit == nil || s.RateLimit.Limit != 100 || s.RateLimit.Remaining != 99 || s.RateLimit.WindowSeconds != 21600 {
		t.Errorf("health rate limit %+v, want 99 of 100 per 21600s", s.RateLimit)
	}
	// The metrics and the web UI's registries page tell the same.
	fams := scrapeMetrics(t, debug)
	for name, want := range map[string]float64{"berth_upstream_ratelimit_remaining": 99, "berth_upstream_ratelimit_limit": 100} {
		if v, ok := metricValue(fams, name, map[string]string{"registry": "hub"}); !ok || v != want {
			t.Errorf("%s{registry=hub} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if _, ok := metricValue(fams, "berth_upstream_ratelimit_remaining", map[string]string{"registry": "local"}); ok {
		t.Error("a hosted registry has a rate-limit series")
	}
	page := c.expect(c.request("GET", "/ui/registries", nil), http.StatusOK)
	for _, want := range []string{"<dd>dockerhub</dd>", "Rate limit left</dt><dd>99 of 100</dd>"} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("the registries page lacks %q", want)
		}
	}

	r := c.expect(c.request("GET", "/v1/search?q=alpine&n=10", nil), http.StatusOK)
	var res struct {
		NumResults int              `json:"num_results"`
		Query      string           `json:"query"`
		Results    []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, x := range res.Results {
		for _, k := range []string{"name", "description", "star_count", "is_official", "is_automated"} {
			if _, ok := x[k]; !ok {
				t.Errorf("result %v lacks Docker's field %s", x, k)
			}
		}
		got[x["name"].(string)] = x
	}
	if x := got["local/alpine-base"]; x == nil || x["source"] != "hosted" {
		t.Errorf("hosted result %v", x)
	}
	if x := got["hub/alpine"]; x == nil || x["source"] != "cached" || x["star_count"] != float64(11000) || x["is_official"] != true {
		t.Errorf("cached result, described by Docker Hub: %v", x)
	}
	if x := got["hub/someone/alpine-tools"]; x == nil || x["source"] != "upstream" || x["registry"] != "hub" {
		t.Errorf("upstream result %v", x)
	}
	if res.NumResults != 3 || len(res.Results) != 3 || res.Query != "alpine" {
		t.Errorf("search answer %s", r.Body)
	}
	if q := hub.Queries(); len(q) != 1 || q[0].Get("query") != "alpine" {
		t.Errorf("Docker Hub search queries %v", q)
	}
	// A Docker-style search client reads the same answer: `berth search`, with its
	// is-official filter, the way `docker search --filter is-official=true` does.
	host := strings.TrimPrefix(c.base.String(), "http://")
	out := newCLI(t).ok("search", host, "alpine", "--filter", "is-official=true")
	if !strings.Contains(out, "hub/alpine") || strings.Contains(out, "alpine-tools") || strings.Contains(out, "alpine-base") {
		t.Errorf("berth search --filter is-official=true:\n%s", out)
	}
}

// gate holds the upstream's answer to one path until released, so a pull is in flight for as
// long as a test needs.
type gate struct {
	srv     *httptest.Server
	path    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func startGate(t testing.TB, target, path string) *gate {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil}
	g := &gate{path: path, arrived: make(chan struct{}), release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == g.path && r.Method == http.MethodGet {
			g.once.Do(func() { close(g.arrived) })
			<-g.release
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		g.srv.Close()
	})
	return g
}

// TestReloadSwapsRulesAndConnectors: SIGHUP reloads the registries and the access rules while
// a pull is in flight; the pull finishes on the configuration it started with, new requests
// see the new one. An invalid configuration is refused (by SIGHUP and by POST /_berth/reload)
// and the running one stays; only an admin may ask for a reload over HTTP.
func TestReloadSwapsRulesAndConnectors(t *testing.T) {
	t.Parallel()
	up1, up2 := startDistribution(t, distOptions{}), startDistribution(t, distOptions{})
	img1, img2 := newImage(t, "linux", "amd64", 1), newImage(t, "linux", "amd64", 1)
	distClient(t, up1).pushImage("team/app", "v1", img1)
	distClient(t, up2).pushImage("team/app", "v1", img2)
	layer := img1.Layers[0]
	g := startGate(t, "http://"+up1.Addr, "/v2/team/app/blobs/"+layer.Digest())

	dir := t.TempDir()
	var pw []byte
	for _, u := range []string{"admin", "reader", "lister"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-secret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		pw = append(pw, []byte(u+":"+string(h)+"\n")...)
	}
	writeFile(t, dir, "htpasswd", pw)
	config := func(readerRepos, upstream string) string {
		return fmt.Sprintf(`auth:
  mode: basic
  htpasswd: htpasswd
  groups:
    admins: [admin]
  rules:
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
      catalog: true
    - repositories: [%q]
      users: [reader]
      actions: [pull]
    - repositories: ["**"]
      users: [lister]
      actions: [pull]
      catalog: true
registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream: {url: %s}
`, readerRepos, upstream)
	}
	b := startAuthBerth(t, writeFile(t, dir, "berth.yaml", []byte(config("hub/**", g.srv.URL))), nil)
	admin := authClient(t, b.URL(), "admin", "admin-secret")
	reader := authClient(t, b.URL(), "reader", "reader-secret")
	reader.manifest("hub/team/app", "v1")

	// A pull of the layer, held at the upstream.
	got := make(chan response, 1)
	go func() {
		got <- reader.do("GET", "/v2/hub/team/app/blobs/"+layer.Digest(), nil, nil, -1)
	}()
	select {
	case <-g.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the pull never reached the upstream")
	}

	// New rules (the reader loses hub/) and a new upstream for hub.
	writeFile(t, dir, "berth.yaml", []byte(config("other/**", "http://"+up2.Addr)))
	_ = b.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, admin, "hub", "the reload", func(s connector.Status) bool { return s.Upstream == "http://"+up2.Addr })

	close(g.release)
	r := <-got
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, layer.Data) {
		t.Fatalf("the pull in flight during the reload: %d, %d bytes; want the whole layer", r.Status, len(r.Body))
	}
	if st := reader.manifestStatus("hub/team/app", "v1"); st != http.StatusForbidden {
		t.Errorf("reader pull after the rule was reloaded away: %d, want 403", st)
	}
	if body, _, _ := admin.manifest("hub/team/app", img2.Manifest.Digest()); !bytes.Equal(body, img2.Manifest.Data) {
		t.Error("after the reload the cache does not fetch from the new upstream")
	}

	// An invalid configuration: refused, the running one stays.
	writeFile(t, dir, "berth.yaml", []byte(config("other/**", "http://"+up2.Addr)+"    tagTTl: 1m\n"))
	r = admin.request("POST", "/_berth/reload", nil)
	code, msg := wireErr(t, r.Body)
	if r.Status != http.StatusUnprocessableEntity || code != "CONFIG_INVALID" || !strings.Contains(msg, "tagTTL") {
		t.Errorf("reload of an invalid configuration: %d %s", r.Status, r.Body)
	}
	_ = b.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(b.log.String(), "reload refused") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP with an invalid configuration was not refused in the log")
		}
		<-tick.C
	}
	if s := statusOf(t, admin, "hub"); s.Upstream != "http://"+up2.Addr {
		t.Errorf("after a refused reload the cache's upstream is %s", s.Upstream)
	}
	if r := reader.request("POST", "/_berth/reload", nil); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
		t.Errorf("a reader asked for a reload: %d", r.Status)
	}
	// The catalog alone does not make an administrator.
	lister := authClient(t, b.URL(), "lister", "lister-secret")
	lister.expect(lister.request("GET", "/v2/_catalog", nil), http.StatusOK)
	if r := lister.request("POST", "/_berth/reload", nil); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
		t.Errorf("a user with the catalog but not every action asked for a reload: %d", r.Status)
	}
	writeFile(t, dir, "berth.yaml", []byte(config("hub/**", "http://"+up2.Addr)))
	admin.expect(admin.request("POST", "/_berth/reload", nil), http.StatusOK)
	if st := reader.manifestStatus("hub/team/app", "v1"); st != http.StatusOK {
		t.Errorf("reader pull after the rule was reloaded back: %d", st)
	}
}
