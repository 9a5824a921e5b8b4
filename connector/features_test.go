package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/connector/provider/providertest"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/registry"
)

// pushReferrer pushes to name an artifact whose subject is subject, and
// returns its manifest and digest.
func pushReferrer(t *testing.T, n *node, name string, subject digest.Digest, artifactType string) ([]byte, digest.Digest) {
	t.Helper()
	empty := []byte("{}")
	sig := randomBytes(t, 100)
	for _, b := range [][]byte{empty, sig} {
		n.pushBlob(name, b)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/octet-stream","digest":%q,"size":%d}],"subject":{"mediaType":%q,"digest":%q,"size":1}}`,
		registry.MediaTypeOCIManifest, artifactType, digest.FromBytes(empty), digest.FromBytes(sig), len(sig), registry.MediaTypeOCIManifest, subject)
	d := digest.FromString(m)
	n.must(http.StatusCreated, "PUT", "/v2/"+name+"/manifests/"+d.String(), []byte(m), "Content-Type: "+registry.MediaTypeOCIManifest)
	return []byte(m), d
}

func referrerDigests(t *testing.T, body []byte) []string {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers: %v: %s", err, body)
	}
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Digest)
	}
	return out
}

func TestReferrersThroughCacheAndVirtual(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	cfg := Config{cacheOf("hub", "hub/", up.url()), {Name: "local", Type: TypeHosted, Prefix: "local/"},
		{Name: "all", Type: TypeVirtual, Prefix: "all/", Members: []string{"local", "hub"}}}
	b := newNode(t, cfg, nodeOptions{}, nil)
	im := newImage(t, 100)
	up.push("team/app", "v1", im)
	sig, sigD := pushReferrer(t, up, "team/app", im.digest, "application/vnd.example.sig")

	for _, name := range []string{"hub/team/app", "all/team/app"} {
		r := b.must(http.StatusOK, "GET", "/v2/"+name+"/referrers/"+im.digest.String(), nil)
		if got := referrerDigests(t, r.body); len(got) != 1 || got[0] != sigD.String() {
			t.Fatalf("%s referrers = %v, want [%s]", name, got, sigD)
		}
	}
	// The referrer is content like any other: fetched once, then cached.
	r := b.must(http.StatusOK, "GET", "/v2/hub/team/app/manifests/"+sigD.String(), nil, "Accept: "+registry.MediaTypeOCIManifest)
	if string(r.body) != string(sig) {
		t.Fatal("referrer manifest differs")
	}
	count.reset()
	b.must(http.StatusOK, "GET", "/v2/hub/team/app/manifests/"+sigD.String(), nil, "Accept: "+registry.MediaTypeOCIManifest)
	if n := count.total("GET manifests"); n != 0 {
		t.Errorf("cached referrer fetched again (%d)", n)
	}
	// Filtered by artifact type.
	r = b.must(http.StatusOK, "GET", "/v2/hub/team/app/referrers/"+im.digest.String()+"?artifactType=application/other", nil)
	if got := referrerDigests(t, r.body); len(got) != 0 {
		t.Errorf("filtered referrers = %v, want none", got)
	}

	// An upstream without the referrers API: the tag schema's index.
	im2 := newImage(t, 50)
	up.push("team/app", "v2", im2)
	_, sig2 := pushReferrer(t, up, "team/app", im2.digest, "application/vnd.example.sbom")
	fallback := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":10,"artifactType":"application/vnd.example.sbom"}]}`,
		registry.MediaTypeOCIIndex, registry.MediaTypeOCIManifest, sig2)
	up.must(http.StatusCreated, "PUT", "/v2/team/app/manifests/sha256-"+im2.digest.Encoded(), []byte(fallback), "Content-Type: "+registry.MediaTypeOCIIndex)
	count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/referrers/") {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	r = b.must(http.StatusOK, "GET", "/v2/hub/team/app/referrers/"+im2.digest.String(), nil)
	if got := referrerDigests(t, r.body); len(got) != 1 || got[0] != sig2.String() {
		t.Fatalf("fallback referrers = %v, want [%s]", got, sig2)
	}
	if count.get("GET manifests sha256-"+im2.digest.Encoded()) != 1 {
		t.Error("the referrers tag was not read")
	}
	// A subject without referrers anywhere: an empty list.
	r = b.must(http.StatusOK, "GET", "/v2/hub/team/app/referrers/"+digest.FromString("none").String(), nil)
	if got := referrerDigests(t, r.body); len(got) != 0 {
		t.Errorf("referrers of an unknown subject = %v", got)
	}
}

func TestPrefetchLayersAndPlatforms(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	rc := cacheOf("hub", "hub/", up.url())
	rc.Prefetch = PrefetchLayers
	rc.PrefetchPlatforms = []string{"linux/amd64"}
	b := newNode(t, Config{rc}, nodeOptions{}, nil)
	amd, arm := newImage(t, 1000, 2000, 3000), newImage(t, 4000)
	up.push("team/app", amd.digest.String(), amd)
	up.push("team/app", arm.digest.String(), arm)
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}},{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"arm64"}}]}`,
		registry.MediaTypeOCIIndex, registry.MediaTypeOCIManifest, amd.digest, len(amd.manifest), registry.MediaTypeOCIManifest, arm.digest, len(arm.manifest))
	up.must(http.StatusCreated, "PUT", "/v2/team/app/manifests/multi", []byte(index), "Content-Type: "+registry.MediaTypeOCIIndex)
	count.reset()

	b.must(http.StatusOK, "GET", "/v2/hub/team/app/manifests/multi", nil, "Accept: "+registry.MediaTypeOCIIndex)
	b.conn.caches[0].prefetcher.tasks.Wait()
	for _, blob := range amd.blobs() {
		d := digest.FromBytes(blob)
		if n := count.get("GET blobs " + d.String()); n != 1 {
			t.Errorf("amd64 blob %s fetched %d times, want 1", d, n)
		}
		if _, err := b.meta.BlobSize(context.Background(), "hub/team/app", d); err != nil {
			t.Errorf("amd64 blob %s not cached: %v", d, err)
		}
	}
	if n := count.get("GET manifests " + arm.digest.String()); n != 0 {
		t.Errorf("arm64 manifest fetched %d times; the platform filter keeps only amd64", n)
	}
	st := b.conn.Status()[0].Prefetch
	if st == nil || st.Pending != 0 || st.Fetched != 5 || st.Failed != 0 {
		t.Errorf("prefetch status %+v, want 5 fetched (a child manifest and 4 blobs)", st)
	}
	count.reset()
	b.pull("hub/team/app", amd.digest.String(), amd)
	if n := count.total("GET blobs"); n != 0 {
		t.Errorf("a pull after prefetching fetched %d blobs", n)
	}
}

// TestPrefetchPendingBounded checks that pulls queue no more prefetching
// once a cache's pending work is at its bound, and that what was queued is
// fetched.
func TestPrefetchPendingBounded(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	rc := cacheOf("hub", "hub/", up.url())
	rc.Prefetch = PrefetchLayers
	b := newNode(t, Config{rc}, nodeOptions{}, nil)
	im := newImage(t, 1000, 2000, 3000, 4000) // a config and four layers
	up.push("team/app", "v1", im)
	p := b.conn.caches[0].prefetcher
	p.limit = 2
	release := make(chan struct{})
	count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			<-release // the queued work stays pending until the test has looked
		}
		return false
	})
	b.must(http.StatusOK, "GET", "/v2/hub/team/app/manifests/v1", nil)
	if st := p.status(); st.Pending != 2 || st.Skipped != 3 {
		t.Errorf("prefetch status while blocked %+v, want 2 pending and 3 skipped", st)
	}
	close(release)
	p.tasks.Wait()
	if st := p.status(); st.Pending != 0 || st.Fetched != 2 || st.Failed != 0 || st.Skipped != 3 {
		t.Errorf("prefetch status after %+v, want 2 fetched and 3 skipped", st)
	}
	count.setHook(nil)
	b.pull("hub/team/app", "v1", im) // the skipped blobs come when asked for
}

func TestSyncMirrorsMatchingTags(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	images := map[string]*image{"3.19": newImage(t, 100), "3.20": newImage(t, 200), "edge": newImage(t, 300)}
	for tag, im := range images {
		up.push("library/alpine", tag, im)
	}
	rc := cacheOf("hub", "hub/", up.url())
	rc.Upstream.SingleNamePrefix = "library/"
	rc.Sync = []SyncRule{{Repository: "alpine", Tags: "3.*"}}
	rc.SyncInterval = time.Hour
	locked := false
	tryLock := func(context.Context, string) (func(), bool, error) {
		if locked {
			return nil, false, nil
		}
		return func() {}, true, nil
	}
	b := newNode(t, Config{rc}, nodeOptions{Options: Options{TryLock: tryLock}}, nil)
	s := b.conn.caches[0].sync
	s.waitRuns(1)
	st := b.conn.Status()[0].Sync
	if st == nil || st.LastResult != "ok" || st.Tags != 2 || st.Blobs != 4 || st.Total != 2 || st.Running {
		t.Fatalf("sync status %+v, want ok with 2 tags and 4 blobs", st)
	}
	for tag, im := range images {
		_, err := b.meta.ResolveTag(context.Background(), "hub/alpine", tag)
		if want := tag != "edge"; (err == nil) != want {
			t.Errorf("tag %s synced: %v, want %v", tag, err == nil, want)
		}
		if tag == "edge" {
			continue
		}
		for _, blob := range im.blobs() {
			if _, err := b.meta.BlobSize(context.Background(), "hub/alpine", digest.FromBytes(blob)); err != nil {
				t.Errorf("blob of %s not synced: %v", tag, err)
			}
		}
	}
	// A second run finds everything stored: a HEAD per tag, no fetch.
	count.reset()
	b.conn.SyncNow("hub")
	s.waitRuns(2)
	if n := count.total("GET blobs") + count.total("GET manifests"); n != 0 {
		t.Errorf("a second sync fetched %d things", n)
	}
	if n := count.total("HEAD manifests"); n != 2 {
		t.Errorf("a second sync sent %d HEADs, want 2", n)
	}
	// Another replica holds the lock: skipped.
	locked = true
	b.conn.SyncNow("hub")
	s.waitRuns(3)
	if st := b.conn.Status()[0].Sync; !strings.HasPrefix(st.LastResult, "skipped") {
		t.Errorf("sync with the lock held elsewhere: %q", st.LastResult)
	}

	// A restart (or another replica) over the same storage: the last run ended less than an
	// interval ago, so the next is an interval after it, not now.
	count.reset()
	again, err := New(Config{rc}, gc.Guard(b.meta, b.blobs), b.blobs, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	s2 := again.caches[0].sync
	s2.waitDecided(1)
	st2 := again.Status()[0].Sync
	if st2.NextRun == nil || time.Until(*st2.NextRun) < 50*time.Minute || st2.LastStart != nil {
		t.Errorf("sync after a restart: %+v, want none now and the next in about an hour", st2)
	}
	if n := count.total("HEAD manifests") + count.total("GET tags"); n != 0 {
		t.Errorf("the restarted process synced at once (%d requests)", n)
	}
}

func TestSearchThroughProviders(t *testing.T) {
	t.Parallel()
	hub := providertest.NewHubSearch(
		providertest.HubRepo{Name: "alpine", Description: "A minimal Docker image", Stars: 10000, Official: true},
		providertest.HubRepo{Name: "someone/alpine-tools", Description: "tools", Stars: 3},
		providertest.HubRepo{Name: "secret/alpine", Description: "denied by the cache"},
	)
	t.Cleanup(hub.Close)
	up := newNode(t, nil, nodeOptions{}, nil)
	rc := cacheOf("hub", "hub/", up.url())
	rc.Upstream.Provider = "dockerhub"
	rc.Upstream.DockerHub.SearchURL = hub.URL()
	rc.Deny = []string{"secret/**"}
	cfg := Config{rc, {Name: "local", Type: TypeHosted, Prefix: "local/"}}
	b := newNode(t, cfg, nodeOptions{MayPull: func(_ *http.Request, name string) bool { return name != "hub/someone/alpine-tools" }}, nil)
	im := newImage(t, 10)
	b.push("local/alpine-mine", "v1", im)
	up.push("library/alpine", "3", im)
	b.must(http.StatusOK, "GET", "/v2/hub/alpine/manifests/3", nil, "Accept: "+registry.MediaTypeOCIManifest)

	r := b.must(http.StatusOK, "GET", "/v1/search?q=alpine&n=10", nil)
	var body struct {
		NumResults int                     `json:"num_results"`
		Results    []registry.SearchResult `json:"results"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	got := map[string]registry.SearchResult{}
	for _, res := range body.Results {
		got[res.Name] = res
	}
	if res := got["local/alpine-mine"]; res.Source != registry.SourceHosted {
		t.Errorf("hosted result %+v", res)
	}
	if res := got["hub/alpine"]; res.Source != registry.SourceCached || res.StarCount != 10000 || !res.IsOfficial || res.Registry != "hub" {
		t.Errorf("cached result described by the upstream: %+v", res)
	}
	if _, ok := got["hub/someone/alpine-tools"]; ok {
		t.Error("a result the caller may not pull is listed")
	}
	for name := range got {
		if strings.Contains(name, "secret") {
			t.Errorf("a name the cache's deny list excludes is listed: %s", name)
		}
	}
	if body.NumResults != len(body.Results) || len(body.Results) != 2 {
		t.Errorf("results %+v", body.Results)
	}
	// Asked again within a minute: the upstream's answer is kept.
	b.must(http.StatusOK, "GET", "/v1/search?q=alpine&n=10", nil)
	if q := hub.Queries(); len(q) != 1 {
		t.Errorf("%d searches sent to Docker Hub for two identical searches, want 1", len(q))
	}
	// Docker's own fields are all there.
	var raw struct {
		Results []map[string]any `json:"results"`
	}
	_ = json.Unmarshal(r.body, &raw)
	for _, k := range []string{"name", "description", "star_count", "is_official", "is_automated"} {
		if _, ok := raw.Results[0][k]; !ok {
			t.Errorf("result lacks Docker's field %s", k)
		}
	}
}

func TestProviderCredentialFailureIsNamed(t *testing.T) {
	t.Parallel()
	ecr := providertest.NewECR("AKIDRIGHT")
	t.Cleanup(ecr.Close)
	up := newNode(t, nil, nodeOptions{}, nil)
	gw, err := providertest.NewGateway(up.url(), providertest.Basic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	gw.Check = ecr.Valid
	im := newImage(t, 10)
	up.push("team/app", "v1", im)
	rc := cacheOf("ecr", "ecr/", gw.URL())
	rc.Upstream.Provider = "ecr"
	rc.Upstream.ECR = provider.ECRConfig{Region: "eu-west-1", AccessKeyID: "AKIDWRONG", SecretAccessKey: "x", Endpoint: ecr.URL()}
	good := rc
	good.Name, good.Prefix = "ecr2", "ecr2/"
	good.Upstream.ECR.AccessKeyID = "AKIDRIGHT"
	b := newNode(t, Config{rc, good}, nodeOptions{}, nil)

	r := b.do("GET", "/v2/ecr/team/app/manifests/v1", nil)
	code, msg := wireCode(t, r.body)
	if r.status != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "authenticate") || !strings.Contains(msg, gw.URL()) ||
		!strings.Contains(msg, "UnrecognizedClientException") {
		t.Fatalf("pull with refused provider credentials: %v", r)
	}
	st := b.conn.Status()[0]
	if st.State != stateDown || !strings.Contains(st.LastError, "no credentials") || strings.Contains(st.LastError, "team/app") || st.Provider != "ecr" {
		t.Errorf("health %+v", st)
	}
	b.pull("ecr2/team/app", "v1", im)
	if ecr.Requests() != 1 {
		t.Errorf("%d token requests for one pull, want 1", ecr.Requests())
	}
}

func TestProviderConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Registry)
		want string
	}{
		{"unknown provider", func(r *Registry) { r.Upstream.Provider = "quay-magic" }, `upstream.provider "quay-magic": no such provider`},
		{"provider check", func(r *Registry) { r.Upstream.Provider = "ecr" }, "ecr.region: required"},
		{"prefetch mode", func(r *Registry) { r.Prefetch = "all" }, `prefetch "all": want none or layers`},
		{"platform", func(r *Registry) { r.Prefetch, r.PrefetchPlatforms = PrefetchLayers, []string{"linux/amd64/v3/x"} }, "prefetchPlatforms"},
		{"sync repo", func(r *Registry) { r.Sync = []SyncRule{{Repository: "Bad Name"}} }, "sync[0].repository"},
		{"sync denied", func(r *Registry) { r.Deny = []string{"team/**"}; r.Sync = []SyncRule{{Repository: "team/app"}} }, "exclude it"},
		{"sync interval", func(r *Registry) { r.Sync = []SyncRule{{Repository: "a"}}; r.SyncInterval = time.Second }, "syncInterval 1s"},
		{"half client cert", func(r *Registry) { r.Upstream.TLS.CertFile = "c.pem" }, "certFile and keyFile together"},
		{"hosted with prefetch", func(r *Registry) { r.Type, r.Upstream = TypeHosted, Upstream{}; r.Prefetch = PrefetchLayers }, "hosted registry takes only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := cacheOf("c", "c/", "http://127.0.0.1:1")
			tc.edit(&rc)
			err := Config{rc}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	// Docker Hub's defaults come with the provider.
	c := Config{{Name: "hub", Type: TypeCache, Upstream: Upstream{Provider: "dockerhub"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c[0].Upstream.URL != provider.DockerHubRegistry || c[0].Upstream.SingleNamePrefix != "library/" {
		t.Errorf("dockerhub defaults: %+v", c[0].Upstream)
	}
}

func TestMalformedTokenAnswerIsBadGateway(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	im := newImage(t, 10)
	up.push("team/app", "v1", im)
	var answer atomic.Value
	answer.Store(`{"token":`)
	count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(answer.Load().(string)))
			return true
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+up.url()+`/token",service="up"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	})
	b := newNode(t, Config{cacheOf("hub", "hub/", up.url())}, nodeOptions{}, nil)
	for _, bad := range []string{`{"token":`, `{"expires_in":60}`} {
		answer.Store(bad)
		r := b.do("GET", "/v2/hub/team/app/manifests/v1", nil, "Accept: "+registry.MediaTypeOCIManifest)
		code, msg := wireCode(t, r.body)
		if r.status != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "malformed token answer") || !strings.Contains(msg, up.url()) {
			t.Fatalf("token answer %s: %v", bad, r)
		}
		if _, err := b.meta.ResolveTag(context.Background(), "hub/team/app", "v1"); err == nil {
			t.Fatal("something was cached from a request that could not be authorized")
		}
	}
	answer.Store(`{"token":"good","expires_in":300}`)
	b.pull("hub/team/app", "v1", im)
}
