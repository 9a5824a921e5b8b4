package connector

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

var quiet = slog.New(slog.DiscardHandler)

// node is a registry over the inmemory driver and SQLite, served by an
// httptest server, with a connector in front when it has a configuration.
type node struct {
	t     testing.TB
	srv   *httptest.Server
	reg   *registry.Registry
	conn  *Connector
	meta  *sqlite.Store
	blobs *storage.Store
}

// nodeOptions are a node's connector options and its registry's hooks.
type nodeOptions struct {
	Options
	Authorize func(w http.ResponseWriter, r *http.Request, rt registry.Route) bool
	MayPull   func(r *http.Request, name string) bool
}

// newNode starts a registry; with cfg, with a Connector as its resolver.
// wrap, if set, wraps the served handler (to count, break or gate
// requests).
func newNode(t testing.TB, cfg Config, opts nodeOptions, wrap func(http.Handler) http.Handler) *node {
	t.Helper()
	meta, err := sqlite.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.Close() })
	blobs := storage.New(inmemory.New())
	content := gc.Guard(meta, blobs)
	n := &node{t: t, meta: meta, blobs: blobs}
	regOpts := registry.Options{Logger: quiet, Authorize: opts.Authorize, MayPull: opts.MayPull}
	if cfg != nil {
		if opts.Logger == nil {
			opts.Logger = quiet
		}
		n.conn, err = New(cfg, content, blobs, opts.Options)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.conn.Close() })
		regOpts.Resolver = n.conn
	}
	n.reg = registry.New(blobs, content, regOpts)
	var h http.Handler = registry.Handler(n.reg, registry.HandlerOptions{Logger: quiet})
	if wrap != nil {
		h = wrap(h)
	}
	n.srv = httptest.NewServer(h)
	t.Cleanup(n.srv.Close)
	return n
}

func (n *node) url() string { return n.srv.URL }

// resp is a fully read answer.
type resp struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func (r *resp) String() string {
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(string(r.body)))
}

// do sends a request; headers as "Key: value".
func (n *node) do(method, path string, body []byte, headers ...string) *resp {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url()+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, rerr := io.ReadAll(res.Body)
	return &resp{status: res.StatusCode, header: res.Header, body: b, err: rerr}
}

// must sends a request and fails the test unless the status is want.
func (n *node) must(want int, method, path string, body []byte, headers ...string) *resp {
	n.t.Helper()
	r := n.do(method, path, body, headers...)
	if r.status != want || r.err != nil {
		n.t.Fatalf("%s %s: %v (read error %v), want %d", method, path, r, r.err, want)
	}
	return r
}

// image is a pushed image: its manifest and blobs.
type image struct {
	manifest []byte
	digest   digest.Digest
	config   []byte
	layers   [][]byte
}

func (im *image) blobs() [][]byte { return append([][]byte{im.config}, im.layers...) }

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newImage makes an OCI image with layers of the given sizes.
func newImage(t testing.TB, sizes ...int) *image {
	im := &image{config: []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"nonce":%q}`, randomBytes(t, 8)))}
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, registry.MediaTypeOCIManifest, desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(im.config), len(im.config)}, []desc{}}
	for _, s := range sizes {
		l := randomBytes(t, s)
		im.layers = append(im.layers, l)
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", digest.FromBytes(l), len(l)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	im.manifest, im.digest = b, digest.FromBytes(b)
	return im
}

// pushBlob uploads b to name (POST, then PUT with the digest).
func (n *node) pushBlob(name string, b []byte) {
	n.t.Helper()
	r := n.must(http.StatusAccepted, "POST", "/v2/"+name+"/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	n.must(http.StatusCreated, "PUT", loc+sep+"digest="+digest.FromBytes(b).String(), b)
}

// push uploads im to name:tag.
func (n *node) push(name, tag string, im *image) {
	n.t.Helper()
	for _, b := range im.blobs() {
		n.pushBlob(name, b)
	}
	n.must(http.StatusCreated, "PUT", "/v2/"+name+"/manifests/"+tag, im.manifest, "Content-Type: "+registry.MediaTypeOCIManifest)
}

// pull fetches name:ref and every blob of im through n and checks them.
func (n *node) pull(name, ref string, im *image) *resp {
	n.t.Helper()
	r := n.must(http.StatusOK, "GET", "/v2/"+name+"/manifests/"+ref, nil, "Accept: "+registry.MediaTypeOCIManifest)
	if !bytes.Equal(r.body, im.manifest) {
		n.t.Fatalf("manifest %s:%s differs from the pushed one", name, ref)
	}
	for _, b := range im.blobs() {
		br := n.must(http.StatusOK, "GET", "/v2/"+name+"/blobs/"+digest.FromBytes(b).String(), nil)
		if !bytes.Equal(br.body, b) {
			n.t.Fatalf("blob %s of %s differs", digest.FromBytes(b), name)
		}
	}
	return r
}

// counter counts requests by "METHOD kind ref" (kind: manifests, blobs,
// tags, catalog, other) and can replace answers.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	// hook, if set, may answer a request itself (returning true).
	hook atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newCounter() *counter { return &counter{counts: map[string]int{}} }

func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[requestKey(r)]++
		c.mu.Unlock()
		if h := c.hook.Load(); h != nil && (*h)(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *counter) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	if h == nil {
		c.hook.Store(nil)
		return
	}
	c.hook.Store(&h)
}

// requestKey is "METHOD kind ref" for a registry path.
func requestKey(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	segs := strings.Split(p, "/")
	n := len(segs)
	switch {
	case r.URL.Path == "/v2/_catalog":
		return r.Method + " catalog"
	case n >= 3 && segs[n-2] == "manifests":
		return r.Method + " manifests " + segs[n-1]
	case n >= 3 && segs[n-2] == "blobs":
		return r.Method + " blobs " + segs[n-1]
	case n >= 3 && segs[n-2] == "tags":
		return r.Method + " tags"
	}
	return r.Method + " other"
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// total sums the counts of keys starting with prefix.
func (c *counter) total(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.counts {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func (c *counter) reset() {
	c.mu.Lock()
	c.counts = map[string]int{}
	c.mu.Unlock()
}

func durp(d time.Duration) *time.Duration { return &d }

// cacheOf returns a cache registry entry over up.
func cacheOf(name, prefix, up string) Registry {
	return Registry{Name: name, Type: TypeCache, Prefix: prefix, Upstream: Upstream{URL: up}}
}

// wireCode returns the first error code of an error body.
func wireCode(t testing.TB, body []byte) (code, message string) {
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) == 0 {
		t.Fatalf("not an error document: %q", body)
	}
	return doc.Errors[0].Code, doc.Errors[0].Message
}
