package registry

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/mediatype"

	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/filesystem"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// testEnv is a real registry over a real driver and a real SQLite store.
type testEnv struct {
	t    testing.TB
	reg  *Registry
	h    http.Handler // reg behind Handler, as the server runs it
	drv  driver.Driver
	meta *sqlite.Store
}

// quietLogger keeps the access log out of test output.
var quietLogger = slog.New(slog.DiscardHandler)

// newEnv returns a registry over the inmemory driver and SQLite in a
// temporary directory.
func newEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	return newEnvWith(t, inmemory.New(), filepath.Join(t.TempDir(), "metadata.db"), opts)
}

// newFSEnv returns a registry over the filesystem driver rooted at dir and
// SQLite at dbPath; both outlive the registry, so a second env over the
// same paths is a restarted registry.
func newFSEnv(t testing.TB, dir, dbPath string, opts Options) *testEnv {
	t.Helper()
	drv, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, drv, dbPath, opts)
}

func newEnvWith(t testing.TB, drv driver.Driver, dbPath string, opts Options) *testEnv {
	t.Helper()
	meta, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.Close() })
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	blobs := storage.New(drv)
	reg := New(blobs, gc.Guard(meta, blobs), opts)
	return &testEnv{t: t, reg: reg, h: Handler(reg, HandlerOptions{Logger: quietLogger}), drv: drv, meta: meta}
}

// with returns the env bound to another test, for use inside fuzz targets
// and subtests, where the creating test's methods may not be called.
func (e *testEnv) with(t testing.TB) *testEnv {
	c := *e
	c.t = t
	return &c
}

// driverKinds names the drivers the driver-independent tests run over.
var driverKinds = []string{"inmemory", "filesystem"}

// newEnvKind returns an env over the named driver.
func newEnvKind(t testing.TB, kind string, opts Options) *testEnv {
	t.Helper()
	switch kind {
	case "inmemory":
		return newEnv(t, opts)
	case "filesystem":
		dir := t.TempDir()
		return newFSEnv(t, filepath.Join(dir, "storage"), filepath.Join(dir, "metadata.db"), opts)
	}
	t.Fatalf("unknown driver %q", kind)
	return nil
}

// response is a recorded response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// streamed hides a body's length, so the request goes out without a
// Content-Length, as a chunked request would.
type streamed struct{ io.Reader }

// req describes a request. Headers are given as "Key: value" strings.
type req struct {
	Method string
	Path   string
	Body   []byte
	Header []string
	// Stream sends Body without a Content-Length.
	Stream bool
}

// do sends a request to the registry and records the answer.
func (e *testEnv) do(r req) *response {
	e.t.Helper()
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
		if r.Stream {
			body = streamed{bytes.NewReader(r.Body)}
		}
	}
	hr := httptest.NewRequest(r.Method, "http://registry.test"+r.Path, body)
	for _, h := range r.Header {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			e.t.Fatalf("bad header %q", h)
		}
		hr.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// get, head, put and post are shorthands.
func (e *testEnv) get(path string, hdr ...string) *response {
	e.t.Helper()
	return e.do(req{Method: "GET", Path: path, Header: hdr})
}

func (e *testEnv) head(path string, hdr ...string) *response {
	e.t.Helper()
	return e.do(req{Method: "HEAD", Path: path, Header: hdr})
}

// tableCodes are the code strings of the error table.
var tableCodes = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range []Code{ErrBlobUnknown, ErrBlobUploadInvalid, ErrBlobUploadUnknown, ErrDigestInvalid,
		ErrManifestBlobUnknown, ErrManifestInvalid, ErrManifestTooLarge, ErrManifestUnknown, ErrNameInvalid,
		ErrNameUnknown, ErrSizeInvalid, ErrTagInvalid, ErrRangeInvalid, ErrRangeUnsatisfiable,
		ErrPaginationInvalid, ErrUnauthorized, ErrDenied, ErrUnsupported, ErrNotFound, ErrTooManyRequests,
		ErrUnknown, ErrUnavailable, ErrManifestReferenced, ErrConfigInvalid} {
		m[c.Name] = true
	}
	return m
}()

type wireErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// errorCode decodes an error body and returns its single code, failing the
// test when the body is not in the spec's format.
func errorCode(t testing.TB, res *response) string {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var we wireErrors
	if err := json.Unmarshal(res.Body, &we); err != nil {
		t.Fatalf("error body %q is not JSON: %v", res.Body, err)
	}
	if len(we.Errors) != 1 {
		t.Fatalf("error body %s: want exactly one error", res.Body)
	}
	e := we.Errors[0]
	if !tableCodes[e.Code] {
		t.Errorf("error code %q is not in the error table", e.Code)
	}
	if e.Message == "" {
		t.Errorf("error %s has no message", e.Code)
	}
	return e.Code
}

// wantError checks status and error code. HEAD responses carry no body, so
// only the status is checked for them.
func wantError(t testing.TB, res *response, status int, code string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %d, want %d (body %s)", res.Status, status, short(res.Body))
	}
	if len(res.Body) == 0 && code != "" {
		// A HEAD request: nothing more to check.
		return
	}
	if got := errorCode(t, res); got != code {
		t.Fatalf("error code = %q, want %q (body %s)", got, code, short(res.Body))
	}
}

// wantStatus fails the test unless res has the status.
func wantStatus(t testing.TB, res *response, status int) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %d, want %d (body %s)", res.Status, status, short(res.Body))
	}
}

// wantHeader fails the test unless header k of res is v.
func wantHeader(t testing.TB, res *response, k, v string) {
	t.Helper()
	if got := res.Header.Get(k); got != v {
		t.Errorf("%s = %q, want %q", k, got, v)
	}
}

func sha512Digest(b []byte) digest.Digest {
	sum := sha512.Sum512(b)
	return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
}

// pushBlob uploads data monolithically to repo and returns its digest.
func (e *testEnv) pushBlob(repo string, data []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(data)
	res := e.do(req{Method: "POST", Path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), Body: data})
	if res.Status != http.StatusCreated {
		e.t.Fatalf("push blob to %s: status %d: %s", repo, res.Status, short(res.Body))
	}
	return d
}

// startUpload opens an upload session and returns its Location.
func (e *testEnv) startUpload(repo string) string {
	e.t.Helper()
	res := e.do(req{Method: "POST", Path: "/v2/" + repo + "/blobs/uploads/"})
	wantStatus(e.t, res, http.StatusAccepted)
	loc := res.Header.Get("Location")
	if loc == "" {
		e.t.Fatal("upload start has no Location")
	}
	return loc
}

// pushManifest stores body under ref and returns its digest.
func (e *testEnv) pushManifest(repo, ref, mediaType string, body []byte) digest.Digest {
	e.t.Helper()
	res := e.do(req{Method: "PUT", Path: "/v2/" + repo + "/manifests/" + ref, Body: body, Header: []string{"Content-Type: " + mediaType}})
	if res.Status != http.StatusCreated {
		e.t.Fatalf("push manifest %s:%s: status %d: %s", repo, ref, res.Status, short(res.Body))
	}
	d := digest.FromBytes(body)
	if strings.Contains(ref, ":") {
		d = digest.Digest(ref)
	}
	wantHeader(e.t, res, "Docker-Content-Digest", d.String())
	return d
}

// blobContent fetches a blob and fails the test unless it is data.
func (e *testEnv) wantBlob(repo string, d digest.Digest, data []byte) {
	e.t.Helper()
	res := e.get("/v2/" + repo + "/blobs/" + d.String())
	if res.Status != http.StatusOK {
		e.t.Fatalf("GET blob %s@%s: status %d: %s", repo, d, res.Status, short(res.Body))
	}
	if !bytes.Equal(res.Body, data) {
		e.t.Fatalf("GET blob %s@%s: %d bytes differ from the %d pushed", repo, d, len(res.Body), len(data))
	}
	wantHeader(e.t, res, "Docker-Content-Digest", d.String())
}

// Manifest building.

// platform is the OCI platform of an index entry.
type platform = ocispec.Platform

const (
	mediaTypeDockerSchema1       = mediatype.DockerSchema1
	mediaTypeDockerSchema1Signed = mediatype.DockerSchema1Signed
	mediaTypeDockerForeignLayer  = mediatype.DockerForeignLayer
)

type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
}

type imageManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        desc              `json:"config"`
	Layers        []desc            `json:"layers"`
	Subject       *desc             `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type indexManifest struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType,omitempty"`
	ArtifactType  string `json:"artifactType,omitempty"`
	Manifests     []desc `json:"manifests"`
	Subject       *desc  `json:"subject,omitempty"`
}

const (
	mtOCIConfig    = "application/vnd.oci.image.config.v1+json"
	mtOCILayer     = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerConfig = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func blobDesc(mediaType string, data []byte) desc {
	return desc{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func manifestDesc(mediaType string, body []byte) desc {
	return desc{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
}

// image is a pushed image: its config and layer contents and manifest.
type image struct {
	Config, Layer []byte
	Body          []byte
	Digest        digest.Digest
	MediaType     string
}

// pushImage pushes a config and a layer made from seed, then an image
// manifest of the given media type under ref (which may be "" to push by
// digest).
func (e *testEnv) pushImage(repo, ref, mediaType, seed string) image {
	e.t.Helper()
	cfgType, layerType := mtOCIConfig, mtOCILayer
	if mediaType == MediaTypeDockerManifest {
		cfgType, layerType = mtDockerConfig, mtDockerLayer
	}
	img := image{
		Config:    []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`),
		Layer:     []byte("layer of " + seed),
		MediaType: mediaType,
	}
	e.pushBlob(repo, img.Config)
	e.pushBlob(repo, img.Layer)
	img.Body = mustJSON(e.t, imageManifest{
		SchemaVersion: 2, MediaType: mediaType,
		Config: blobDesc(cfgType, img.Config),
		Layers: []desc{blobDesc(layerType, img.Layer)},
	})
	img.Digest = digest.FromBytes(img.Body)
	if ref == "" {
		ref = img.Digest.String()
	}
	e.pushManifest(repo, ref, mediaType, img.Body)
	return img
}

// short abbreviates a body for a failure message.
func short(b []byte) string {
	const max = 300
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..." + strconv.Itoa(len(b)-max) + " more bytes"
}
