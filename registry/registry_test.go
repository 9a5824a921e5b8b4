package registry

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, path := range []string{"/v2/", "/v2"} {
		res := e.get(path)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
		wantHeader(t, res, "Content-Type", "application/json")
		if string(res.Body) != "{}" {
			t.Errorf("GET %s body = %q, want {}", path, res.Body)
		}
	}
	res := e.head("/v2/")
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
	if len(res.Body) != 0 {
		t.Errorf("HEAD /v2/ has a body: %q", res.Body)
	}
}

func TestUnknownPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, path := range []string{
		"/", "/v1", "/v1/", "/v3/", "/v2x", "/v2/foo", "/v2/foo/bar", "/v2/foo/blob/" + digest.FromString("x").String(),
		"/v2/foo/manifest/latest", "/v2/foo/tags", "/v2/foo/tags/lists", "/v2/_catalog/x", "/v1/search/x",
		"/v2/foo/referrer/" + digest.FromString("x").String(), "/v2/tags/list",
	} {
		t.Run(path, func(t *testing.T) {
			e := e.with(t)
			for _, m := range []string{"GET", "PUT", "DELETE"} {
				res := e.do(req{Method: m, Path: path})
				wantError(t, res, http.StatusNotFound, "NOT_FOUND")
				wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	d := digest.FromString("x").String()
	id := "9e1c3a3c-6b51-4f0e-9d53-7c6b2f0f4a10"
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"POST", "/v2/", "GET, HEAD"},
		{"DELETE", "/v2/", "GET, HEAD"},
		{"PUT", "/v2/_catalog", "GET, HEAD"},
		{"POST", "/v2/foo/tags/list", "GET, HEAD"},
		{"POST", "/v2/foo/manifests/latest", "GET, HEAD, PUT, DELETE"},
		{"PATCH", "/v2/foo/manifests/latest", "GET, HEAD, PUT, DELETE"},
		{"PUT", "/v2/foo/blobs/" + d, "GET, HEAD, DELETE"},
		{"POST", "/v2/foo/blobs/" + d, "GET, HEAD, DELETE"},
		{"GET", "/v2/foo/blobs/uploads/", "POST"},
		{"PUT", "/v2/foo/blobs/uploads/", "POST"},
		{"POST", "/v2/foo/blobs/uploads/" + id, "GET, PUT, PATCH, DELETE"},
		{"DELETE", "/v2/foo/referrers/" + d, "GET, HEAD"},
		{"POST", "/v1/_ping", "GET, HEAD"},
		{"DELETE", "/v1/search", "GET"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e := e.with(t)
			res := e.do(req{Method: tc.method, Path: tc.path})
			wantError(t, res, http.StatusMethodNotAllowed, "UNSUPPORTED")
			wantHeader(t, res, "Allow", tc.allow)
		})
	}
}

func TestInvalidNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	d := digest.FromString("x").String()
	long := strings.Repeat("a", 256)
	longSlashed := strings.Repeat("abcdefg/", 32) + "a" // 257 characters
	for _, name := range []string{
		"Foo", "foo/Bar", "FOO", "a..b", "a/../b", "..", "../a", "a/..", "./a", "a/./b",
		"a//b", "/a", "a/", "a/b/", "-a", "a-", "_a", "a_", ".a", "a.", "a___b", "a..", "a/-b", "a:b",
		"a b", "a%b", "a@b", long, longSlashed, "a/" + long,
	} {
		for _, path := range []struct{ method, path string }{
			{"GET", "/v2/" + name + "/tags/list"},
			{"GET", "/v2/" + name + "/manifests/latest"},
			{"PUT", "/v2/" + name + "/manifests/latest"},
			{"DELETE", "/v2/" + name + "/manifests/latest"},
			{"GET", "/v2/" + name + "/blobs/" + d},
			{"HEAD", "/v2/" + name + "/blobs/" + d},
			{"DELETE", "/v2/" + name + "/blobs/" + d},
			{"POST", "/v2/" + name + "/blobs/uploads/"},
			{"GET", "/v2/" + name + "/blobs/uploads/9e1c3a3c-6b51-4f0e-9d53-7c6b2f0f4a10"},
			{"GET", "/v2/" + name + "/referrers/" + d},
		} {
			res := e.do(req{Method: path.method, Path: escapePath(path.path)})
			if res.Status != http.StatusBadRequest {
				t.Errorf("%s %s: status %d, want 400 (body %s)", path.method, path.path, res.Status, res.Body)
				continue
			}
			if path.method != "HEAD" {
				if code := errorCode(t, res); code != "NAME_INVALID" {
					t.Errorf("%s %s: code %s, want NAME_INVALID", path.method, path.path, code)
				}
			}
		}
	}
}

// escapePath escapes what a URL cannot carry literally.
func escapePath(p string) string {
	return strings.NewReplacer(" ", "%20", "%", "%25").Replace(p)
}

func TestEncodedDotsAreInvalidNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.pushImage("secret", "latest", MediaTypeOCIManifest, "s")
	for _, path := range []string{
		"/v2/a/%2e%2e/secret/manifests/latest",
		"/v2/a/%2E%2E/secret/manifests/latest",
		"/v2/%2e%2e/secret/manifests/latest",
		"/v2/a/%2e/secret/manifests/latest",
		"/v2/secret/%2e%2e/tags/list",
	} {
		res := e.get(path)
		wantError(t, res, http.StatusBadRequest, "NAME_INVALID")
	}
}

func TestEmptyNameIsInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	d := digest.FromString("x").String()
	for _, r := range []req{
		{Method: "GET", Path: "/v2//tags/list"},
		{Method: "GET", Path: "/v2//manifests/latest"},
		{Method: "GET", Path: "/v2//blobs/" + d},
		{Method: "POST", Path: "/v2//blobs/uploads/"},
		{Method: "POST", Path: "/v2//blobs/uploads/?digest=" + digest.FromString("data").String(), Body: []byte("data")},
		{Method: "GET", Path: "/v2//referrers/" + d},
	} {
		res := e.do(r)
		if res.Status != http.StatusBadRequest || errorCode(t, res) != "NAME_INVALID" {
			t.Errorf("%s %s: status %d body %s, want 400 NAME_INVALID", r.Method, r.Path, res.Status, res.Body)
		}
	}
	// Nothing may have been stored under an empty name.
	res := e.get("/v2/_catalog")
	wantStatus(t, res, http.StatusOK)
	if string(res.Body) != `{"repositories":[]}` {
		t.Errorf("catalog after requests on an empty name = %s", res.Body)
	}
}

func TestValidNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	max := strings.Repeat("a", 127) + "/" + strings.Repeat("b", 127) // 255 characters
	for _, name := range []string{
		"a", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", "a-b", "a--b", "a__b", "a.b", "a_b", "0", "9/8/7",
		"library/ubuntu", "my.org/team-1/app__x/v2", max,
		// Names whose components read as route words.
		"foo/blobs", "foo/blobs/uploads", "foo/manifests", "foo/tags/list", "referrers/x",
	} {
		t.Run(name, func(t *testing.T) {
			e := e.with(t)
			if len(name) > maxNameLength || !ValidName(name) {
				t.Fatalf("test name %q is not valid", name)
			}
			img := e.pushImage(name, "v1", MediaTypeOCIManifest, name)
			e.wantBlob(name, digest.FromBytes(img.Layer), img.Layer)
			res := e.get("/v2/" + name + "/manifests/v1")
			wantStatus(t, res, http.StatusOK)
			if string(res.Body) != string(img.Body) {
				t.Errorf("manifest of %s differs", name)
			}
			res = e.get("/v2/" + name + "/tags/list")
			wantStatus(t, res, http.StatusOK)
			if want := `{"name":"` + name + `","tags":["v1"]}`; string(res.Body) != want {
				t.Errorf("tags = %s, want %s", res.Body, want)
			}
		})
	}
}

// malformedDigests are digests that must be rejected before any lookup.
var malformedDigests = []string{
	"sha256:xyz",
	"sha256:" + strings.Repeat("a", 63),
	"sha256:" + strings.Repeat("a", 65),
	"sha256:" + strings.ToUpper(digest.FromString("x").Encoded()),
	"sha256:" + strings.Repeat("g", 64),
	"md5:d41d8cd98f00b204e9800998ecf8427e",
	"sha384:" + strings.Repeat("a", 96),
	"sha512:" + strings.Repeat("a", 64),
	"sha256:",
	":" + strings.Repeat("a", 64),
	"SHA256:" + digest.FromString("x").Encoded(),
	"sha256::" + strings.Repeat("a", 64),
	"foo:bar",
}

func TestMalformedDigests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.pushImage("repo", "latest", MediaTypeOCIManifest, "r")
	good := digest.FromString("content")
	e.pushBlob("repo", []byte("content"))
	loc := e.startUpload("repo")
	for _, bad := range malformedDigests {
		for _, r := range []req{
			{Method: "GET", Path: "/v2/repo/blobs/" + bad},
			{Method: "HEAD", Path: "/v2/repo/blobs/" + bad},
			{Method: "DELETE", Path: "/v2/repo/blobs/" + bad},
			{Method: "GET", Path: "/v2/repo/manifests/" + bad},
			{Method: "HEAD", Path: "/v2/repo/manifests/" + bad},
			{Method: "DELETE", Path: "/v2/repo/manifests/" + bad},
			{Method: "PUT", Path: "/v2/repo/manifests/" + bad, Body: []byte("{}")},
			{Method: "GET", Path: "/v2/repo/referrers/" + bad},
			{Method: "POST", Path: "/v2/repo/blobs/uploads/?digest=" + bad, Body: []byte("content")},
			{Method: "PUT", Path: loc + "?digest=" + bad, Body: []byte("content")},
			{Method: "POST", Path: "/v2/repo/blobs/uploads/?mount=" + bad + "&from=repo"},
			{Method: "POST", Path: "/v2/repo/blobs/uploads/?mount=" + bad},
		} {
			res := e.do(r)
			if res.Status != http.StatusBadRequest {
				t.Errorf("%s %s: status %d, want 400 (body %s)", r.Method, r.Path, res.Status, res.Body)
				continue
			}
			if r.Method != "HEAD" {
				if code := errorCode(t, res); code != "DIGEST_INVALID" {
					t.Errorf("%s %s: code %s, want DIGEST_INVALID", r.Method, r.Path, code)
				}
			}
		}
	}
	// The session and the stored content are untouched.
	res := e.get(loc)
	wantStatus(t, res, http.StatusNoContent)
	wantHeader(t, res, "Range", "0-0")
	e.wantBlob("repo", good, []byte("content"))
}

func TestUnknownDigests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	e.pushImage("repo", "latest", MediaTypeOCIManifest, "r")
	for _, d := range []digest.Digest{digest.FromString("nothing"), sha512Digest([]byte("nothing"))} {
		for _, repo := range []string{"repo", "never-pushed"} {
			res := e.get("/v2/" + repo + "/blobs/" + d.String())
			wantError(t, res, http.StatusNotFound, "BLOB_UNKNOWN")
			res = e.head("/v2/" + repo + "/blobs/" + d.String())
			wantStatus(t, res, http.StatusNotFound)
			if len(res.Body) != 0 {
				t.Errorf("HEAD has a body: %q", res.Body)
			}
			res = e.get("/v2/" + repo + "/manifests/" + d.String())
			wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
			res = e.head("/v2/" + repo + "/manifests/" + d.String())
			wantStatus(t, res, http.StatusNotFound)
			res = e.get("/v2/" + repo + "/manifests/nosuchtag")
			wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
		}
		res := e.do(req{Method: "DELETE", Path: "/v2/repo/blobs/" + d.String()})
		wantError(t, res, http.StatusNotFound, "BLOB_UNKNOWN")
		res = e.do(req{Method: "DELETE", Path: "/v2/repo/manifests/" + d.String()})
		wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
		res = e.do(req{Method: "DELETE", Path: "/v2/repo/manifests/nosuchtag"})
		wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
}

func TestErrorsAreJSONWithTableCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	res := e.get("/v2/nope/tags/list")
	wantError(t, res, http.StatusNotFound, "NAME_UNKNOWN")
	wantHeader(t, res, "Content-Length", strconv.Itoa(len(res.Body)))
	wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
	// HEAD errors keep the status and drop the body.
	res = e.head("/v2/nope/tags/list")
	wantStatus(t, res, http.StatusNotFound)
	if len(res.Body) != 0 {
		t.Errorf("HEAD error has a body: %q", res.Body)
	}
}
