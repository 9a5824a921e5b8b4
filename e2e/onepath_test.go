package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOnePathSameAnswers sends the same requests for the same content to a hosted name, a
// cache name (cold, then warm) and a virtual name, through the real binary with Basic auth,
// and checks that the answers carry the same headers and that each request leaves exactly one
// access-log line naming the user.
func TestOnePathSameAnswers(t *testing.T) {
	t.Parallel()
	up := startBerth(t)
	upc := newClient(t, up)
	img := newImage(t, "linux", "amd64", 1)
	upc.pushImage("app", "v1", img)

	cfg := securityConfig(t, `  rules:
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
      catalog: true
`, fmt.Sprintf(`registries:
  - name: local
    type: hosted
    prefix: local/
  - name: hub
    type: cache
    prefix: hub/
    upstream:
      url: %s
  - name: all
    type: virtual
    prefix: all/
    members: [local, hub]
    pushTo: local
`, up.URL()))
	srv := startAuthBerth(t, cfg, nil)
	admin := authClient(t, srv.URL(), adminUser, adminPass)
	admin.pushImage("local/app", "v1", img)
	// all/other exists only in the cache: the virtual name reads through it.
	upc.pushImage("other", "v1", img)

	layer := img.Layers[0].Digest()
	type answer struct {
		status int
		header http.Header
		body   string
	}
	var ids []string // of every request, each to leave one access-log line
	ask := func(method, path string, hdr ...string) answer {
		t.Helper()
		r := admin.request(method, path, nil, hdr...)
		id := r.Header.Get("X-Request-Id")
		if id == "" {
			t.Fatalf("%s %s: no X-Request-Id", method, path)
		}
		ids = append(ids, method+" "+path+" "+id)
		return answer{r.Status, r.Header, string(r.Body)}
	}
	compared := []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Etag", "Accept-Ranges", "Cache-Control", "Docker-Distribution-Api-Version"}
	same := func(what string, answers map[string]answer) {
		t.Helper()
		var first string
		names := make([]string, 0, len(answers))
		for n := range answers {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			a := answers[n]
			if a.status != http.StatusOK {
				t.Errorf("%s of %s: status %d", what, n, a.status)
			}
			if first == "" {
				first = n
				continue
			}
			b := answers[first]
			if a.body != b.body {
				t.Errorf("%s: the bodies of %s and %s differ", what, n, first)
			}
			for _, h := range compared {
				if a.header.Get(h) != b.header.Get(h) {
					t.Errorf("%s: %s is %q for %s and %q for %s", what, h, a.header.Get(h), n, b.header.Get(h), first)
				}
			}
		}
	}
	for _, round := range []string{"cold", "warm"} {
		for _, req := range []struct{ method, kind, ref string }{
			{"GET", "blobs", layer},
			{"HEAD", "blobs", layer},
			{"GET", "manifests", "v1"},
			{"HEAD", "manifests", img.Manifest.Digest()},
		} {
			answers := map[string]answer{}
			for _, name := range []string{"local/app", "hub/app", "all/app", "all/other"} {
				answers[name] = ask(req.method, "/v2/"+name+"/"+req.kind+"/"+req.ref, "Accept", manifestAccept)
			}
			same(fmt.Sprintf("%s %s %s (%s)", req.method, req.kind, req.ref, round), answers)
			for n, a := range answers {
				if req.kind == "blobs" && (a.header.Get("Accept-Ranges") != "bytes" || a.header.Get("Cache-Control") == "") {
					t.Errorf("%s blob of %s: Accept-Ranges %q, Cache-Control %q", req.method, n, a.header.Get("Accept-Ranges"), a.header.Get("Cache-Control"))
				}
			}
		}
	}
	// Listings: one line each too, and the catalog names all three registries' repositories.
	cat := ask("GET", "/v2/_catalog")
	for _, n := range []string{"local/app", "hub/app", "all/app"} {
		if !strings.Contains(cat.body, `"`+n+`"`) {
			t.Errorf("catalog lacks %s: %s", n, cat.body)
		}
	}
	ask("GET", "/v2/all/app/tags/list")
	if r := admin.request("GET", "/v2/all/nothing/manifests/v1", nil, "Accept", manifestAccept); r.Status != http.StatusNotFound {
		t.Errorf("a manifest no member has: %d", r.Status)
	} else {
		ids = append(ids, "GET /v2/all/nothing/manifests/v1 "+r.Header.Get("X-Request-Id"))
	}
	// The access log is written once the answer is out: wait for the last request's line,
	// then every request must have exactly one, naming the user and the path.
	lastID := ids[len(ids)-1][strings.LastIndexByte(ids[len(ids)-1], ' ')+1:]
	srv.log.waitFor(func(s string) bool { return strings.Contains(s, "id="+lastID) }, 10*time.Second)
	logs := strings.Split(srv.log.String(), "\n")
	for _, req := range ids {
		f := strings.Fields(req)
		var lines []string
		for _, l := range logs {
			if strings.Contains(l, "msg=request") && strings.Contains(l, "id="+f[2]) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "user=admin") || !strings.Contains(lines[0], "path="+f[1]) || !strings.Contains(lines[0], "method="+f[0]) {
			t.Errorf("%s %s: access-log lines %q, want one naming user=admin, the method and the path", f[0], f[1], lines)
		}
	}
}
