package registry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// wantManifest fetches ref with GET and HEAD and checks body and headers.
func wantManifest(t *testing.T, e *testEnv, repo, ref, mediaType string, body []byte, hdr ...string) {
	t.Helper()
	d := digest.FromBytes(body)
	for _, method := range []string{"GET", "HEAD"} {
		res := e.do(req{Method: method, Path: "/v2/" + repo + "/manifests/" + ref, Header: hdr})
		if res.Status != http.StatusOK {
			t.Fatalf("%s %s:%s: status %d: %s", method, repo, ref, res.Status, res.Body)
		}
		wantHeader(t, res, "Content-Type", mediaType)
		wantHeader(t, res, "Content-Length", strconv.Itoa(len(body)))
		wantHeader(t, res, "Docker-Content-Digest", d.String())
		if method == "GET" && !bytes.Equal(res.Body, body) {
			t.Errorf("GET %s:%s body differs:\n%s\nwant\n%s", repo, ref, res.Body, body)
		}
		if method == "HEAD" && len(res.Body) != 0 {
			t.Errorf("HEAD %s:%s has a body", repo, ref)
		}
	}
}

// wantNoManifest checks that ref is not served.
func wantNoManifest(t *testing.T, e *testEnv, repo, ref string) {
	t.Helper()
	wantError(t, e.get("/v2/"+repo+"/manifests/"+ref), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

// tagList returns the tags of repo.
func tagList(t *testing.T, e *testEnv, repo string) []string {
	t.Helper()
	res := e.get("/v2/" + repo + "/tags/list")
	wantStatus(t, res, http.StatusOK)
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(res.Body, &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Name != repo {
		t.Errorf("tags list name = %q, want %q", tl.Name, repo)
	}
	return tl.Tags
}

func TestPushPullManifests(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		oci := e.pushImage("app", "oci", MediaTypeOCIManifest, "oci-amd64")
		dock := e.pushImage("app", "docker", MediaTypeDockerManifest, "docker-amd64")
		index := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{
			func() desc {
				d := manifestDesc(MediaTypeOCIManifest, oci.Body)
				d.Platform = &platform{OS: "linux", Architecture: "amd64"}
				return d
			}(),
		}})
		list := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeDockerList, Manifests: []desc{
			func() desc {
				d := manifestDesc(MediaTypeDockerManifest, dock.Body)
				d.Platform = &platform{OS: "linux", Architecture: "amd64"}
				return d
			}(),
		}})
		res := e.do(req{Method: "PUT", Path: "/v2/app/manifests/index", Body: index, Header: []string{"Content-Type: " + MediaTypeOCIIndex}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "Location", "/v2/app/manifests/"+digest.FromBytes(index).String())
		wantHeader(t, res, "Docker-Content-Digest", digest.FromBytes(index).String())
		wantHeader(t, res, "OCI-Subject", "")
		e.pushManifest("app", "list", MediaTypeDockerList, list)

		for _, tc := range []struct {
			tag, mt string
			body    []byte
		}{
			{"oci", MediaTypeOCIManifest, oci.Body},
			{"docker", MediaTypeDockerManifest, dock.Body},
			{"index", MediaTypeOCIIndex, index},
			{"list", MediaTypeDockerList, list},
		} {
			t.Run(tc.tag, func(t *testing.T) {
				e := e.with(t)
				wantManifest(t, e, "app", tc.tag, tc.mt, tc.body)
				wantManifest(t, e, "app", digest.FromBytes(tc.body).String(), tc.mt, tc.body)
			})
		}
		if got := strings.Join(tagList(t, e, "app"), ","); got != "docker,index,list,oci" {
			t.Errorf("tags = %s", got)
		}

		// Re-pushing the same content under another tag keeps both.
		e.pushManifest("app", "oci-again", MediaTypeOCIManifest, oci.Body)
		wantManifest(t, e, "app", "oci", MediaTypeOCIManifest, oci.Body)
		wantManifest(t, e, "app", "oci-again", MediaTypeOCIManifest, oci.Body)

		// Moving a tag.
		e.pushManifest("app", "oci", MediaTypeDockerManifest, dock.Body)
		wantManifest(t, e, "app", "oci", MediaTypeDockerManifest, dock.Body)
		wantManifest(t, e, "app", oci.Digest.String(), MediaTypeOCIManifest, oci.Body)
	})
}

func TestManifestContentTypeInference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "base", MediaTypeOCIManifest, "x")
	var m imageManifest
	if err := json.Unmarshal(img.Body, &m); err != nil {
		t.Fatal(err)
	}
	// No mediaType field: Content-Type says what it is.
	m.MediaType = ""
	noField := mustJSON(t, m)
	e.pushManifest("r", "ct-only", MediaTypeOCIManifest+"; charset=utf-8", noField)
	wantManifest(t, e, "r", "ct-only", MediaTypeOCIManifest, noField)

	// Neither: a config makes it an OCI image manifest.
	m.Annotations = map[string]string{"v": "2"}
	neither := mustJSON(t, m)
	e.pushManifest("r", "inferred", "", neither)
	wantManifest(t, e, "r", "inferred", MediaTypeOCIManifest, neither)

	// Generic JSON Content-Type counts as absent.
	m.Annotations = map[string]string{"v": "3"}
	generic := mustJSON(t, m)
	e.pushManifest("r", "generic", "application/json", generic)
	wantManifest(t, e, "r", "generic", MediaTypeOCIManifest, generic)

	// An index without mediaType or Content-Type.
	idx := mustJSON(t, indexManifest{SchemaVersion: 2, Manifests: []desc{manifestDesc(MediaTypeOCIManifest, img.Body)}})
	e.pushManifest("r", "idx", "", idx)
	wantManifest(t, e, "r", "idx", MediaTypeOCIIndex, idx)

	// Trailing whitespace is part of the JSON text.
	ws := append(append([]byte{}, img.Body...), " \n\t"...)
	e.pushManifest("r", "ws", MediaTypeOCIManifest, ws)
	wantManifest(t, e, "r", "ws", MediaTypeOCIManifest, ws)
}

func TestPutManifestByDigestWithTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "", MediaTypeOCIManifest, "t")
	if got := tagList(t, e, "r"); len(got) != 0 {
		t.Errorf("push by digest created tags %v", got)
	}
	res := e.do(req{Method: "PUT", Path: "/v2/r/manifests/" + img.Digest.String() + "?tag=a&tag=b&tag=c",
		Body: img.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantStatus(t, res, http.StatusCreated)
	wantHeader(t, res, "Docker-Content-Digest", img.Digest.String())
	wantHeader(t, res, "Location", "/v2/r/manifests/"+img.Digest.String())
	if got := strings.Join(res.Header.Values("OCI-Tag"), ","); got != "a,b,c" {
		t.Errorf("OCI-Tag = %q, want a,b,c", got)
	}
	for _, tag := range []string{"a", "b", "c"} {
		wantManifest(t, e, "r", tag, MediaTypeOCIManifest, img.Body)
	}
	if got := strings.Join(tagList(t, e, "r"), ","); got != "a,b,c" {
		t.Errorf("tags = %s", got)
	}

	// ?tag= also adds to a PUT by tag.
	res = e.do(req{Method: "PUT", Path: "/v2/r/manifests/main?tag=extra", Body: img.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantStatus(t, res, http.StatusCreated)
	wantManifest(t, e, "r", "main", MediaTypeOCIManifest, img.Body)
	wantManifest(t, e, "r", "extra", MediaTypeOCIManifest, img.Body)

	// One invalid tag rejects the whole request.
	img2 := e.pushImage("r", "", MediaTypeOCIManifest, "t2")
	res = e.do(req{Method: "PUT", Path: "/v2/r/manifests/" + img2.Digest.String() + "?tag=fine&tag=-bad",
		Body: img2.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantError(t, res, http.StatusBadRequest, "TAG_INVALID")
	wantNoManifest(t, e, "r", "fine")
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		subj := e.pushImage("ref", "v1", MediaTypeOCIManifest, "subject")
		subjDesc := manifestDesc(MediaTypeOCIManifest, subj.Body)
		emptyCfg := []byte("{}")
		e.pushBlob("ref", emptyCfg)

		// An artifact with artifactType.
		sbom := mustJSON(t, imageManifest{
			SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: "application/vnd.example.sbom",
			Config:      blobDesc("application/vnd.oci.empty.v1+json", emptyCfg),
			Layers:      []desc{},
			Subject:     &subjDesc,
			Annotations: map[string]string{"org.example.kind": "sbom"},
		})
		res := e.do(req{Method: "PUT", Path: "/v2/ref/manifests/" + digest.FromBytes(sbom).String(), Body: sbom, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "OCI-Subject", subj.Digest.String())

		// An artifact typed by its config.
		sigCfg := []byte(`{"sig":true}`)
		e.pushBlob("ref", sigCfg)
		sig := mustJSON(t, imageManifest{
			SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
			Config: blobDesc("application/vnd.example.sig", sigCfg), Layers: []desc{}, Subject: &subjDesc,
		})
		res = e.do(req{Method: "PUT", Path: "/v2/ref/manifests/sig", Body: sig, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "OCI-Subject", subj.Digest.String())

		// An index referrer.
		refIndex := mustJSON(t, indexManifest{
			SchemaVersion: 2, MediaType: MediaTypeOCIIndex, ArtifactType: "application/vnd.example.bundle",
			Manifests: []desc{manifestDesc(MediaTypeOCIManifest, sbom)}, Subject: &subjDesc,
		})
		res = e.do(req{Method: "PUT", Path: "/v2/ref/manifests/bundle", Body: refIndex, Header: []string{"Content-Type: " + MediaTypeOCIIndex}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "OCI-Subject", subj.Digest.String())

		type refIdx struct {
			SchemaVersion int    `json:"schemaVersion"`
			MediaType     string `json:"mediaType"`
			Manifests     []desc `json:"manifests"`
		}
		list := func(query string) (refIdx, *response) {
			t.Helper()
			res := e.get("/v2/ref/referrers/" + subj.Digest.String() + query)
			wantStatus(t, res, http.StatusOK)
			wantHeader(t, res, "Content-Type", MediaTypeOCIIndex)
			var ri refIdx
			if err := json.Unmarshal(res.Body, &ri); err != nil {
				t.Fatal(err)
			}
			if ri.SchemaVersion != 2 || ri.MediaType != MediaTypeOCIIndex {
				t.Errorf("referrers index header = %d %q", ri.SchemaVersion, ri.MediaType)
			}
			return ri, res
		}
		want := map[digest.Digest]desc{
			digest.FromBytes(sbom): {MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(sbom), Size: int64(len(sbom)),
				ArtifactType: "application/vnd.example.sbom", Annotations: map[string]string{"org.example.kind": "sbom"}},
			digest.FromBytes(sig): {MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(sig), Size: int64(len(sig)),
				ArtifactType: "application/vnd.example.sig"},
			digest.FromBytes(refIndex): {MediaType: MediaTypeOCIIndex, Digest: digest.FromBytes(refIndex), Size: int64(len(refIndex)),
				ArtifactType: "application/vnd.example.bundle"},
		}
		ri, res := list("")
		wantHeader(t, res, "OCI-Filters-Applied", "")
		if len(ri.Manifests) != len(want) {
			t.Fatalf("referrers = %+v, want %d", ri.Manifests, len(want))
		}
		for i, got := range ri.Manifests {
			if i > 0 && ri.Manifests[i-1].Digest >= got.Digest {
				t.Errorf("referrers not ordered by digest")
			}
			w := want[got.Digest]
			if got.MediaType != w.MediaType || got.Size != w.Size || got.ArtifactType != w.ArtifactType ||
				len(got.Annotations) != len(w.Annotations) || got.Annotations["org.example.kind"] != w.Annotations["org.example.kind"] {
				t.Errorf("referrer %+v, want %+v", got, w)
			}
		}

		ri, res = list("?artifactType=application/vnd.example.sbom")
		wantHeader(t, res, "OCI-Filters-Applied", "artifactType")
		if len(ri.Manifests) != 1 || ri.Manifests[0].Digest != digest.FromBytes(sbom) {
			t.Errorf("filtered referrers = %+v", ri.Manifests)
		}
		ri, res = list("?artifactType=application/vnd.example.none")
		wantHeader(t, res, "OCI-Filters-Applied", "artifactType")
		if len(ri.Manifests) != 0 {
			t.Errorf("filtered referrers = %+v, want none", ri.Manifests)
		}

		// Unknown subjects and repositories: an empty index.
		for _, p := range []string{
			"/v2/ref/referrers/" + digest.FromString("unknown").String(),
			"/v2/nowhere/referrers/" + subj.Digest.String(),
		} {
			res := e.get(p)
			wantStatus(t, res, http.StatusOK)
			wantHeader(t, res, "Content-Type", MediaTypeOCIIndex)
			if want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`; string(res.Body) != want {
				t.Errorf("GET %s = %s, want %s", p, res.Body, want)
			}
		}

		// A referrer pushed before its subject is listed.
		ghost := digest.FromString("subject not pushed yet")
		early := mustJSON(t, imageManifest{
			SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
			Config: blobDesc("application/vnd.example.sig", sigCfg), Layers: []desc{},
			Subject: &desc{MediaType: MediaTypeOCIManifest, Digest: ghost, Size: 123},
		})
		res = e.do(req{Method: "PUT", Path: "/v2/ref/manifests/early", Body: early, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "OCI-Subject", ghost.String())
		res = e.get("/v2/ref/referrers/" + ghost.String())
		wantStatus(t, res, http.StatusOK)
		if !strings.Contains(string(res.Body), digest.FromBytes(early).String()) {
			t.Errorf("referrers of an unpushed subject = %s", res.Body)
		}

		// Deleting a referrer removes it from the list.
		wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/" + digest.FromBytes(sig).String()}), http.StatusAccepted)
		ri, _ = list("")
		if len(ri.Manifests) != 2 {
			t.Errorf("after delete: %d referrers, want 2", len(ri.Manifests))
		}
		for _, m := range ri.Manifests {
			if m.Digest == digest.FromBytes(sig) {
				t.Error("deleted referrer still listed")
			}
		}
	})
}

func TestInvalidManifests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "good", MediaTypeOCIManifest, "good")
	cfg := blobDesc(mtOCIConfig, img.Config)
	layer := blobDesc(mtOCILayer, img.Layer)
	// good returns a variant of a valid manifest that differs from img.
	good := func(mod func(m *imageManifest)) []byte {
		m := imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: cfg, Layers: []desc{layer},
			Annotations: map[string]string{"variant": "1"}}
		mod(&m)
		return mustJSON(t, m)
	}
	withDigest := func(d string) desc { return desc{MediaType: mtOCILayer, Digest: digest.Digest(d), Size: 1} }
	missingCfg := []byte("config that was never pushed")

	for _, tc := range []struct {
		name   string
		ct     string
		body   []byte
		status int
		code   string
	}{
		{"not json", MediaTypeOCIManifest, []byte("not json"), 400, "MANIFEST_INVALID"},
		{"truncated", MediaTypeOCIManifest, img.Body[:len(img.Body)-1], 400, "MANIFEST_INVALID"},
		{"empty body", MediaTypeOCIManifest, []byte{}, 400, "MANIFEST_INVALID"},
		{"null", MediaTypeOCIManifest, []byte("null"), 400, "MANIFEST_INVALID"},
		{"array", MediaTypeOCIManifest, []byte("[]"), 400, "MANIFEST_INVALID"},
		{"empty object", "", []byte("{}"), 400, "MANIFEST_INVALID"},
		{"trailing object", MediaTypeOCIManifest, append(append([]byte{}, img.Body...), "{}"...), 400, "MANIFEST_INVALID"},
		{"trailing garbage", MediaTypeOCIManifest, append(append([]byte{}, img.Body...), "x"...), 400, "MANIFEST_INVALID"},
		{"schemaVersion 1", MediaTypeOCIManifest, good(func(m *imageManifest) { m.SchemaVersion = 1 }), 400, "MANIFEST_INVALID"},
		{"schemaVersion 3", MediaTypeOCIManifest, good(func(m *imageManifest) { m.SchemaVersion = 3 }), 400, "MANIFEST_INVALID"},
		{"schemaVersion missing", MediaTypeOCIManifest, bytes.Replace(img.Body, []byte(`"schemaVersion":2,`), nil, 1), 400, "MANIFEST_INVALID"},
		{"schemaVersion string", MediaTypeOCIManifest, bytes.Replace(img.Body, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":"2"`), 1), 400, "MANIFEST_INVALID"},
		{"schema1 field", mediaTypeDockerSchema1, good(func(m *imageManifest) { m.MediaType = mediaTypeDockerSchema1 }), 400, "MANIFEST_INVALID"},
		{"schema1 signed", mediaTypeDockerSchema1Signed, good(func(m *imageManifest) { m.MediaType = "" }), 400, "MANIFEST_INVALID"},
		{"content type mismatch", MediaTypeDockerManifest, good(func(m *imageManifest) {}), 400, "MANIFEST_INVALID"},
		{"content type index for image", MediaTypeOCIIndex, good(func(m *imageManifest) {}), 400, "MANIFEST_INVALID"},
		{"unknown media type", "application/vnd.example.thing+json", good(func(m *imageManifest) { m.MediaType = "application/vnd.example.thing+json" }), 400, "MANIFEST_INVALID"},
		{"unknown content type", "text/plain", good(func(m *imageManifest) { m.MediaType = "" }), 400, "MANIFEST_INVALID"},
		{"config not in repository", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config = blobDesc(mtOCIConfig, missingCfg) }), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"config size wrong", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.Size++ }), 400, "MANIFEST_INVALID"},
		{"config digest malformed", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.Digest = "sha256:xyz" }), 400, "MANIFEST_INVALID"},
		{"config digest empty", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.Digest = "" }), 400, "MANIFEST_INVALID"},
		{"config no media type", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.MediaType = "" }), 400, "MANIFEST_INVALID"},
		{"config bad media type", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.MediaType = "not a type" }), 400, "MANIFEST_INVALID"},
		{"config negative size", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Config.Size = -1 }), 400, "MANIFEST_INVALID"},
		{"layer digest uppercase", MediaTypeOCIManifest, good(func(m *imageManifest) {
			m.Layers = []desc{withDigest("sha256:" + strings.ToUpper(digest.FromString("x").Encoded()))}
		}), 400, "MANIFEST_INVALID"},
		{"layer digest md5", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Layers = []desc{withDigest("md5:d41d8cd98f00b204e9800998ecf8427e")} }), 400, "MANIFEST_INVALID"},
		{"layer digest sha384", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Layers = []desc{withDigest("sha384:" + strings.Repeat("a", 96))} }), 400, "MANIFEST_INVALID"},
		{"layer digest short", MediaTypeOCIManifest, good(func(m *imageManifest) { m.Layers = []desc{withDigest("sha256:" + strings.Repeat("a", 63))} }), 400, "MANIFEST_INVALID"},
		{"subject digest malformed", MediaTypeOCIManifest, good(func(m *imageManifest) {
			m.Subject = &desc{MediaType: MediaTypeOCIManifest, Digest: "sha256:nope", Size: 1}
		}), 400, "MANIFEST_INVALID"},
		{"image without config", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","layers":[]}`), 400, "MANIFEST_INVALID"},
		{"image with manifests", MediaTypeOCIManifest, bytes.Replace(img.Body, []byte(`"layers"`), []byte(`"manifests":[],"layers"`), 1), 400, "MANIFEST_INVALID"},
		{"list with config", MediaTypeDockerList, []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","config":` + string(mustJSON(t, cfg)) + `,"manifests":[]}`), 400, "MANIFEST_INVALID"},
		{"index child digest bad", MediaTypeOCIIndex, mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{{MediaType: MediaTypeOCIManifest, Digest: "sha256:1234", Size: 3}}}), 400, "MANIFEST_INVALID"},
		{"index child no media type", MediaTypeOCIIndex, mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{{Digest: img.Digest, Size: 3}}}), 400, "MANIFEST_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			res := e.do(req{Method: "PUT", Path: "/v2/r/manifests/bad", Body: tc.body, Header: []string{"Content-Type: " + tc.ct}})
			wantError(t, res, tc.status, tc.code)
			d := digest.FromBytes(tc.body).String()
			res = e.do(req{Method: "PUT", Path: "/v2/r/manifests/" + d, Body: tc.body, Header: []string{"Content-Type: " + tc.ct}})
			wantError(t, res, tc.status, tc.code)
			wantNoManifest(t, e, "r", "bad")
			wantNoManifest(t, e, "r", d)
		})
	}
	if got := strings.Join(tagList(t, e, "r"), ","); got != "good" {
		t.Errorf("tags after bad pushes = %s", got)
	}
	wantManifest(t, e, "r", "good", MediaTypeOCIManifest, img.Body)
}

func TestManifestTooLarge(t *testing.T) {
	t.Parallel()
	const max = 600
	e := newEnv(t, Options{MaxManifestSize: max})
	img := e.pushImage("r", "small", MediaTypeOCIManifest, "s")
	// padded returns a valid manifest of exactly n bytes.
	padded := func(n int) []byte {
		var m imageManifest
		if err := json.Unmarshal(img.Body, &m); err != nil {
			t.Fatal(err)
		}
		m.Annotations = map[string]string{"pad": ""}
		base := len(mustJSON(t, m))
		if n < base {
			t.Fatalf("cannot pad to %d bytes, minimum %d", n, base)
		}
		m.Annotations["pad"] = strings.Repeat("x", n-base)
		b := mustJSON(t, m)
		if len(b) != n {
			t.Fatalf("padded to %d bytes, want %d", len(b), n)
		}
		return b
	}
	atLimit := padded(max)
	e.pushManifest("r", "at-limit", MediaTypeOCIManifest, atLimit)
	wantManifest(t, e, "r", "at-limit", MediaTypeOCIManifest, atLimit)

	over := padded(max + 1)
	huge := padded(10 * max)
	for _, r := range []req{
		{Method: "PUT", Path: "/v2/r/manifests/over", Body: over},
		{Method: "PUT", Path: "/v2/r/manifests/over", Body: over, Stream: true},
		{Method: "PUT", Path: "/v2/r/manifests/over", Body: huge},
		{Method: "PUT", Path: "/v2/r/manifests/over", Body: huge, Stream: true},
		{Method: "PUT", Path: "/v2/r/manifests/" + digest.FromBytes(over).String(), Body: over},
	} {
		r.Header = []string{"Content-Type: " + MediaTypeOCIManifest}
		wantError(t, e.do(r), http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
	}
	wantNoManifest(t, e, "r", "over")
	wantNoManifest(t, e, "r", digest.FromBytes(over).String())
}

func TestManifestDigestMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "", MediaTypeOCIManifest, "x")
	other := digest.FromString("other")
	res := e.do(req{Method: "PUT", Path: "/v2/r/manifests/" + other.String(), Body: img.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
	// A sha512 reference must be the sha512 of the body.
	res = e.do(req{Method: "PUT", Path: "/v2/r/manifests/" + sha512Digest([]byte("other")).String(), Body: img.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
	wantNoManifest(t, e, "r", other.String())
}

func TestInvalidTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "ok", MediaTypeOCIManifest, "x")
	for _, tag := range []string{"-lead", ".lead", strings.Repeat("a", 129), "a+b", "%20", "caf%C3%A9"} {
		for _, method := range []string{"PUT", "GET", "DELETE"} {
			res := e.do(req{Method: method, Path: "/v2/r/manifests/" + tag, Body: img.Body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
			if res.Status != http.StatusBadRequest || errorCode(t, res) != "TAG_INVALID" {
				t.Errorf("%s tag %q: status %d body %s, want 400 TAG_INVALID", method, tag, res.Status, res.Body)
			}
		}
	}
	// The longest valid tag, and other edge cases that are valid.
	for _, tag := range []string{strings.Repeat("a", 128), "_x", "A.B-C_D", "0", "v1.2.3-rc.1"} {
		e.pushManifest("r", tag, MediaTypeOCIManifest, img.Body)
		wantManifest(t, e, "r", tag, MediaTypeOCIManifest, img.Body)
	}
}

func TestSparseIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	present := e.pushImage("r", "", MediaTypeOCIManifest, "present")
	absent := desc{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("absent child"), Size: 42, Platform: &platform{OS: "linux", Architecture: "arm64"}}
	idx := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{manifestDesc(MediaTypeOCIManifest, present.Body), absent}})
	e.pushManifest("r", "sparse", MediaTypeOCIIndex, idx)
	wantManifest(t, e, "r", "sparse", MediaTypeOCIIndex, idx)
	list := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeDockerList, Manifests: []desc{{MediaType: MediaTypeDockerManifest, Digest: digest.FromString("gone"), Size: 1}}})
	e.pushManifest("r", "sparse-list", MediaTypeDockerList, list)
	wantManifest(t, e, "r", "sparse-list", MediaTypeDockerList, list)

	// Image manifests may be sparse in their layers too (by default).
	cfg := []byte(`{"os":"linux"}`)
	e.pushBlob("r", cfg)
	img := mustJSON(t, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: blobDesc(mtOCIConfig, cfg),
		Layers: []desc{blobDesc(mtOCILayer, []byte("never pushed"))}})
	e.pushManifest("r", "sparse-image", MediaTypeOCIManifest, img)
	wantManifest(t, e, "r", "sparse-image", MediaTypeOCIManifest, img)
}

func TestRequireLayers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RequireLayers: true})
	cfg := []byte(`{"os":"linux"}`)
	e.pushBlob("r", cfg)
	present := []byte("present layer")
	e.pushBlob("r", present)
	missing := []byte("missing layer")
	build := func(layers ...desc) []byte {
		return mustJSON(t, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, Config: blobDesc(mtOCIConfig, cfg), Layers: layers})
	}

	body := build(blobDesc(mtOCILayer, present), blobDesc(mtOCILayer, missing))
	res := e.do(req{Method: "PUT", Path: "/v2/r/manifests/t", Body: body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}})
	wantError(t, res, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	wantNoManifest(t, e, "r", "t")

	// A layer in another repository only does not count.
	other := []byte("layer elsewhere")
	e.pushBlob("elsewhere", other)
	body = build(blobDesc(mtOCILayer, other))
	wantError(t, e.do(req{Method: "PUT", Path: "/v2/r/manifests/t", Body: body, Header: []string{"Content-Type: " + MediaTypeOCIManifest}}),
		http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")

	// Size disagreement.
	wrong := blobDesc(mtOCILayer, present)
	wrong.Size++
	wantError(t, e.do(req{Method: "PUT", Path: "/v2/r/manifests/t", Body: build(wrong), Header: []string{"Content-Type: " + MediaTypeOCIManifest}}),
		http.StatusBadRequest, "MANIFEST_INVALID")

	// Non-distributable layers may be absent.
	foreign := blobDesc(mtOCILayer, missing)
	foreign.URLs = []string{"https://example.com/layer"}
	nondist := blobDesc("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", []byte("nd"))
	dockerForeign := blobDesc(mediaTypeDockerForeignLayer, []byte("df"))
	body = build(blobDesc(mtOCILayer, present), foreign, nondist, dockerForeign)
	e.pushManifest("r", "t", MediaTypeOCIManifest, body)
	wantManifest(t, e, "r", "t", MediaTypeOCIManifest, body)
}

func TestDeleteManifests(t *testing.T) {
	t.Parallel()
	forEachDriver(t, Options{}, func(t *testing.T, e *testEnv) {
		img := e.pushImage("del", "v1", MediaTypeOCIManifest, "d")
		e.pushManifest("del", "v2", MediaTypeOCIManifest, img.Body)
		keep := e.pushImage("del", "keep", MediaTypeOCIManifest, "k")

		// Deleting a tag removes only the tag.
		res := e.do(req{Method: "DELETE", Path: "/v2/del/manifests/v1"})
		wantStatus(t, res, http.StatusAccepted)
		wantNoManifest(t, e, "del", "v1")
		wantManifest(t, e, "del", img.Digest.String(), MediaTypeOCIManifest, img.Body)
		wantManifest(t, e, "del", "v2", MediaTypeOCIManifest, img.Body)
		if got := strings.Join(tagList(t, e, "del"), ","); got != "keep,v2" {
			t.Errorf("tags = %s", got)
		}
		wantError(t, e.do(req{Method: "DELETE", Path: "/v2/del/manifests/v1"}), http.StatusNotFound, "MANIFEST_UNKNOWN")

		// Deleting the digest removes the manifest and its tags.
		res = e.do(req{Method: "DELETE", Path: "/v2/del/manifests/" + img.Digest.String()})
		wantStatus(t, res, http.StatusAccepted)
		wantNoManifest(t, e, "del", img.Digest.String())
		wantNoManifest(t, e, "del", "v2")
		if got := strings.Join(tagList(t, e, "del"), ","); got != "keep" {
			t.Errorf("tags = %s", got)
		}
		wantError(t, e.do(req{Method: "DELETE", Path: "/v2/del/manifests/" + img.Digest.String()}), http.StatusNotFound, "MANIFEST_UNKNOWN")
		// Its blobs and the other manifest are still there.
		e.wantBlob("del", digest.FromBytes(img.Layer), img.Layer)
		wantManifest(t, e, "del", "keep", MediaTypeOCIManifest, keep.Body)
	})
}

func TestAcceptNegotiation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	amd := e.pushImage("multi", "", MediaTypeOCIManifest, "amd64")
	arm := e.pushImage("multi", "", MediaTypeOCIManifest, "arm64")
	child := func(img image, arch string) desc {
		d := manifestDesc(img.MediaType, img.Body)
		d.Platform = &platform{OS: "linux", Architecture: arch}
		return d
	}
	// arm64 first, so the pick is by platform, not position; and one child
	// that is not in the repository.
	idx := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{
		child(arm, "arm64"),
		{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("s390x"), Size: 9, Platform: &platform{OS: "linux", Architecture: "s390x"}},
		child(amd, "amd64"),
	}})
	e.pushManifest("multi", "latest", MediaTypeOCIIndex, idx)

	for _, tc := range []struct {
		name   string
		accept []string
		mt     string
		body   []byte
	}{
		{"no accept", nil, MediaTypeOCIIndex, idx},
		{"index", []string{"Accept: " + MediaTypeOCIIndex}, MediaTypeOCIIndex, idx},
		{"wildcard", []string{"Accept: */*"}, MediaTypeOCIIndex, idx},
		{"both", []string{"Accept: " + MediaTypeOCIManifest + ", " + MediaTypeOCIIndex}, MediaTypeOCIIndex, idx},
		{"both in two headers", []string{"Accept: " + MediaTypeOCIManifest, "Accept: " + MediaTypeOCIIndex}, MediaTypeOCIIndex, idx},
		{"image only", []string{"Accept: " + MediaTypeOCIManifest}, MediaTypeOCIManifest, amd.Body},
		{"image only with q", []string{"Accept: " + MediaTypeOCIManifest + ";q=0.9, " + MediaTypeDockerManifest}, MediaTypeOCIManifest, amd.Body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			wantManifest(t, e, "multi", "latest", tc.mt, tc.body, tc.accept...)
			wantManifest(t, e, "multi", digest.FromBytes(idx).String(), tc.mt, tc.body, tc.accept...)
		})
	}
	for _, accept := range []string{MediaTypeDockerManifest, "text/plain", MediaTypeDockerList} {
		t.Run("nothing matching "+accept, func(t *testing.T) {
			e := e.with(t)
			res := e.get("/v2/multi/manifests/latest", "Accept: "+accept)
			wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
		})
	}
	// An image served to a client that does not take its type.
	res := e.get("/v2/multi/manifests/"+amd.Digest.String(), "Accept: "+MediaTypeDockerManifest)
	wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")

	// A Docker manifest list with Docker children.
	damd := e.pushImage("multi", "", MediaTypeDockerManifest, "docker-amd64")
	list := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeDockerList, Manifests: []desc{child(damd, "amd64")}})
	e.pushManifest("multi", "docker", MediaTypeDockerList, list)
	wantManifest(t, e, "multi", "docker", MediaTypeDockerManifest, damd.Body, "Accept: "+MediaTypeDockerManifest)
	wantManifest(t, e, "multi", "docker", MediaTypeDockerList, list, "Accept: "+MediaTypeDockerList+", "+MediaTypeDockerManifest)
	wantError(t, e.get("/v2/multi/manifests/docker", "Accept: "+MediaTypeOCIManifest), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifestConditionalGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("r", "v1", MediaTypeOCIManifest, "c")
	res := e.get("/v2/r/manifests/v1", `If-None-Match: "`+img.Digest.String()+`"`)
	wantStatus(t, res, http.StatusNotModified)
	wantHeader(t, res, "Docker-Content-Digest", img.Digest.String())
	if len(res.Body) != 0 {
		t.Errorf("304 has a body")
	}
	res = e.get("/v2/r/manifests/v1", `If-None-Match: "`+digest.FromString("other").String()+`"`)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Etag", `"`+img.Digest.String()+`"`)
}

// TestDeleteReferencedManifest checks that a manifest an index of the same repository lists
// cannot be deleted (the index and its tags would stop being pullable) until the index is
// gone, unless DeleteReferenced allows it.
func TestDeleteReferencedManifest(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		e := newEnv(t, Options{DeleteReferenced: allow})
		img := e.pushImage("ref", "", MediaTypeOCIManifest, "child")
		d := manifestDesc(img.MediaType, img.Body)
		d.Platform = &platform{OS: "linux", Architecture: "amd64"}
		idx := mustJSON(t, indexManifest{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []desc{d}})
		idxD := e.pushManifest("ref", "latest", MediaTypeOCIIndex, idx)
		// The same child pushed to another repository without an index.
		e.pushImage("other", "", MediaTypeOCIManifest, "child")

		res := e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/" + img.Digest.String()})
		if allow {
			wantStatus(t, res, http.StatusAccepted)
			continue
		}
		wantError(t, res, http.StatusConflict, "MANIFEST_REFERENCED")
		if !strings.Contains(string(res.Body), idxD.String()) {
			t.Errorf("the refusal does not name the index %s: %s", idxD, res.Body)
		}
		wantManifest(t, e, "ref", img.Digest.String(), MediaTypeOCIManifest, img.Body)
		// Elsewhere it is no index's child.
		wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/other/manifests/" + img.Digest.String()}), http.StatusAccepted)
		// Untagging does not free it: the index still lists it.
		wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/latest"}), http.StatusAccepted)
		wantError(t, e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/" + img.Digest.String()}), http.StatusConflict, "MANIFEST_REFERENCED")
		// Deleting the index does.
		wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/" + idxD.String()}), http.StatusAccepted)
		wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/ref/manifests/" + img.Digest.String()}), http.StatusAccepted)
	}
}
