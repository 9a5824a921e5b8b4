package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// securityConfig writes a config for an authenticated berth (Basic, the example users) whose
// extra YAML (rules, registries, ...) follows the auth section, and returns its path.
func securityConfig(t testing.TB, authExtra, extra string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(suite.root, "examples", "htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "htpasswd", data)
	cfg := "auth:\n  mode: basic\n  htpasswd: htpasswd\n  groups:\n    admins: [admin]\n" + authExtra + extra
	return writeFile(t, dir, "berth.yaml", []byte(cfg))
}

// TestSecurityMirrorNamespaceAccess checks that a mirror request (containerd's ?ns=HOST) is
// authorised on the name it is served under, the cache's: rules that keep anonymous callers
// out of a cache prefix keep them out of it through ?ns= too, on every route.
func TestSecurityMirrorNamespaceAccess(t *testing.T) {
	t.Parallel()
	// The private upstream: only the example's admin may pull.
	up := startAuthBerth(t, exampleConfig(t, "auth-basic.yaml"), nil)
	upAdmin := authClient(t, up.URL(), adminUser, adminPass)
	img := newImage(t, "linux", "amd64", 1)
	upAdmin.pushImage("corp/secretimg", "v1", img)
	if st := (&regClient{t: t, base: mustParseURL(t, up.URL()), hc: up.httpClient()}).manifestStatus("corp/secretimg", "v1"); st != http.StatusUnauthorized {
		t.Fatalf("control: anonymous pull from the upstream answered %d, want 401", st)
	}

	cfg := securityConfig(t, `  rules:
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
      catalog: true
    - repositories: ["hub/**"]
      users: [anonymous]
      actions: ["*"]
      deny: true
    - repositories: ["**"]
      users: [anonymous]
      actions: [pull]
`, fmt.Sprintf(`registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream:
      url: %s
      username: %s
      password: %s
    mirrorOf: [private.example.com]
`, up.URL(), adminUser, adminPass))
	front := startAuthBerth(t, cfg, nil)
	anon := &regClient{t: t, base: mustParseURL(t, front.URL()), hc: front.httpClient()}
	admin := authClient(t, front.URL(), adminUser, adminPass)

	routes := []string{
		"/v2/corp/secretimg/manifests/v1",
		"/v2/corp/secretimg/manifests/" + img.Manifest.Digest(),
		"/v2/corp/secretimg/blobs/" + img.Config.Digest(),
		"/v2/corp/secretimg/blobs/" + img.Layers[0].Digest(),
		"/v2/corp/secretimg/tags/list",
		"/v2/corp/secretimg/referrers/" + img.Manifest.Digest(),
	}
	for _, method := range []string{"GET", "HEAD"} {
		for _, p := range routes {
			r := anon.request(method, p+"?ns=private.example.com", nil, "Accept", manifestAccept)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s?ns=private.example.com: %d, want 401\n%s", method, p, r.Status, r)
			}
			if method == "GET" && r.Status == http.StatusUnauthorized && errorCode(r) != "UNAUTHORIZED" {
				t.Errorf("anonymous %s %s?ns=: code %q, want UNAUTHORIZED", method, p, errorCode(r))
			}
		}
	}
	// The same names under the cache's own prefix are refused as well.
	if st := anon.manifestStatus("hub/corp/secretimg", "v1"); st != http.StatusUnauthorized {
		t.Errorf("anonymous GET hub/corp/secretimg:v1: %d, want 401", st)
	}
	// Control: a caller the rules let into hub/** gets the content through ?ns= (so the
	// refusals above are about access, not a broken mirror).
	r := admin.request("GET", "/v2/corp/secretimg/manifests/v1?ns=private.example.com", nil, "Accept", manifestAccept)
	if r.Status != http.StatusOK || string(r.Body) != string(img.Manifest.Data) {
		t.Fatalf("admin GET through ?ns=: %s", r)
	}
	r = admin.request("GET", "/v2/corp/secretimg/blobs/"+img.Layers[0].Digest()+"?ns=private.example.com", nil)
	if r.Status != http.StatusOK || string(r.Body) != string(img.Layers[0].Data) {
		t.Fatalf("admin GET blob through ?ns=: %d", r.Status)
	}
	// Now cached: anonymous callers still get nothing through either name.
	for _, p := range routes[:5] {
		if r := anon.request("GET", p+"?ns=private.example.com", nil, "Accept", manifestAccept); r.Status != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s?ns= after caching: %d, want 401", p, r.Status)
		}
	}
	// Anonymous pulls outside hub/ are allowed by the rules: a hosted name answers 404, not 401.
	if st := anon.manifestStatus("corp/secretimg", "v1"); st != http.StatusNotFound {
		t.Errorf("anonymous GET of the hosted corp/secretimg:v1: %d, want 404", st)
	}
}

// peakRSS resets the peak resident set size of pid when reset is true, and returns it (VmHWM)
// in bytes.
func peakRSS(t testing.TB, pid int, reset bool) int64 {
	t.Helper()
	if reset {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			t.Fatalf("reset the peak RSS: %v", err)
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestSecurityReferrersBounded pushes 50 referrers whose annotations make each about 4 MB and
// reads the referrers list: it comes in pages bounded in size, linked with Link headers, that
// together list every referrer once, and the server's memory does not grow with the list.
func TestSecurityReferrersBounded(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	c := newClient(t, srv)
	subject := newImage(t, "linux", "amd64", 1)
	c.pushImage("big/refs", "v1", subject)
	empty := blob{MediaType: "application/vnd.oci.empty.v1+json", Data: []byte("{}")}
	c.pushBlob("big/refs", empty.Data)
	subj := subject.Manifest.Descriptor()
	cfg := empty.Descriptor()
	const count = 50
	want := map[string]bool{}
	for i := range count {
		m := mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIManifest, ArtifactType: "application/vnd.example.sbom",
			Config: &cfg, Layers: []descriptor{cfg}, Subject: &subj,
			Annotations: map[string]string{"i": strconv.Itoa(i), "filler": strings.Repeat("x", 4_000_000)}})
		want[c.pushManifest("big/refs", sha256Digest(m), mtOCIManifest, m)] = true
	}
	t.Logf("pushed at %v", time.Now())
	pid := srv.cmd.Process.Pid
	before := peakRSS(t, pid, true)

	got := map[string]bool{}
	next := "/v2/big/refs/referrers/" + subject.Manifest.Digest() + "?artifactType=application/vnd.example.sbom"
	pages := 0
	for next != "" {
		pages++
		if pages > count+1 {
			t.Fatal("the pages do not end")
		}
		r := c.expect(c.request("GET", next, nil), http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != mtOCIIndex {
			t.Fatalf("page %d: Content-Type %q", pages, ct)
		}
		if r.Header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("page %d: OCI-Filters-Applied %q", pages, r.Header.Get("OCI-Filters-Applied"))
		}
		var ix manifestDoc
		if err := json.Unmarshal(r.Body, &ix); err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(ix.Manifests) == 0 || (len(ix.Manifests) > 1 && len(r.Body) > 5<<20) {
			t.Fatalf("page %d: %d descriptors in %d bytes", pages, len(ix.Manifests), len(r.Body))
		}
		for _, d := range ix.Manifests {
			if got[d.Digest] {
				t.Fatalf("page %d lists %s again", pages, d.Digest)
			}
			got[d.Digest] = true
		}
		next = ""
		if link := r.Header.Get("Link"); link != "" {
			target, rel, _ := strings.Cut(link, ";")
			if strings.TrimSpace(rel) != `rel="next"` {
				t.Fatalf("Link %q", link)
			}
			next = strings.Trim(strings.TrimSpace(target), "<>")
			if !strings.Contains(next, "artifactType=") {
				t.Errorf("the next page %q drops the artifactType filter", next)
			}
		}
	}
	t.Logf("read at %v", time.Now())
	if len(got) != count {
		t.Fatalf("the pages list %d referrers, want %d", len(got), count)
	}
	for d := range want {
		if !got[d] {
			t.Errorf("referrer %s is missing", d)
		}
	}
	if pages < 10 {
		t.Errorf("%d pages for %d referrers of 4 MB: pages are not bounded by size", pages, count)
	}
	// The whole list is 200 MB; a page is a few. Reading it must not cost the server more
	// than a few pages' worth.
	if peak := peakRSS(t, pid, false); peak-before > 64<<20 {
		t.Errorf("peak RSS grew by %d MiB while the referrers were read (from %d MiB)", (peak-before)>>20, before>>20)
	}
}

// TestSecurityMountScope checks that a cross-repository mount needs pull on the source in the
// token itself. A token scoped to the target alone never mounts: when the account may read the
// source the client is challenged for that scope (as distribution does, so clients that follow
// challenges mount), and when it may not, the answer is a new upload session (202), whether
// the mount names its source or not.
func TestSecurityMountScope(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	htpasswd, err := os.ReadFile(filepath.Join(suite.root, "examples", "htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "htpasswd", htpasswd)
	cfg := writeFile(t, dir, "berth.yaml", []byte(`auth:
  mode: token
  htpasswd: htpasswd
  token: {realm: /token, service: berth}
  rules:
    - repositories: ["secret/**"]
      users: [reader]
      actions: ["*"]
    - repositories: ["alice/**", "public/**"]
      users: [admin]
      actions: ["*"]
    - repositories: ["public/*"]
      users: [anonymous]
      actions: [pull]
`))
	srv := startAuthBerth(t, cfg, nil)
	raw := &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: srv.httpClient()}
	admin := authClient(t, srv.URL(), adminUser, adminPass)
	layer := randomBytes(t, 2048)
	pd := admin.pushBlob("public/p", layer)
	sd := authClient(t, srv.URL(), readerUser, readerPass).pushBlob("secret/s", randomBytes(t, 2048))

	mount := func(tok, target, query string) response {
		t.Helper()
		return raw.request("POST", "/v2/"+target+"/blobs/uploads/?"+query, nil, "Authorization", "Bearer "+tok)
	}
	narrow := fetchToken(t, srv, adminUser, adminPass, nil, "repository:alice/a:push,pull").Token

	// The account may read public/p, the token does not say so: a challenge for that scope.
	r := mount(narrow, "alice/a", "mount="+pd+"&from=public/p")
	ch := parseChallenge(r.Header.Get("WWW-Authenticate"))
	if r.Status != http.StatusUnauthorized || ch.params["error"] != "insufficient_scope" || !strings.Contains(ch.params["scope"], "repository:public/p:pull") {
		t.Fatalf("mount with a token lacking pull on the source: want 401 insufficient_scope naming repository:public/p:pull, got:\n%s", r)
	}
	if st := raw.request("HEAD", "/v2/alice/a/blobs/"+pd, nil, "Authorization", "Bearer "+narrow).Status; st != http.StatusNotFound {
		t.Errorf("after the challenged mount alice/a holds the blob: HEAD %d", st)
	}
	// A token for the challenged scope mounts.
	wide := fetchToken(t, srv, adminUser, adminPass, nil, strings.Fields(ch.params["scope"])...).Token
	if r := mount(wide, "alice/a", "mount="+pd+"&from=public/p"); r.Status != http.StatusCreated || r.Header.Get("Docker-Content-Digest") != pd {
		t.Errorf("mount with pull on the source: want 201, got:\n%s", r)
	}
	if got := admin.blob("alice/a", pd); string(got) != string(layer) {
		t.Error("the mounted blob differs from the one pushed")
	}

	// The account may not read secret/s: a new session, with or without from, and nothing mounted.
	narrowB := fetchToken(t, srv, adminUser, adminPass, nil, "repository:alice/b:push,pull").Token
	for _, q := range []string{"mount=" + sd + "&from=secret/s", "mount=" + sd} {
		r := mount(narrowB, "alice/b", q)
		if r.Status != http.StatusAccepted || r.Header.Get("Location") == "" || r.Header.Get("Docker-Upload-UUID") == "" {
			t.Errorf("mount ?%s of a source the account may not read: want 202 with a session, got:\n%s", q, r)
		}
	}
	if st := raw.request("HEAD", "/v2/alice/b/blobs/"+sd, nil, "Authorization", "Bearer "+narrowB).Status; st != http.StatusNotFound {
		t.Errorf("after the refused mounts alice/b holds the secret blob: HEAD %d", st)
	}
	// Without from, only repositories the token may read count.
	narrowC := fetchToken(t, srv, adminUser, adminPass, nil, "repository:alice/c:push,pull").Token
	if r := mount(narrowC, "alice/c", "mount="+pd); r.Status != http.StatusAccepted {
		t.Errorf("mount without from, with a token reading no holder: want 202, got:\n%s", r)
	}
	wide2 := fetchToken(t, srv, adminUser, adminPass, nil, "repository:alice/c:push,pull", "repository:public/p:pull").Token
	if r := mount(wide2, "alice/c", "mount="+pd); r.Status != http.StatusCreated {
		t.Errorf("mount without from, with pull on a holder in the token: want 201, got:\n%s", r)
	}
}

// TestSecurityAmbiguousManifests pushes manifests that parsers could read differently (the
// CVE-2021-41190 class): an index that also carries config and layers, a body without
// mediaType holding both config and manifests, and JSON with a key twice or a field in another
// case. Each is refused with MANIFEST_INVALID and nothing is stored; the unambiguous forms of
// the same content are accepted.
func TestSecurityAmbiguousManifests(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	c := newClient(t, srv)
	img := newImage(t, "linux", "amd64", 1)
	c.pushImage("amb/app", "base", img)
	cfg, layer, child := img.Config.Descriptor(), img.Layers[0].Descriptor(), img.Manifest.Descriptor()
	d := func(v descriptor) string { return string(mustJSON(t, v)) }
	cases := []struct{ name, ct, body string }{
		{"index with config and layers", mtOCIIndex, `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[` + d(child) + `],"config":` + d(cfg) + `,"layers":[` + d(layer) + `]}`},
		{"index with layers", mtOCIIndex, `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[` + d(child) + `],"layers":[` + d(layer) + `]}`},
		{"manifest list with layers", mtDockerList, `{"schemaVersion":2,"mediaType":"` + mtDockerList + `","manifests":[` + d(child) + `],"layers":[` + d(layer) + `]}`},
		{"no mediaType, config and manifests", "", `{"schemaVersion":2,"config":` + d(cfg) + `,"layers":[` + d(layer) + `],"manifests":[` + d(child) + `]}`},
		{"duplicate layers key", mtOCIManifest, `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":` + d(cfg) + `,"layers":[],"layers":[` + d(layer) + `]}`},
		{"duplicate mediaType key", "", `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","mediaType":"` + mtOCIManifest + `","config":` + d(cfg) + `,"layers":[` + d(layer) + `]}`},
		{"duplicate digest in a descriptor", mtOCIManifest, `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"` + mtOCIConfig + `","digest":"` + cfg.Digest + `","digest":"` + layer.Digest + `","size":` + strconv.FormatInt(cfg.Size, 10) + `}}`},
		{"field in another case", mtOCIManifest, `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":` + d(cfg) + `,"Layers":[` + d(layer) + `]}`},
	}
	for _, tc := range cases {
		body := []byte(tc.body)
		dg := sha256Digest(body)
		hdr := []string{}
		if tc.ct != "" {
			hdr = append(hdr, "Content-Type", tc.ct)
		}
		r := c.request("PUT", "/v2/amb/app/manifests/"+dg, body, hdr...)
		if r.Status != http.StatusBadRequest || errorCode(r) != "MANIFEST_INVALID" {
			t.Errorf("%s: want 400 MANIFEST_INVALID, got:\n%s", tc.name, r)
		}
		if st := c.manifestStatus("amb/app", dg); st != http.StatusNotFound {
			t.Errorf("%s: the refused manifest answers %d, want 404", tc.name, st)
		}
	}
	// Controls: the same references, unambiguous, are accepted.
	ok := []struct{ ct, body string }{
		{mtOCIIndex, `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[` + d(child) + `]}`},
		{mtOCIManifest, `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":` + d(cfg) + `,"layers":[` + d(layer) + `],"annotations":{"Layers":"x","layers":"y"}}`},
	}
	for _, tc := range ok {
		c.pushManifest("amb/app", sha256Digest([]byte(tc.body)), tc.ct, []byte(tc.body))
	}
	// The index now lists the image: deleting the image would leave the index unpullable.
	r := c.request("DELETE", "/v2/amb/app/manifests/"+img.Manifest.Digest(), nil)
	if r.Status != http.StatusConflict || errorCode(r) != "MANIFEST_REFERENCED" || !strings.Contains(string(r.Body), sha256Digest([]byte(ok[0].body))) {
		t.Errorf("DELETE of a manifest an index lists: want 409 MANIFEST_REFERENCED naming the index, got:\n%s", r)
	}
	c.manifest("amb/app", img.Manifest.Digest())
}

// TestSecurityConnectorHealthRedacted checks that the connectors' health report, which callers
// with catalog access may read, does not name the repositories whose upstream requests failed.
func TestSecurityConnectorHealthRedacted(t *testing.T) {
	t.Parallel()
	up := startAuthBerth(t, exampleConfig(t, "auth-basic.yaml"), nil) // refuses anonymous pulls
	cfg := securityConfig(t, `  rules:
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
      catalog: true
    - repositories: ["public/*"]
      users: [anonymous]
      actions: [pull]
      catalog: true
`, fmt.Sprintf(`registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream:
      url: %s
`, up.URL()))
	front := startAuthBerth(t, cfg, nil)
	admin := authClient(t, front.URL(), adminUser, adminPass)
	anon := &regClient{t: t, base: mustParseURL(t, front.URL()), hc: front.httpClient()}

	const secret = "corp/topsecret-project-name"
	r := admin.request("GET", "/v2/hub/"+secret+"/manifests/v1", nil, "Accept", manifestAccept)
	if r.Status != http.StatusBadGateway {
		t.Fatalf("pull through a cache whose upstream refuses it: want 502, got:\n%s", r)
	}
	for _, c := range []*regClient{anon, admin} {
		r := c.expect(c.request("GET", "/_berth/connectors", nil), http.StatusOK)
		var body struct {
			Connectors []struct{ Name, State, LastError string }
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Connectors) != 1 {
			t.Fatalf("health: %v\n%s", err, r)
		}
		if strings.Contains(string(r.Body), "topsecret") {
			t.Errorf("the health report names the repository:\n%s", r.Body)
		}
		if le := body.Connectors[0].LastError; !strings.Contains(le, "401") {
			t.Errorf("lastError %q does not say what went wrong (HTTP 401)", le)
		}
	}
	// The operator still finds the whole story in the log.
	if !strings.Contains(front.log.String(), "topsecret-project-name") {
		t.Error("the log does not name the failed request")
	}
}

// rawRequest writes a request head and part of its body on a new connection to addr and
// returns the connection, so a test can stall a body.
func rawRequest(t testing.TB, addr, method, path string, declared int, sent []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", method, path, addr, declared)
	if _, err := conn.Write(sent); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readStatus reads the status of the response on conn, waiting at most limit (a bound against
// a hang, not a synchronisation).
func readStatus(t testing.TB, conn net.Conn, limit time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response on the stalled request within %v: %v", limit, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecurityStalledBody checks that a request body that stalls cannot hold its upload
// session: the status of the session answers at once while the body stalls, the stalled
// request ends after server.bodyIdleTimeout with 408 keeping what it received (the upload
// resumes from there), a slow but moving body is not cut, and cancelling the session stops a
// request still writing into it.
func TestSecurityStalledBody(t *testing.T) {
	t.Parallel()
	srv := startBerth(t, "--config", writeFile(t, t.TempDir(), "berth.yaml", []byte("server:\n  bodyIdleTimeout: 2s\n")))
	c := newClient(t, srv)
	c.hc.Timeout = 10 * time.Second // a status or cancel that waits on the stalled writer fails the test

	loc := c.startUpload("stall/app")
	conn := rawRequest(t, srv.Addr, "PATCH", loc, 100, []byte("X"))
	r := c.request("GET", loc, nil)
	if r.Status != http.StatusNoContent || r.Header.Get("Range") != "0-0" {
		t.Fatalf("status while a PATCH stalls: want 204 with Range 0-0, got:\n%s", r)
	}
	if st := readStatus(t, conn, 30*time.Second); st != http.StatusRequestTimeout {
		t.Fatalf("stalled PATCH: status %d, want 408", st)
	}
	// The byte that arrived is kept: the upload resumes after it.
	rest := bytes.Repeat([]byte("y"), 99)
	r = c.expect(c.request("PATCH", loc, rest, "Content-Type", "application/octet-stream", "Content-Range", "1-99"), http.StatusAccepted)
	if r.Header.Get("Range") != "0-99" {
		t.Fatalf("resumed PATCH: Range %q, want 0-99", r.Header.Get("Range"))
	}
	whole := append([]byte("X"), rest...)
	c.expect(c.request("PUT", c.withQuery(r.Header.Get("Location"), "digest", sha256Digest(whole)), nil), http.StatusCreated)
	if got := c.blob("stall/app", sha256Digest(whole)); !bytes.Equal(got, whole) {
		t.Fatal("the resumed blob differs")
	}

	// A slow body with pauses shorter than the timeout, lasting longer than it, goes through.
	slow := bytes.Repeat([]byte("s"), 8)
	pr, pw := io.Pipe()
	go func() {
		for _, b := range slow {
			time.Sleep(500 * time.Millisecond) // the body's pace, not a synchronisation
			if _, err := pw.Write([]byte{b}); err != nil {
				return
			}
		}
		pw.Close()
	}()
	loc = c.startUpload("stall/app")
	r = c.do("PATCH", loc, http.Header{"Content-Type": {"application/octet-stream"}}, pr, int64(len(slow)))
	if r.Status != http.StatusAccepted || r.Header.Get("Range") != "0-7" {
		t.Fatalf("slow but moving PATCH: want 202 with Range 0-7, got:\n%s", r)
	}

	// Cancelling a session stops the request writing into it, however long its timeout.
	srv2 := startBerth(t, "--config", writeFile(t, t.TempDir(), "berth.yaml", []byte("server:\n  bodyIdleTimeout: 1h\n")))
	c2 := newClient(t, srv2)
	c2.hc.Timeout = 10 * time.Second
	loc = c2.startUpload("stall/app")
	conn = rawRequest(t, srv2.Addr, "PATCH", loc, 100, []byte("X"))
	if r := c2.request("GET", loc, nil); r.Status != http.StatusNoContent {
		t.Fatalf("status while a PATCH stalls: %s", r)
	}
	c2.expect(c2.request("DELETE", loc, nil), http.StatusNoContent)
	if st := readStatus(t, conn, 30*time.Second); st != http.StatusNotFound {
		t.Errorf("the PATCH of a cancelled session: status %d, want 404", st)
	}
	c2.expect(c2.request("GET", loc, nil), http.StatusNotFound)
}

// mountTmpfs mounts a tmpfs of size bytes at a new directory for the test, or skips the test
// where mounting is not allowed (a unit test covers disk-full answers with a driver that fails
// with ENOSPC).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); registry.TestDiskFull covers this with a driver", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// freeBytes is the space left on the filesystem holding dir.
func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestSecurityDiskFull runs berth on a small tmpfs and fills it: uploads that do not fit are
// answered 507 naming the cause and release what they wrote, a full metadata database is a
// 507 too, and once space is freed everything works.
func TestSecurityDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, 24<<20)
	srv := startBerth(t, "--data", filepath.Join(dir, "data"))
	c := newClient(t, srv)
	img := newImage(t, "linux", "amd64", 1)
	c.pushImage("full/app", "v1", img)
	before := freeBytes(t, dir)

	big := randomBytes(t, 40<<20)
	check507 := func(r response, what, cause string) {
		t.Helper()
		if r.Status != http.StatusInsufficientStorage || !strings.Contains(string(r.Body), cause) {
			t.Errorf("%s on a full disk: want 507 naming the %s, got:\n%s", what, cause, r)
		}
	}
	loc := c.startUpload("full/app")
	r := c.request("PUT", c.withQuery(loc, "digest", sha256Digest(big)), big, "Content-Type", "application/octet-stream")
	check507(r, "monolithic upload", "blob storage")
	if free := freeBytes(t, dir); free < before-(1<<20) {
		t.Errorf("the failed monolithic upload keeps %d KiB", (before-free)>>10)
	}
	loc = c.startUpload("full/app")
	r = c.request("PATCH", loc, big, "Content-Type", "application/octet-stream")
	check507(r, "chunked upload", "blob storage")
	if st := c.request("GET", loc, nil).Status; st != http.StatusNotFound {
		t.Errorf("the session of the failed chunk answers %d, want 404 (discarded)", st)
	}
	if free := freeBytes(t, dir); free < before-(1<<20) {
		t.Errorf("the failed chunked upload keeps %d KiB", (before-free)>>10)
	}

	// Fill what is left, then push a manifest large enough that the database must grow.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	cfg := img.Config.Descriptor()
	m := mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIManifest, Config: &cfg,
		Annotations: map[string]string{"filler": strings.Repeat("m", 3<<20)}})
	r = c.request("PUT", "/v2/full/app/manifests/big", m, "Content-Type", mtOCIManifest)
	if r.Status != http.StatusInsufficientStorage {
		t.Errorf("manifest push with the disk full: want 507, got:\n%s", r)
	}

	// Space freed: everything works again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.pushManifest("full/app", "big", mtOCIManifest, m)
	img2 := newImage(t, "linux", "arm64", 2)
	c.pushImage("full/app", "v2", img2)
	c.checkImage("full/app", img)
	c.checkImage("full/app", img2)
}
