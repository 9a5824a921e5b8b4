package connector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/testenv"
)

// cacheSetup is a berth with a cache hub/ over an upstream berth whose
// requests are counted.
type cacheSetup struct {
	up    *node
	count *counter
	b     *node
	clock *testenv.Clock
}

func newCacheSetup(t *testing.T, edit func(*Registry)) *cacheSetup {
	t.Helper()
	s := &cacheSetup{count: newCounter(), clock: testenv.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
	s.up = newNode(t, nil, nodeOptions{}, s.count.wrap)
	rc := cacheOf("hub", "hub/", s.up.url())
	if edit != nil {
		edit(&rc)
	}
	s.b = newNode(t, Config{rc}, nodeOptions{Options: Options{Now: s.clock.Now}}, nil)
	return s
}

func TestPullThroughCachesEverything(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 1000, 70000)
	s.up.push("team/app", "v1", im)
	s.count.reset()

	s.b.pull("hub/team/app", "v1", im)
	for _, b := range im.blobs() {
		if n := s.count.get("GET blobs " + digest.FromBytes(b).String()); n != 1 {
			t.Errorf("blob fetched %d times from upstream, want 1", n)
		}
	}
	if n := s.count.get("GET manifests v1"); n != 1 {
		t.Errorf("manifest fetched %d times, want 1", n)
	}
	// Cached under the local name, in the same metadata.
	if _, err := s.b.meta.ResolveTag(context.Background(), "hub/team/app", "v1"); err != nil {
		t.Fatalf("tag not cached: %v", err)
	}
	s.count.reset()
	s.b.pull("hub/team/app", "v1", im)
	s.b.pull("hub/team/app", im.digest.String(), im)
	if n := s.count.total(""); n != 0 {
		t.Errorf("a warm pull within the tag TTL sent %d upstream requests, want 0: %v", n, s.count.counts)
	}
	// HEAD of a cached manifest and blob.
	r := s.b.must(http.StatusOK, "HEAD", "/v2/hub/team/app/manifests/v1", nil)
	if r.header.Get("Docker-Content-Digest") != im.digest.String() {
		t.Errorf("HEAD digest %q", r.header.Get("Docker-Content-Digest"))
	}
}

func TestTagRevalidatedWithHeadAfterTTL(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) { r.TagTTL = durp(time.Minute) })
	im := newImage(t, 10)
	s.up.push("app", "latest", im)
	s.b.pull("hub/app", "latest", im)
	s.count.reset()

	s.clock.Advance(61 * time.Second)
	s.b.pull("hub/app", "latest", im)
	if h, g := s.count.get("HEAD manifests latest"), s.count.get("GET manifests latest"); h != 1 || g != 0 {
		t.Errorf("revalidation: %d HEAD and %d GET of the tag, want 1 HEAD and no GET", h, g)
	}
	// Within the TTL again: nothing.
	s.count.reset()
	s.b.pull("hub/app", "latest", im)
	if n := s.count.total(""); n != 0 {
		t.Errorf("%d upstream requests within the TTL", n)
	}

	// The tag moves upstream: the next revalidation fetches the new one.
	im2 := newImage(t, 20)
	s.up.push("app", "latest", im2)
	s.clock.Advance(61 * time.Second)
	s.count.reset()
	s.b.pull("hub/app", "latest", im2)
	if g := s.count.get("GET manifests " + im2.digest.String()); g != 1 {
		t.Errorf("changed tag: %d GETs of the new manifest by digest, want 1 (%v)", g, s.count.counts)
	}
	// The old image is still cached by digest.
	s.b.pull("hub/app", im.digest.String(), im)
}

func TestUpstreamDownServesCache(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) { r.TagTTL = durp(0) })
	im := newImage(t, 100)
	s.up.push("app", "v1", im)
	s.b.pull("hub/app", "v1", im)
	s.up.push("app", "never", newImage(t, 5))

	s.up.srv.Close()
	r := s.b.pull("hub/app", "v1", im)
	if w := r.header.Get("Warning"); !strings.Contains(w, "110") || !strings.Contains(w, "Stale") {
		t.Errorf("stale tag served with Warning %q, want 110 ... Response is Stale", w)
	}
	if r := s.b.pull("hub/app", im.digest.String(), im); r.header.Get("Warning") != "" {
		t.Errorf("content by digest is never stale, got Warning %q", r.header.Get("Warning"))
	}
	r = s.b.do("GET", "/v2/hub/app/manifests/never", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("never-pulled tag with the upstream down: %v, want 503", r)
	}
	code, msg := wireCode(t, r.body)
	if code != "UNAVAILABLE" || !strings.Contains(msg, s.up.url()) || !strings.Contains(msg, "refused") {
		t.Errorf("error %s %q: want UNAVAILABLE naming the upstream and the cause", code, msg)
	}
	st := s.b.conn.Status()
	if len(st) != 1 || st[0].State != stateDown || st[0].DownSince == nil || st[0].LastError == "" {
		t.Errorf("health after failures: %+v, want down with a last error", st)
	}
}

func TestUpstreamRateLimited(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) { r.TagTTL = durp(0) })
	im := newImage(t, 100)
	s.up.push("app", "v1", im)
	s.b.pull("hub/app", "v1", im)
	s.count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	r := s.b.pull("hub/app", "v1", im)
	if r.header.Get("Warning") == "" {
		t.Error("stale tag under rate limiting has no Warning header")
	}
	r = s.b.do("GET", "/v2/hub/app/manifests/other", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "120" {
		t.Fatalf("uncached tag under rate limiting: %v Retry-After %q, want 429 with the upstream's Retry-After", r, r.header.Get("Retry-After"))
	}
	// Rate limiting is not an outage.
	if st := s.b.conn.Status(); st[0].State == stateDown {
		t.Errorf("health %+v: a 429 does not make the upstream down", st[0])
	}
}

func TestNotFoundRemembered(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) { r.NotFoundTTL = durp(30 * time.Second) })
	s.up.push("app", "v1", newImage(t, 1))
	for i := 0; i < 3; i++ {
		r := s.b.do("GET", "/v2/hub/app/manifests/nope", nil)
		if r.status != http.StatusNotFound {
			t.Fatalf("missing tag: %v, want 404", r)
		}
		if code, _ := wireCode(t, r.body); code != "MANIFEST_UNKNOWN" {
			t.Errorf("code %s, want MANIFEST_UNKNOWN", code)
		}
	}
	if n := s.count.get("GET manifests nope"); n != 1 {
		t.Errorf("missing tag asked upstream %d times, want 1", n)
	}
	s.clock.Advance(31 * time.Second)
	s.b.do("GET", "/v2/hub/app/manifests/nope", nil)
	if n := s.count.get("GET manifests nope"); n != 2 {
		t.Errorf("after the TTL: %d upstream requests, want 2", n)
	}
	missing := digest.FromString("missing").String()
	s.b.must(http.StatusNotFound, "GET", "/v2/hub/app/blobs/"+missing, nil)
	s.b.must(http.StatusNotFound, "GET", "/v2/hub/app/blobs/"+missing, nil)
	if n := s.count.get("GET blobs " + missing); n != 1 {
		t.Errorf("missing blob asked upstream %d times, want 1", n)
	}
}

func TestDigestMismatchNeverCached(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 200000)
	s.up.push("app", "v1", im)
	layer := digest.FromBytes(im.layers[0])
	s.count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, layer.String()) || r.Method != http.MethodGet {
			return false
		}
		bad := bytes.Clone(im.layers[0])
		bad[len(bad)-1] ^= 0xff
		w.Header().Set("Content-Length", "200000")
		_, _ = w.Write(bad)
		return true
	})
	path := "/v2/hub/app/blobs/" + layer.String()
	res, err := http.Get(s.b.url() + path)
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	if rerr == nil && bytes.Equal(body, im.layers[0]) {
		t.Fatal("the client got the blob whole from a corrupt upstream")
	}
	if rerr == nil && res.StatusCode == http.StatusOK {
		t.Fatalf("the client got a complete 200 answer (%d bytes) of corrupt content", len(body))
	}
	if _, err := s.b.meta.BlobSize(context.Background(), "hub/app", layer); err == nil {
		t.Fatal("a blob that failed verification was linked")
	}
	if _, err := s.b.blobs.Stat(context.Background(), layer); err == nil {
		t.Fatal("a blob that failed verification was stored")
	}
	// A second client while the upstream is still corrupt: an error, not a 200.
	if r := s.b.do("GET", path, nil); r.status == http.StatusOK && r.err == nil {
		t.Fatalf("second pull of a corrupt blob: %v", r)
	}
	s.count.setHook(nil)
	s.b.pull("hub/app", "v1", im)
}

func TestConcurrentColdPullsFetchOnce(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 1<<20, 300000, 10)
	s.up.push("app", "v1", im)
	s.count.reset()
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- coldPull(s.b.url(), "hub/app", "v1", im)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range im.blobs() {
		if n := s.count.get("GET blobs " + digest.FromBytes(b).String()); n != 1 {
			t.Errorf("blob of %d bytes fetched %d times for %d concurrent pulls, want 1", len(b), n, clients)
		}
	}
	if n := s.count.get("GET manifests v1"); n != 1 {
		t.Errorf("manifest fetched %d times, want 1", n)
	}
}

// coldPull pulls name:ref over plain HTTP and verifies everything.
func coldPull(base, name, ref string, im *image) error {
	get := func(path string) ([]byte, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			return nil, errors.New(path + ": " + res.Status + ": " + string(b))
		}
		return b, nil
	}
	m, err := get("/v2/" + name + "/manifests/" + ref)
	if err != nil {
		return err
	}
	if !bytes.Equal(m, im.manifest) {
		return errors.New("manifest differs")
	}
	for _, want := range im.blobs() {
		b, err := get("/v2/" + name + "/blobs/" + digest.FromBytes(want).String())
		if err != nil {
			return err
		}
		if !bytes.Equal(b, want) {
			return errors.New("blob differs")
		}
	}
	return nil
}

// TestFirstByteBeforeFetchEnds: the upstream holds back the end of a blob
// until the client has read the first byte of it through the cache.
func TestFirstByteBeforeFetchEnds(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 4<<20)
	s.up.push("app", "v1", im)
	layer := im.layers[0]
	d := digest.FromBytes(layer)
	firstByte := make(chan struct{})
	upstreamDone := make(chan struct{})
	s.count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, d.String()) {
			return false
		}
		defer close(upstreamDone)
		w.Header().Set("Content-Length", "4194304")
		cut := len(layer) - 1024
		_, _ = w.Write(layer[:cut])
		w.(http.Flusher).Flush()
		select {
		case <-firstByte:
		case <-time.After(time.Minute):
			t.Error("the client never got a first byte while the upstream held back the end")
			return true
		}
		_, _ = w.Write(layer[cut:])
		return true
	})
	res, err := http.Get(s.b.url() + "/v2/hub/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	one := make([]byte, 1)
	if _, err := io.ReadFull(res.Body, one); err != nil {
		t.Fatal(err)
	}
	select {
	case <-upstreamDone:
		t.Fatal("the upstream finished before the client read its first byte")
	default:
	}
	close(firstByte)
	rest, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(one, rest...), layer) {
		t.Fatal("streamed blob differs")
	}
	if res.Header.Get("Content-Length") != "4194304" || res.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("headers %v", res.Header)
	}
	// Stored and served locally from now on.
	s.count.setHook(nil)
	s.count.reset()
	s.b.must(http.StatusOK, "GET", "/v2/hub/app/blobs/"+d.String(), nil)
	if n := s.count.total(""); n != 0 {
		t.Errorf("%d upstream requests for a cached blob", n)
	}
}

func TestClientGoneFillContinues(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 2<<20)
	s.up.push("app", "v1", im)
	d := digest.FromBytes(im.layers[0])
	release := make(chan struct{})
	s.count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, d.String()) {
			return false
		}
		w.Header().Set("Content-Length", "2097152")
		_, _ = w.Write(im.layers[0][:1000])
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write(im.layers[0][1000:])
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.b.url()+"/v2/hub/app/blobs/"+d.String(), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	// A second client joins the fill, then the first goes away.
	second := make(chan *resp, 1)
	go func() { second <- s.b.do("GET", "/v2/hub/app/blobs/"+d.String(), nil) }()
	cancel()
	res.Body.Close()
	close(release)
	r := <-second
	if r.status != http.StatusOK || !bytes.Equal(r.body, im.layers[0]) {
		t.Fatalf("second client: %d, %d bytes", r.status, len(r.body))
	}
	if n := s.count.get("GET blobs " + d.String()); n != 1 {
		t.Errorf("%d upstream fetches, want 1", n)
	}
}

func TestDeleteCachedRefetches(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 10)
	s.up.push("app", "v1", im)
	s.b.pull("hub/app", "v1", im)
	s.b.must(http.StatusAccepted, "DELETE", "/v2/hub/app/manifests/"+im.digest.String(), nil)
	// Still upstream.
	s.up.must(http.StatusOK, "GET", "/v2/app/manifests/v1", nil)
	s.count.reset()
	s.b.pull("hub/app", "v1", im)
	if n := s.count.get("GET manifests v1"); n != 1 {
		t.Errorf("after deleting the cached image, %d fetches of the tag, want 1", n)
	}
}

func TestPushToCacheRefused(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	r := s.b.do("POST", "/v2/hub/app/blobs/uploads/", nil)
	if r.status != http.StatusForbidden {
		t.Fatalf("push to a cache: %v, want 403", r)
	}
	if code, msg := wireCode(t, r.body); code != "DENIED" || !strings.Contains(msg, "cache") {
		t.Errorf("%s %q", code, msg)
	}
}

func TestAllowDenyAndNameMapping(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) {
		r.Upstream.RemotePrefix = "mirror/"
		r.Upstream.SingleNamePrefix = "library/"
		r.Allow = []string{"mirror/library/*", "mirror/org/**"}
		r.Deny = []string{"mirror/org/secret"}
	})
	im := newImage(t, 10)
	s.up.push("mirror/library/alpine", "3", im)
	s.up.push("mirror/org/team/app", "1", im)
	s.up.push("mirror/org/secret", "1", im)
	s.b.pull("hub/alpine", "3", im)
	s.b.pull("hub/org/team/app", "1", im)
	r := s.b.do("GET", "/v2/hub/org/secret/manifests/1", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("denied name: %v, want 404", r)
	}
	r = s.b.do("GET", "/v2/hub/x/other/manifests/1", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("name outside allow: %v, want 404", r)
	}
	if n := s.count.total("GET manifests 1"); n != 1 {
		t.Errorf("%d upstream manifest requests, want 1 (denied names are never asked for)", n)
	}
}

func TestCacheTags(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, nil)
	im := newImage(t, 10)
	for _, tag := range []string{"a", "b", "c"} {
		s.up.push("app", tag, im)
	}
	s.b.pull("hub/app", "b", im)
	r := s.b.must(http.StatusOK, "GET", "/v2/hub/app/tags/list?n=2", nil)
	if string(r.body) != `{"name":"hub/app","tags":["a","b"]}` {
		t.Errorf("first page %s", r.body)
	}
	if l := r.header.Get("Link"); !strings.Contains(l, "last=b") {
		t.Errorf("Link %q", l)
	}
	r = s.b.must(http.StatusOK, "GET", "/v2/hub/app/tags/list?n=2&last=b", nil)
	if string(r.body) != `{"name":"hub/app","tags":["c"]}` {
		t.Errorf("second page %s", r.body)
	}
	s.b.must(http.StatusNotFound, "GET", "/v2/hub/unknown/tags/list", nil)
	s.up.srv.Close()
	r = s.b.must(http.StatusOK, "GET", "/v2/hub/app/tags/list", nil)
	// Within the tag TTL the upstream's list is remembered.
	if string(r.body) != `{"name":"hub/app","tags":["a","b","c"]}` {
		t.Errorf("tags with the list remembered %s", r.body)
	}
}

// TestSlowUpstream: an upstream that stops answering (headers or body)
// is timed out; cached tags are served stale, nothing partial is cached.
func TestSlowUpstream(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, func(r *Registry) {
		r.TagTTL = durp(0)
		// Long enough that a loaded machine (the race detector, every package at once)
		// answers the final pull in time; the silent phases each wait this long.
		r.Upstream.Timeout = 3 * time.Second
	})
	im := newImage(t, 100000)
	s.up.push("app", "v1", im)
	s.b.must(http.StatusOK, "GET", "/v2/hub/app/manifests/v1", nil)
	layer := digest.FromBytes(im.layers[0])
	s.count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, layer.String()) {
			w.Header().Set("Content-Length", "100000")
			_, _ = w.Write(im.layers[0][:5000])
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done() // never finishes: berth gives up
		return true
	})
	r := s.b.do("GET", "/v2/hub/app/manifests/v1", nil)
	if r.status != http.StatusOK || r.header.Get("Warning") == "" {
		t.Errorf("cached tag with a silent upstream: %v, Warning %q", r, r.header.Get("Warning"))
	}
	r = s.b.do("GET", "/v2/hub/app/blobs/"+layer.String(), nil)
	if r.err == nil && r.status == http.StatusOK {
		t.Fatalf("a blob the upstream stopped sending was served whole (%d bytes)", len(r.body))
	}
	if _, err := s.b.meta.BlobSize(context.Background(), "hub/app", layer); err == nil {
		t.Fatal("a blob the upstream stopped sending was cached")
	}
	r = s.b.do("GET", "/v2/hub/app/manifests/v2", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "no answer within 3s") {
		t.Errorf("uncached tag with a silent upstream: %v", r)
	}
	s.count.setHook(nil)
	s.b.pull("hub/app", "v1", im)
}
