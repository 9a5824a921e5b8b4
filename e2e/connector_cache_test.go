package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/connector"
)

// TestConnectorConcurrentColdPulls: 50 clients pull the same image through a cold cache of
// the CNCF registry at once; each blob is fetched from the upstream exactly once.
func TestConnectorConcurrentColdPulls(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	img := newImage(t, "linux", "amd64", 3)
	big := blob{MediaType: mtOCILayerGzip, Data: randomBytes(t, 4<<20)}
	img.Layers = append(img.Layers, big)
	var descs []descriptor
	for _, l := range img.Layers {
		descs = append(descs, l.Descriptor())
	}
	cfg := img.Config.Descriptor()
	img.Manifest = blob{MediaType: mtOCIManifest, Data: mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIManifest, Config: &cfg, Layers: descs})}
	authClient(t, "http://"+dist.Addr, "", "").pushImage("app", "v1", img)
	proxy := startCountingProxy(t, "http://"+dist.Addr)
	b := startConnectorBerth(t, connector.Config{{Name: "hub", Type: connector.TypeCache, Prefix: "hub/",
		Upstream: connector.Upstream{URL: proxy.URL()}}})

	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pullOver(hc, b.URL(), "hub/app", "v1", img)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		if n := proxy.count("GET blobs " + bl.Digest()); n != 1 {
			t.Errorf("blob %s (%d bytes): %d upstream fetches for %d concurrent pulls, want 1", bl.Digest(), len(bl.Data), n, clients)
		}
	}
	if n := proxy.count("GET manifests v1"); n != 1 {
		t.Errorf("manifest: %d upstream fetches, want 1", n)
	}
}

// pullOver pulls repo:ref and its blobs over HTTP and checks them against img.
func pullOver(hc *http.Client, base, repo, ref string, img image) error {
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", manifestAccept)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, data)
		}
		return data, nil
	}
	m, err := get("/v2/" + repo + "/manifests/" + ref)
	if err != nil {
		return err
	}
	if !bytes.Equal(m, img.Manifest.Data) {
		return fmt.Errorf("manifest %s:%s differs", repo, ref)
	}
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		data, err := get("/v2/" + repo + "/blobs/" + bl.Digest())
		if err != nil {
			return err
		}
		if !bytes.Equal(data, bl.Data) {
			return fmt.Errorf("blob %s differs", bl.Digest())
		}
	}
	return nil
}

// fakeUpstream is a minimal registry serving one image, whose blobs it can corrupt and
// whose one blob it can hold back the end of.
type fakeUpstream struct {
	srv     *httptest.Server
	img     image
	corrupt atomic.Bool
	gets    atomic.Int64 // blob GETs
	// gate, when set, holds back the last KiB of the blob gated until it is closed.
	gated digest.Digest
	gate  chan struct{}
	sent  chan struct{} // closed when the gated blob's end has been sent
}

func startFakeUpstream(t testing.TB, img image) *fakeUpstream {
	f := &fakeUpstream{img: img}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
		return
	case strings.HasSuffix(r.URL.Path, "/manifests/v1") || strings.HasSuffix(r.URL.Path, "/manifests/"+f.img.Manifest.Digest()):
		w.Header().Set("Content-Type", f.img.Manifest.MediaType)
		w.Header().Set("Docker-Content-Digest", f.img.Manifest.Digest())
		w.Header().Set("Content-Length", strconv.Itoa(len(f.img.Manifest.Data)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(f.img.Manifest.Data)
		}
		return
	}
	for _, bl := range append([]blob{f.img.Config}, f.img.Layers...) {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+bl.Digest()) {
			continue
		}
		data := bl.Data
		if f.corrupt.Load() {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0x55
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if r.Method == http.MethodHead {
			return
		}
		f.gets.Add(1)
		if digest.Digest(bl.Digest()) != f.gated {
			_, _ = w.Write(data)
			return
		}
		cut := len(data) - 1024
		_, _ = w.Write(data[:cut])
		w.(http.Flusher).Flush()
		select {
		case <-f.gate:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(data[cut:])
		close(f.sent)
		return
	}
	w.WriteHeader(http.StatusNotFound)
}

// TestConnectorCorruptUpstream: an upstream serving bytes that do not match their digest
// leaves nothing in the cache and a client with an error; once the upstream is healthy the
// next pull succeeds.
func TestConnectorCorruptUpstream(t *testing.T) {
	t.Parallel()
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	img := newImage(t, "linux", "amd64", 2)
	up := startFakeUpstream(t, img)
	up.corrupt.Store(true)
	b := startConnectorBerth(t, connector.Config{{Name: "hub", Type: connector.TypeCache, Prefix: "hub/",
		Upstream: connector.Upstream{URL: up.srv.URL}}})
	ref := b.Addr + "/hub/app:v1"
	dir := t.TempDir()

	if _, stderr, err := crane.exec("pull", "--insecure", "--format", "oci", ref, dir+"/bad"); err == nil {
		t.Fatalf("crane pulled an image whose blobs do not match their digests (stderr %q)", stderr)
	}
	ctx := context.Background()
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		if _, err := b.meta.BlobSize(ctx, "hub/app", digest.Digest(bl.Digest())); err == nil {
			t.Errorf("blob %s was cached although its content did not verify", bl.Digest())
		}
	}
	before := up.gets.Load()
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get(b.URL() + "/v2/hub/app/blobs/" + img.Layers[0].Digest())
	if err != nil {
		t.Fatal(err)
	}
	data, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("a corrupt blob was served as a complete answer (%d bytes, digest %s)", len(data), sha256Digest(data))
	}
	if up.gets.Load() == before {
		t.Error("the second request did not go upstream: something bad was remembered")
	}

	up.corrupt.Store(false)
	crane.run("pull", "--insecure", "--format", "oci", ref, dir+"/good")
	b.client(t).checkImage("hub/app", img)
}

// TestConnectorFirstByteBeforeFetchEnds: on a cold pull, the first byte of a large blob
// reaches the client while the upstream still holds back the end of it.
func TestConnectorFirstByteBeforeFetchEnds(t *testing.T) {
	t.Parallel()
	img := newImage(t, "linux", "amd64", 1)
	img.Layers[0] = blob{MediaType: mtOCILayerGzip, Data: randomBytes(t, 8<<20)}
	up := startFakeUpstream(t, img)
	up.gated, up.gate, up.sent = digest.Digest(img.Layers[0].Digest()), make(chan struct{}), make(chan struct{})
	b := startConnectorBerth(t, connector.Config{{Name: "hub", Type: connector.TypeCache, Prefix: "hub/",
		Upstream: connector.Upstream{URL: up.srv.URL}}})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL()+"/v2/hub/app/blobs/"+img.Layers[0].Digest(), nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatalf("no answer while the upstream holds back the end of the blob: %v", err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("no first byte while the upstream holds back the end of the blob: %v", err)
	}
	select {
	case <-up.sent:
		t.Fatal("the upstream sent the end of the blob before the client had its first byte")
	default:
	}
	close(up.gate)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Digest(append(first, rest...)); got != img.Layers[0].Digest() {
		t.Fatalf("streamed blob has digest %s", got)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(8<<20) {
		t.Errorf("Content-Length %q", resp.Header.Get("Content-Length"))
	}
}

// TestConnectorDockerMirror: the Docker engine with berth as its registry-mirrors pulls
// library/ images through berth's root cache.
func TestConnectorDockerMirror(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	dist := startDistribution(t, distOptions{})
	img := newImage(t, "linux", "amd64", 2)
	authClient(t, "http://"+dist.Addr, "", "").pushImage("library/berth-e2e-mirror", "1", img)
	proxy := startCountingProxy(t, "http://"+dist.Addr)
	b := startConnectorBerth(t, connector.Config{{Name: "dockerhub", Type: connector.TypeCache, Prefix: "",
		MirrorOf: []string{"docker.io"}, Upstream: connector.Upstream{URL: proxy.URL()}}})

	engine := startDockerd(t, "--registry-mirror", b.URL())
	docker := engine.client(t)
	// There is no network beyond loopback: only the mirror can answer.
	docker.run("pull", "berth-e2e-mirror:1")
	if id := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", "berth-e2e-mirror:1")); id != img.Config.Digest() {
		t.Errorf("pulled image %s, want %s", id, img.Config.Digest())
	}
	if n := proxy.count("GET manifests 1") + proxy.count("GET manifests "+img.Manifest.Digest()); n == 0 {
		t.Error("the pull never reached the upstream through berth")
	}
	if _, err := b.meta.ResolveTag(context.Background(), "library/berth-e2e-mirror", "1"); err != nil {
		t.Errorf("library/berth-e2e-mirror:1 not cached: %v", err)
	}
	// containerd's mirror requests name the upstream host.
	r := b.client(t).request("GET", "/v2/library/berth-e2e-mirror/manifests/1?ns=docker.io", nil, "Accept", manifestAccept)
	if r.Status != http.StatusOK || sha256Digest(r.Body) != img.Manifest.Digest() {
		t.Errorf("ns=docker.io request:\n%s", r)
	}
}
