package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// Media types the tests produce or expect.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayerGzip   = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

var manifestAccept = strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ", ")

// sha256Digest returns the OCI digest string of data.
func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// regClient speaks the distribution API to one server over plain HTTP and fails the test on
// any answer the spec does not allow.
type regClient struct {
	t    testing.TB
	base *url.URL
	hc   *http.Client
}

func newClient(t testing.TB, s *server) *regClient {
	base, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	return &regClient{
		t:    t,
		base: base,
		hc:   &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}},
	}
}

// response is a fully read HTTP response.
type response struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
}

// String describes the exchange for failure messages.
func (r response) String() string {
	body := string(r.Body)
	if len(body) > 512 {
		body = body[:512] + "..."
	}
	var hdr []string
	for k, v := range r.Header {
		hdr = append(hdr, k+": "+strings.Join(v, ", "))
	}
	sort.Strings(hdr)
	return fmt.Sprintf("%s %s -> %d %s\n  %s\n  body: %s", r.Method, r.URL, r.Status,
		http.StatusText(r.Status), strings.Join(hdr, "\n  "), body)
}

// resolve turns a path or a Location header (absolute or relative) into a URL on the server.
func (c *regClient) resolve(target string) *url.URL {
	c.t.Helper()
	u, err := c.base.Parse(target)
	if err != nil {
		c.t.Fatalf("bad URL %q: %v", target, err)
	}
	return u
}

func (c *regClient) do(method, target string, hdr http.Header, body io.Reader, size int64) response {
	c.t.Helper()
	u := c.resolve(target)
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return response{Method: method, URL: u.RequestURI(), Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// request sends body (nil for none) with the given headers (pairs of name, value).
func (c *regClient) request(method, target string, body []byte, headers ...string) response {
	c.t.Helper()
	hdr := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		hdr.Add(headers[i], headers[i+1])
	}
	if body == nil {
		return c.do(method, target, hdr, nil, 0)
	}
	return c.do(method, target, hdr, bytes.NewReader(body), int64(len(body)))
}

// expect fails the test unless r has the wanted status.
func (c *regClient) expect(r response, status int) response {
	c.t.Helper()
	if r.Status != status {
		c.t.Fatalf("want %d, got:\n%s", status, r)
	}
	return r
}

// manifest GETs a manifest and checks that the body hashes to Docker-Content-Digest (and to
// ref, when ref is a digest). It returns body, media type and digest.
func (c *regClient) manifest(repo, ref string) ([]byte, string, string) {
	c.t.Helper()
	r := c.expect(c.request("GET", "/v2/"+repo+"/manifests/"+ref, nil, "Accept", manifestAccept), http.StatusOK)
	dgst := sha256Digest(r.Body)
	if h := r.Header.Get("Docker-Content-Digest"); h != "" && h != dgst {
		c.t.Fatalf("Docker-Content-Digest %s does not match body digest %s:\n%s", h, dgst, r)
	}
	if strings.HasPrefix(ref, "sha256:") && ref != dgst {
		c.t.Fatalf("manifest %s has body digest %s:\n%s", ref, dgst, r)
	}
	return r.Body, r.Header.Get("Content-Type"), dgst
}

// manifestStatus returns the status of GET on a manifest.
func (c *regClient) manifestStatus(repo, ref string) int {
	c.t.Helper()
	return c.request("GET", "/v2/"+repo+"/manifests/"+ref, nil, "Accept", manifestAccept).Status
}

// blob GETs a blob and checks its content against its digest.
func (c *regClient) blob(repo, dgst string) []byte {
	c.t.Helper()
	r := c.expect(c.request("GET", "/v2/"+repo+"/blobs/"+dgst, nil), http.StatusOK)
	if got := sha256Digest(r.Body); got != dgst {
		c.t.Fatalf("blob %s in %s has content digest %s (%d bytes)", dgst, repo, got, len(r.Body))
	}
	return r.Body
}

// blobStatus returns the status of HEAD on a blob.
func (c *regClient) blobStatus(repo, dgst string) int {
	c.t.Helper()
	return c.request("HEAD", "/v2/"+repo+"/blobs/"+dgst, nil).Status
}

// withQuery returns the Location target with extra query parameters, keeping its own.
func (c *regClient) withQuery(location string, kv ...string) string {
	c.t.Helper()
	u := c.resolve(location)
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// startUpload opens an upload session and returns its Location.
func (c *regClient) startUpload(repo string) string {
	c.t.Helper()
	r := c.expect(c.request("POST", "/v2/"+repo+"/blobs/uploads/", nil), http.StatusAccepted)
	loc := r.Header.Get("Location")
	if loc == "" {
		c.t.Fatalf("upload without Location:\n%s", r)
	}
	return loc
}

// pushBlob uploads data with POST then PUT and returns its digest.
func (c *regClient) pushBlob(repo string, data []byte) string {
	c.t.Helper()
	dgst := sha256Digest(data)
	loc := c.startUpload(repo)
	r := c.expect(c.request("PUT", c.withQuery(loc, "digest", dgst), data,
		"Content-Type", "application/octet-stream"), http.StatusCreated)
	if h := r.Header.Get("Docker-Content-Digest"); h != "" && h != dgst {
		c.t.Fatalf("upload of %s answered Docker-Content-Digest %s", dgst, h)
	}
	return dgst
}

// pushManifest PUTs a manifest under ref (tag or digest) and returns its digest.
func (c *regClient) pushManifest(repo, ref, mediaType string, body []byte) string {
	c.t.Helper()
	dgst := sha256Digest(body)
	r := c.expect(c.request("PUT", "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mediaType), http.StatusCreated)
	if h := r.Header.Get("Docker-Content-Digest"); h != "" && h != dgst {
		c.t.Fatalf("manifest PUT answered Docker-Content-Digest %s, body digest is %s", h, dgst)
	}
	return dgst
}

// tags lists a repository's tags, sorted.
func (c *regClient) tags(repo string) []string {
	c.t.Helper()
	r := c.expect(c.request("GET", "/v2/"+repo+"/tags/list", nil), http.StatusOK)
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil {
		c.t.Fatalf("tags list: %v\n%s", err, r)
	}
	if list.Name != repo {
		c.t.Errorf("tags list name %q, want %q", list.Name, repo)
	}
	sort.Strings(list.Tags)
	return list.Tags
}

// catalog lists the server's repositories, sorted.
func (c *regClient) catalog() []string {
	c.t.Helper()
	r := c.expect(c.request("GET", "/v2/_catalog", nil), http.StatusOK)
	var list struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil {
		c.t.Fatalf("catalog: %v\n%s", err, r)
	}
	sort.Strings(list.Repositories)
	return list.Repositories
}

// pushImage uploads an image's blobs and manifest; tag may be empty to push by digest.
func (c *regClient) pushImage(repo, tag string, img image) {
	c.t.Helper()
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		c.pushBlob(repo, b.Data)
	}
	ref := tag
	if ref == "" {
		ref = img.Manifest.Digest()
	}
	c.pushManifest(repo, ref, img.Manifest.MediaType, img.Manifest.Data)
}

// pushIndex uploads every image of an index by digest, then the index under tag.
func (c *regClient) pushIndex(repo, tag string, ix index) {
	c.t.Helper()
	for _, img := range ix.Images {
		c.pushImage(repo, "", img)
	}
	c.pushManifest(repo, tag, ix.Manifest.MediaType, ix.Manifest.Data)
}

// checkImage verifies that repo serves the image's manifest, config and layers byte for byte.
func (c *regClient) checkImage(repo string, img image) {
	c.t.Helper()
	body, _, _ := c.manifest(repo, img.Manifest.Digest())
	if !bytes.Equal(body, img.Manifest.Data) {
		c.t.Fatalf("%s: manifest %s differs from the one pushed", repo, img.Manifest.Digest())
	}
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		if got := c.blob(repo, b.Digest()); !bytes.Equal(got, b.Data) {
			c.t.Fatalf("%s: blob %s differs from the one pushed", repo, b.Digest())
		}
	}
}

// checkIndex verifies that repo serves the index under ref and every image it lists.
func (c *regClient) checkIndex(repo, ref string, ix index) {
	c.t.Helper()
	body, mt, dgst := c.manifest(repo, ref)
	if dgst != ix.Manifest.Digest() || !bytes.Equal(body, ix.Manifest.Data) {
		c.t.Fatalf("%s:%s is %s, want index %s", repo, ref, dgst, ix.Manifest.Digest())
	}
	if mt != ix.Manifest.MediaType {
		c.t.Errorf("%s:%s Content-Type %q, want %q", repo, ref, mt, ix.Manifest.MediaType)
	}
	for _, img := range ix.Images {
		c.checkImage(repo, img)
	}
}
