package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage"
)

// repoRoute reports whether routes of kind k name a repository.
func repoRoute(k int) bool {
	switch k {
	case KindTags, KindManifest, KindBlob, KindUploadStart, KindUpload, KindReferrers:
		return true
	}
	return false
}

func FuzzParseRoute(f *testing.F) {
	d := digest.FromString("x").String()
	for _, p := range []string{
		"/v2/", "/v2", "/v2/_catalog", "/v1/_ping", "/v1/search", "/", "", "v2/", "/v2//",
		"/v2/library/ubuntu/tags/list", "/v2/a/b/c/manifests/latest", "/v2/a/manifests/" + d,
		"/v2/a/blobs/" + d, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads", "/v2/a/blobs/uploads/0b6a1f1e-3c5d-4f7e-8a9b-0c1d2e3f4a5b",
		"/v2/a/referrers/" + d, "/v2/Upper/tags/list", "/v2/a/../b/tags/list", "/v2/a//b/manifests/x", "/v2/a/tags/list/",
		"/v2/x/blobs/blobs/uploads/", "/v2/x/blobs/uploads/blobs/" + d, "/v2/tags/list/tags/list", "/v2/a/manifests/",
		"/v2/" + strings.Repeat("a/", 200) + "tags/list", "/v2/a/blobs", "/v2/a\x00b/tags/list", "/v2/é/tags/list",
	} {
		for _, m := range []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"} {
			f.Add(m, p)
		}
	}
	e := newEnv(f, Options{})
	f.Fuzz(func(t *testing.T, method, path string) {
		rt, ok := ParseRoute(method, path)
		if !ok {
			if rt != (Route{}) {
				t.Fatalf("rejected route is not zero: %+v", rt)
			}
			return
		}
		if rt.Kind < KindBase || rt.Kind > KindHealth {
			t.Fatalf("unknown kind %d", rt.Kind)
		}
		if !repoRoute(rt.Kind) {
			if rt.Name != "" || rt.Ref != "" {
				t.Fatalf("route %+v of %q has a name or ref", rt, path)
			}
			return
		}
		if rt.Access == AccessNone {
			t.Fatalf("repository route %+v has no access level", rt)
		}
		if rt.Kind == KindUpload || rt.Kind == KindUploadStart {
			if rt.Access != AccessPush {
				t.Fatalf("upload route %+v does not need push", rt)
			}
		}
		if !strings.HasPrefix(path, "/v2/"+rt.Name+"/") {
			t.Fatalf("name %q is not the start of %q", rt.Name, path)
		}
		if rt.Ref != "" && !strings.HasSuffix(path, "/"+rt.Ref) {
			t.Fatalf("ref %q is not the end of %q", rt.Ref, path)
		}
		if strings.Contains(rt.Ref, "/") {
			t.Fatalf("ref %q contains a slash", rt.Ref)
		}

		// The name either validates or the request is refused with
		// NAME_INVALID.
		r := httptest.NewRequest("GET", "/", nil)
		r.Method = method
		r.URL = &url.URL{Path: path}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if res.Status >= 500 {
			t.Fatalf("%s %q: status %d: %s", method, path, res.Status, short(res.Body))
		}
		if res.Status == http.StatusMethodNotAllowed {
			return
		}
		invalid := res.Status == http.StatusBadRequest && method != "HEAD" && errorCode(t, res) == "NAME_INVALID"
		if ValidName(rt.Name) && invalid {
			t.Fatalf("%s %q: valid name %q refused as NAME_INVALID", method, path, rt.Name)
		}
		if !ValidName(rt.Name) {
			if res.Status != http.StatusBadRequest || (method != "HEAD" && !invalid) {
				t.Fatalf("%s %q: invalid name %q answered %d %s", method, path, rt.Name, res.Status, short(res.Body))
			}
		}
	})
}

func FuzzParseByteRange(f *testing.F) {
	for _, h := range []string{
		"bytes=0-9", "bytes=5-", "bytes=-3", "bytes=-0", "bytes=0-0", "bytes=9-5", "bytes=0-1,3-4", "bytes=",
		"bytes=-", "bytes=abc", "items=0-1", "bytes= 1 - 2 ", "bytes=+1-2", "bytes=1-+2", "bytes=-+1", "bytes=--1",
		"bytes=99999999999999999999-", "bytes=9223372036854775807-", "bytes=-9223372036854775807", "bytes=0-9223372036854775807",
		"", "bytes=1-2-3", "bytes=\t1-2",
	} {
		for _, size := range []int64{0, 1, 10, 1 << 40, 9223372036854775807} {
			f.Add(h, size)
		}
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		first, last, multi, ok, err := parseByteRange(h, size)
		switch {
		case err != nil:
			if ok || multi {
				t.Fatalf("%q: error %v with ok=%v multi=%v", h, err, ok, multi)
			}
		case multi:
			if ok {
				t.Fatalf("%q: multi and ok", h)
			}
		case ok:
			if first < 0 || first > last || last >= size {
				t.Fatalf("%q size %d: range %d-%d out of bounds", h, size, first, last)
			}
		}
		if ok && !strings.HasPrefix(h, "bytes=") {
			t.Fatalf("%q accepted without the bytes= unit", h)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, h := range []string{
		"0-0", "0-9", "10-19", "bytes 0-9/10", "bytes 0-9/*", "bytes=0-9", "5-3", "-1-2", "1--2", "+1-2", "1-+2",
		"", "-", "abc", "9223372036854775807-9223372036854775807", "99999999999999999999-1", " 1-2 ", "1-2/3/4",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, end, err := parseContentRange(h)
		if err != nil {
			if start != 0 || end != 0 {
				t.Fatalf("%q: error with %d-%d", h, start, end)
			}
			return
		}
		if start < 0 || start > end {
			t.Fatalf("%q: accepted %d-%d", h, start, end)
		}
		s2, e2, err := parseContentRange(strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10))
		if err != nil || s2 != start || e2 != end {
			t.Fatalf("%q: %d-%d does not round-trip: %d-%d %v", h, start, end, s2, e2, err)
		}
	})
}

// manifestSeeds are manifest bodies for the fuzzers' corpora.
func manifestSeeds(cfg []byte) [][]byte {
	cfgD := digest.FromBytes(cfg)
	d := digest.FromString("seed")
	sub := `{"mediaType":"` + MediaTypeOCIManifest + `","digest":"` + d.String() + `","size":3}`
	config := `{"mediaType":"` + mtOCIConfig + `","digest":"` + cfgD.String() + `","size":` + strconv.Itoa(len(cfg)) + `}`
	layer := `{"mediaType":"` + mtOCILayer + `","digest":"` + d.String() + `","size":4,"urls":["https://example.com/l"]}`
	return [][]byte{
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + config + `,"layers":[` + layer + `]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","artifactType":"application/x","config":` + config + `,"layers":[],"subject":` + sub + `}`),
		[]byte(`{"schemaVersion":2,"config":` + config + `}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":` + config + `,"layers":[` + layer + `]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[` + sub + `],"subject":` + sub + `}`),
		[]byte(`{"schemaVersion":2,"manifests":[]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[` + sub + `]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","config":` + config + `,"manifests":[]}`),
		[]byte(`{"schemaVersion":1,"mediaType":"` + mediaTypeDockerSchema1 + `"}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"a/b","digest":"sha256:xyz","size":1}}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"a/b","digest":"` + d.String() + `","size":-1}}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + config + `}{}`),
		[]byte(`{"schemaVersion":2.5}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":null,"config":null}`),
		[]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[{"mediaType":"` + MediaTypeOCIManifest + `","digest":"sha512:` + strings.Repeat("0", 128) + `","size":1}]}`),
		[]byte(`{"schemaVersion":99999999999999999999999}`),
		[]byte(`{"layers":[{"digest":{}}]}`),
		[]byte(`null`), []byte(`[]`), []byte(`{}`), []byte(``), []byte(`"x"`), []byte("\xff\xfe"),
	}
}

var knownMediaTypes = map[string]bool{
	MediaTypeOCIManifest: true, MediaTypeOCIIndex: true, MediaTypeDockerManifest: true, MediaTypeDockerList: true,
}

func FuzzParseManifest(f *testing.F) {
	for _, b := range manifestSeeds([]byte("{}")) {
		for _, ct := range []string{"", MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList,
			"application/json", "application/octet-stream", MediaTypeOCIManifest + "; charset=utf-8", "text/plain", ";;;"} {
			f.Add(ct, b)
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, doc, err := parseManifest(ct, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code.Status != http.StatusBadRequest || !tableCodes[e.Code.Name] {
				t.Fatalf("rejection %v is not a 400 from the error table", err)
			}
			if m != nil || doc != nil {
				t.Fatal("rejection returns a manifest")
			}
			return
		}
		if !knownMediaTypes[m.MediaType] {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if !bytes.Equal(m.Content, body) || m.Size != int64(len(body)) {
			t.Fatal("content or size differ from the body")
		}
		if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
			t.Fatal("accepted a schemaVersion other than 2")
		}
		if pt := plainType(ct); pt != "" && pt != m.MediaType {
			t.Fatalf("Content-Type %q accepted for media type %q", ct, m.MediaType)
		}
		if doc.MediaType != "" && doc.MediaType != m.MediaType {
			t.Fatalf("mediaType field %q but media type %q", doc.MediaType, m.MediaType)
		}
		valid := func(what string, d digest.Digest) {
			if err := storage.ValidateDigest(d); err != nil {
				t.Fatalf("%s digest %q accepted: %v", what, d, err)
			}
		}
		for _, d := range m.Blobs {
			valid("blob", d)
		}
		for _, d := range m.Manifests {
			valid("manifest", d)
		}
		if m.Subject != "" {
			valid("subject", m.Subject)
		}
		if isImage(m.MediaType) {
			if doc.Config == nil || len(m.Blobs) != 1+len(doc.Layers) || len(m.Manifests) != 0 {
				t.Fatalf("image accepted with config %v, %d blobs for %d layers, %d manifests", doc.Config, len(m.Blobs), len(doc.Layers), len(m.Manifests))
			}
		} else if len(m.Blobs) != 0 || len(m.Manifests) != len(doc.Manifests) {
			t.Fatalf("index accepted with %d blobs, %d of %d manifests", len(m.Blobs), len(m.Manifests), len(doc.Manifests))
		}
		if (doc.Subject != nil) != (m.Subject != "") {
			t.Fatal("subject lost")
		}
	})
}

func FuzzPutManifest(f *testing.F) {
	e := newEnv(f, Options{MaxManifestSize: 64 << 10})
	cfg := []byte("{}")
	e.pushBlob("fuzz", cfg)
	for _, b := range manifestSeeds(cfg) {
		for _, ct := range []string{"", MediaTypeOCIManifest, MediaTypeDockerList, "text/plain"} {
			f.Add(ct, b, false)
			f.Add(ct, b, true)
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, byDigest bool) {
		ref := "t"
		if byDigest {
			ref = digest.FromBytes(body).String()
		}
		r := httptest.NewRequest("PUT", "/v2/fuzz/manifests/"+ref, bytes.NewReader(body))
		r.Header["Content-Type"] = []string{ct}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		switch {
		case res.Status >= 500:
			t.Fatalf("PUT %q (Content-Type %q): status %d: %s", short(body), ct, res.Status, short(res.Body))
		case res.Status == http.StatusCreated:
			d := digest.FromBytes(body)
			if got := res.Header.Get("Docker-Content-Digest"); got != d.String() {
				t.Fatalf("Docker-Content-Digest %q, want %s", got, d)
			}
			g := e.with(t).get("/v2/fuzz/manifests/" + d.String())
			if g.Status != http.StatusOK || !bytes.Equal(g.Body, body) {
				t.Fatalf("accepted manifest reads back as %d %q", g.Status, short(g.Body))
			}
			if !knownMediaTypes[g.Header.Get("Content-Type")] {
				t.Fatalf("stored with Content-Type %q", g.Header.Get("Content-Type"))
			}
		default:
			if res.Status < 400 {
				t.Fatalf("status %d", res.Status)
			}
			errorCode(t, res)
		}
	})
}

// jsonTree decodes body into maps, slices and scalars with exact (case
// sensitive) keys, keeping the first of two equal keys when first is true
// and the last otherwise: how other parsers read a manifest.
func jsonTree(body []byte, first bool) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var value func() (any, bool)
	value = func() (any, bool) {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			m := map[string]any{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, false
				}
				v, ok := value()
				if !ok {
					return nil, false
				}
				if _, seen := m[k.(string)]; !seen || !first {
					m[k.(string)] = v
				}
			}
			_, err := dec.Token()
			return m, err == nil
		case '[':
			var list []any
			for dec.More() {
				v, ok := value()
				if !ok {
					return nil, false
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err == nil
		}
		return tok, true
	}
	return value()
}

// digestsOf reads the digests a case-sensitive parser sees at key of tree.
func digestsOf(tree map[string]any, key string) []string {
	var out []string
	add := func(v any) {
		if m, ok := v.(map[string]any); ok {
			s, _ := m["digest"].(string)
			out = append(out, s)
		}
	}
	switch v := tree[key].(type) {
	case []any:
		for _, e := range v {
			add(e)
		}
	case map[string]any:
		add(v)
	}
	return out
}

// FuzzManifestAmbiguity checks that every manifest berth accepts reads the same to any parser:
// whether a parser keeps the first or the last of two equal keys, and whether it matches field
// names exactly or regardless of case (as encoding/json does), it finds the same media type,
// config, layers, child manifests and subject as berth.
func FuzzManifestAmbiguity(f *testing.F) {
	d := digest.FromString("seed").String()
	desc := func(dg string) string {
		return `{"mediaType":"` + MediaTypeOCIManifest + `","digest":"` + dg + `","size":3}`
	}
	other := digest.FromString("other").String()
	for _, b := range manifestSeeds([]byte("{}")) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[` + desc(d) + `],"layers":[` + desc(other) + `]}`,
		`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"config":` + desc(other) + `}`,
		`{"schemaVersion":2,"config":` + desc(d) + `,"manifests":[` + desc(other) + `]}`,
		`{"schemaVersion":2,"config":` + desc(d) + `,"layers":[],"layers":[` + desc(other) + `]}`,
		`{"schemaVersion":2,"config":` + desc(d) + `,"Layers":[` + desc(other) + `]}`,
		`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","MediaType":"` + MediaTypeOCIIndex + `","config":` + desc(d) + `}`,
		`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d + `","Digest":"` + other + `","size":3}}`,
		`{"schemaVersion":2,"config":` + desc(d) + `,"annotations":{"a":"1","a":"2"}}`,
		`{"schemaVersion":2,"config":` + desc(d) + `,"annotations":{"Digest":"x","digest":"y"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, doc, err := parseManifest("", body)
		if err != nil {
			return
		}
		for _, first := range []bool{true, false} {
			v, ok := jsonTree(body, first)
			tree, isObj := v.(map[string]any)
			if !ok || !isObj {
				t.Fatalf("accepted a manifest a plain parser cannot read as an object: %q", short(body))
			}
			if mt, _ := tree["mediaType"].(string); mt != doc.MediaType {
				t.Fatalf("mediaType: berth %q, parser (first=%v) %q", doc.MediaType, first, mt)
			}
			var want []string
			if doc.Config != nil {
				want = append(want, doc.Config.Digest.String())
			}
			for _, l := range doc.Layers {
				want = append(want, l.Digest.String())
			}
			got := append(digestsOf(tree, "config"), digestsOf(tree, "layers")...)
			if !slices.Equal(got, want) {
				t.Fatalf("config and layers: berth %q, parser (first=%v) %q", want, first, got)
			}
			want = want[:0]
			for _, c := range doc.Manifests {
				want = append(want, c.Digest.String())
			}
			if got := digestsOf(tree, "manifests"); !slices.Equal(got, want) {
				t.Fatalf("manifests: berth %q, parser (first=%v) %q", want, first, got)
			}
			if got := digestsOf(tree, "subject"); (len(got) == 1) != (m.Subject != "") || (len(got) == 1 && got[0] != m.Subject.String()) {
				t.Fatalf("subject: berth %q, parser (first=%v) %q", m.Subject, first, got)
			}
		}
		// An index never carries blobs, an image never children: whatever
		// the media type, garbage collection keeps what clients read.
		if isIndex(m.MediaType) && (doc.Config != nil || doc.Layers != nil) {
			t.Fatal("an index with a config or layers was accepted")
		}
		if isImage(m.MediaType) && doc.Manifests != nil {
			t.Fatal("an image with manifests was accepted")
		}
	})
}

// FuzzReferrersPage fetches pages of a referrers list with fuzzed last and artifactType
// parameters: the answer is never a server error; a page is a valid index whose descriptors
// follow last, match the filter and stay within the page bounds; and a Link names the page
// after the last descriptor with the same filter.
func FuzzReferrersPage(f *testing.F) {
	e := newEnv(f, Options{})
	cfg := []byte("{}")
	cfgD := e.pushBlob("refs", cfg)
	subject := e.pushImage("refs", "v1", MediaTypeOCIManifest, "subject")
	sub := manifestDesc(MediaTypeOCIManifest, subject.Body)
	types := []string{"application/vnd.example.sig", "application/spdx+json"}
	var digests []digest.Digest
	for i := range 12 {
		size := 10
		if i%3 == 0 {
			size = referrersPageBytes / 3
		}
		m := mustJSON(f, imageManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: types[i%2],
			Config: desc{MediaType: mtOCIConfig, Digest: cfgD, Size: int64(len(cfg))}, Layers: []desc{}, Subject: &sub,
			Annotations: map[string]string{"i": strconv.Itoa(i), "pad": strings.Repeat("p", size)}})
		digests = append(digests, e.pushManifest("refs", digest.FromBytes(m).String(), MediaTypeOCIManifest, m))
	}
	slices.Sort(digests)
	for _, last := range []string{"", digests[0].String(), digests[5].String(), "sha256:", "sha256:zz", "x", "sha512:" + strings.Repeat("f", 128)} {
		for _, at := range append([]string{"", "nope", "a b"}, types...) {
			f.Add(last, at)
		}
	}
	path := "/v2/refs/referrers/" + subject.Digest.String()
	f.Fuzz(func(t *testing.T, last, at string) {
		q := url.Values{}
		if last != "" {
			q.Set("last", last)
		}
		if at != "" {
			q.Set("artifactType", at)
		}
		res := e.with(t).get(path + "?" + q.Encode())
		if res.Status >= 500 {
			t.Fatalf("last=%q artifactType=%q: status %d: %s", last, at, res.Status, short(res.Body))
		}
		if res.Status != http.StatusOK {
			errorCode(t, res)
			return
		}
		var ix struct {
			MediaType string
			Manifests []struct {
				Digest       digest.Digest
				ArtifactType string
				Annotations  map[string]string
			}
		}
		if err := json.Unmarshal(res.Body, &ix); err != nil || ix.MediaType != MediaTypeOCIIndex || ix.Manifests == nil {
			t.Fatalf("not an index (%v): %s", err, short(res.Body))
		}
		if len(ix.Manifests) > 1 && len(res.Body) > referrersPageBytes+4096 {
			t.Fatalf("a page of %d descriptors has %d bytes", len(ix.Manifests), len(res.Body))
		}
		for i, d := range ix.Manifests {
			if last != "" && d.Digest.String() <= last {
				t.Fatalf("descriptor %s does not follow last=%q", d.Digest, last)
			}
			if i > 0 && d.Digest <= ix.Manifests[i-1].Digest {
				t.Fatal("descriptors out of order")
			}
			if at != "" && d.ArtifactType != at {
				t.Fatalf("descriptor of type %q under the filter %q", d.ArtifactType, at)
			}
		}
		link := res.Header.Get("Link")
		if link == "" {
			return
		}
		if len(ix.Manifests) == 0 {
			t.Fatal("an empty page links a next one")
		}
		target, _, _ := strings.Cut(strings.TrimPrefix(link, "<"), ">")
		u, err := url.Parse(target)
		if err != nil || u.Path != path || u.Query().Get("last") != ix.Manifests[len(ix.Manifests)-1].Digest.String() || u.Query().Get("artifactType") != at {
			t.Fatalf("Link %q after a page ending at %s (artifactType %q)", link, ix.Manifests[len(ix.Manifests)-1].Digest, at)
		}
	})
}
