package ui_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/inmemory"
	"github.com/berthhq/berth/ui"
)

var quiet = slog.New(slog.DiscardHandler)

// env is berth as serve wires it: Handler → (UI beside the Gate) →
// registry, over SQLite and the inmemory driver.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	htpasswd string
}

var users = map[string]string{"admin": "admin-pw", "reader": "reader-pw"}

func newEnv(t *testing.T, open bool) *env { return newEnvWith(t, open, nil) }

// newEnvWith is newEnv with the UI's options adjusted.
func newEnvWith(t *testing.T, open bool, adjust func(*ui.Options)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, htpasswd: filepath.Join(dir, "htpasswd")}
	meta, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	blobs := storage.New(inmemory.New())
	content := gc.Guard(meta, blobs)
	conn, err := connector.New(nil, content, blobs, connector.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var gate *auth.Gate
	opts := registry.Options{Resolver: conn, Logger: quiet}
	if !open {
		writeUsers(t, e.htpasswd, users)
		hp, err := auth.NewHtpasswd(e.htpasswd, quiet)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := auth.NewRules([]auth.Rule{
			{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"*"}, Catalog: true},
			{Repositories: []string{"**"}, Users: []string{"reader"}, Actions: []string{"pull"}, Catalog: true},
			{Repositories: []string{"public/**"}, Users: []string{"anonymous"}, Actions: []string{"pull"}, Catalog: true},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		gate, err = auth.NewGate(auth.GateOptions{Mode: auth.ModeBasic, Users: hp, Rules: rules, Limiter: auth.NewLimiter(3, 1), Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		opts.Authorize, opts.MayPull, opts.MayMount = gate.Authorize, gate.MayPull, gate.MayMount
	}
	reg := registry.New(blobs, content, opts)
	var api http.Handler = reg
	if gate != nil {
		api = gate.Wrap(reg)
	}
	uo := ui.Options{Resolver: conn, Meta: meta, Blobs: reg, API: reg, Gate: gate, SessionKey: bytes.Repeat([]byte{7}, 32),
		Connectors: conn, Logger: quiet}
	if adjust != nil {
		adjust(&uo)
	}
	u, err := ui.New(uo)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(registry.Handler(ui.Mount(u, api), registry.HandlerOptions{Logger: quiet}))
	t.Cleanup(e.srv.Close)
	return e
}

func writeUsers(t *testing.T, path string, us map[string]string) {
	t.Helper()
	var b strings.Builder
	for name, pw := range us {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", name, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// browser is a client with its own cookies, like one browser.
type browser struct {
	e  *env
	hc *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(data)}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page's forms.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("GET %s: no CSRF token in the page (%d)", path, p.status)
	}
	return html.UnescapeString(m[1])
}

func (b *browser) login(user, pw string) page {
	b.e.t.Helper()
	return b.do("POST", "/ui/login", url.Values{"csrf": {b.csrf("/ui/login")}, "user": {user}, "password": {pw}, "next": {"/ui/"}})
}

// api sends a registry request with Basic credentials of admin.
func (e *env) api(method, path, contentType string, body []byte) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	req.SetBasicAuth("admin", users["admin"])
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (e *env) pushBlob(repo string, data []byte) string {
	e.t.Helper()
	d := sha(data)
	if r := e.api("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", data); r.StatusCode != 201 {
		e.t.Fatalf("push blob to %s: %d", repo, r.StatusCode)
	}
	return d
}

func (e *env) pushManifest(repo, ref, mediaType string, m any) (string, []byte) {
	e.t.Helper()
	body, _ := json.Marshal(m)
	if r := e.api("PUT", "/v2/"+repo+"/manifests/"+ref, mediaType, body); r.StatusCode != 201 {
		e.t.Fatalf("push manifest %s:%s: %d", repo, ref, r.StatusCode)
	}
	return sha(body), body
}

type desc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// pushImage pushes an image for arch whose config has labels and whose
// manifest has annotations; it returns the manifest's digest and size.
func (e *env) pushImage(repo, tag, arch string, labels, annotations map[string]string) (string, int) {
	cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "created": "2024-05-06T07:08:09Z",
		"config": map[string]any{"Labels": labels, "Env": []string{"PATH=/bin"}, "Entrypoint": []string{"/app"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}})
	layer := []byte("layer of " + repo + tag + arch)
	cd, ld := e.pushBlob(repo, cfg), e.pushBlob(repo, layer)
	d, body := e.pushManifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config":      desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: len(cfg)},
		"layers":      []desc{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: ld, Size: len(layer)}},
		"annotations": annotations,
	})
	return d, len(body)
}

func TestSecurityHeadersAndEscaping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	evilLabel := `<script>alert("label")</script>`
	evilAnno := `<img src=x onerror=alert(1)>`
	e.pushImage("public/app", "v1", "amd64", map[string]string{"title": evilLabel, `"><svg onload=alert(2)>`: "k"},
		map[string]string{"note": evilAnno})

	b := e.browser()
	p := b.get("/ui/m/public/app@v1")
	if p.status != 200 {
		t.Fatalf("manifest page: %d\n%s", p.status, p.body)
	}
	for k, v := range map[string]string{
		"Content-Security-Policy": ui.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "same-origin",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := p.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(ui.ContentSecurityPolicy, "script-src 'self';") || strings.Contains(ui.ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP allows inline script: %s", ui.ContentSecurityPolicy)
	}
	for _, raw := range []string{evilLabel, evilAnno, `<svg onload`} {
		if strings.Contains(p.body, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	for _, shown := range []string{html.EscapeString(evilLabel), html.EscapeString(evilAnno), "linux/amd64", "/app"} {
		if !strings.Contains(p.body, shown) && !strings.Contains(p.body, strings.ReplaceAll(shown, "&#34;", "&quot;")) {
			t.Errorf("the page does not show %q as text", shown)
		}
	}
	if strings.Contains(p.body, "<script>") || strings.Contains(p.body, " on") && regexp.MustCompile(`<[^>]+\son[a-z]+=`).MatchString(p.body) {
		t.Errorf("the page has an inline script or event handler")
	}
	// Static assets: their own types, nosniff, cached when versioned.
	a := b.get("/ui/static/app.js")
	if a.status != 200 || a.header.Get("Content-Type") != "text/javascript; charset=utf-8" || a.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("app.js: %d %v", a.status, a.header)
	}
	if b.get("/ui/static/../ui.go").status != 404 || b.get("/ui/static/nope.js").status != 404 {
		t.Errorf("unknown static paths are served")
	}
}

func TestAnonymousSeesOnlyWhatRulesAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.pushImage("public/app", "v1", "amd64", nil, nil)
	e.pushImage("secret/app", "hidden-tag", "amd64", nil, nil)
	b := e.browser()

	list := b.get("/ui/")
	if list.status != 200 || !strings.Contains(list.body, "public/app") || strings.Contains(list.body, "secret/app") {
		t.Errorf("anonymous listing (%d) shows public/app %v, secret/app %v; want only public/app",
			list.status, strings.Contains(list.body, "public/app"), strings.Contains(list.body, "secret/app"))
	}
	search := b.get("/ui/?q=app")
	if strings.Contains(search.body, "secret/app") || !strings.Contains(search.body, "public/app") {
		t.Errorf("anonymous search shows what it may not read")
	}
	// The same answer whether or not the repository exists.
	for _, path := range []string{"/ui/r/secret/app", "/ui/r/secret/none", "/ui/m/secret/app@hidden-tag", "/ui/m/secret/none@v1"} {
		p := b.get(path)
		if p.status != http.StatusUnauthorized || strings.Contains(p.body, "sha256:") || strings.Contains(p.body, "linux/amd64") || !strings.Contains(p.body, "Not allowed") {
			t.Errorf("anonymous GET %s: %d, want 401 and nothing of the repository", path, p.status)
		}
	}
	if p := b.get("/ui/ops"); p.status != http.StatusUnauthorized {
		t.Errorf("anonymous GET /ui/ops: %d, want 401", p.status)
	}
	// No delete for anonymous, even with a valid form.
	tok := b.csrf("/ui/login")
	if p := b.do("POST", "/ui/delete", url.Values{"csrf": {tok}, "repo": {"public/app"}, "ref": {"v1"}}); p.status != http.StatusUnauthorized {
		t.Errorf("anonymous delete: %d, want 401", p.status)
	}

	// The reader sees secret/app, but may not delete and is no admin.
	r := e.browser()
	if p := r.login("reader", users["reader"]); p.status != http.StatusSeeOther {
		t.Fatalf("reader sign-in: %d\n%s", p.status, p.body)
	}
	p := r.get("/ui/r/secret/app")
	if p.status != 200 || !strings.Contains(p.body, "hidden-tag") || strings.Contains(p.body, "/ui/delete") {
		t.Errorf("reader on secret/app: %d, tag shown %v, delete offered %v", p.status, strings.Contains(p.body, "hidden-tag"), strings.Contains(p.body, "/ui/delete"))
	}
	if p := r.get("/ui/ops"); p.status != http.StatusForbidden {
		t.Errorf("reader GET /ui/ops: %d, want 403", p.status)
	}
	tok = r.csrf("/ui/login")
	if p := r.do("POST", "/ui/delete", url.Values{"csrf": {tok}, "repo": {"secret/app"}, "ref": {"hidden-tag"}}); p.status != http.StatusForbidden {
		t.Errorf("reader delete: %d, want 403", p.status)
	}
}

func TestSignInSessionAndCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := e.browser()
	if p := b.login("admin", "wrong"); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong user name or password") {
		t.Errorf("wrong password: %d", p.status)
	}
	p := b.login("admin", users["admin"])
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in: %d %v", p.status, p.header)
	}
	c := p.header.Get("Set-Cookie")
	for _, attr := range []string{ui.SessionCookie + "=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(c, attr) {
			t.Errorf("session cookie %q lacks %s", c, attr)
		}
	}
	if strings.Contains(c, "Secure") {
		t.Errorf("session cookie over plain HTTP is Secure: %q", c)
	}
	home := b.get("/ui/")
	if !strings.Contains(home.body, "Signed in as <strong>admin</strong>") || !strings.Contains(home.body, `href="/ui/ops"`) {
		t.Errorf("after sign-in the page does not name admin or offer operations")
	}
	if p := b.get("/ui/ops"); p.status != 200 {
		t.Errorf("admin GET /ui/ops: %d", p.status)
	}

	// Forms without the session's token, or from another site, fail.
	other := e.browser()
	foreign := other.csrf("/ui/login")
	for _, tc := range []struct {
		what string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{"repo": {"x"}, "ref": {"v1"}}, nil},
		{"another session's token", url.Values{"csrf": {foreign}, "repo": {"x"}, "ref": {"v1"}}, nil},
		{"cross-site", url.Values{"csrf": {b.csrf("/ui/login")}, "repo": {"x"}, "ref": {"v1"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"another origin", url.Values{"csrf": {b.csrf("/ui/login")}, "repo": {"x"}, "ref": {"v1"}}, []string{"Origin", "http://evil.example"}},
	} {
		if p := b.do("POST", "/ui/delete", tc.form, tc.hdr...); p.status != http.StatusForbidden || !strings.Contains(p.body, "Form expired") {
			t.Errorf("delete with %s: %d, want 403", tc.what, p.status)
		}
	}
	if p := b.do("POST", "/ui/logout", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("sign-out without a token: %d, want 403", p.status)
	}

	// A forged or altered cookie is no session.
	u, _ := url.Parse(e.srv.URL + "/ui/")
	for _, ck := range b.hc.Jar.Cookies(u) {
		if ck.Name == ui.SessionCookie {
			forged := e.browser()
			forged.hc.Jar.SetCookies(u, []*http.Cookie{{Name: ui.SessionCookie, Value: ck.Value[:len(ck.Value)-2] + "AA"}})
			if p := forged.get("/ui/ops"); p.status != http.StatusUnauthorized {
				t.Errorf("an altered session cookie reached /ui/ops: %d", p.status)
			}
		}
	}

	// A new password ends the session.
	writeUsers(t, e.htpasswd, map[string]string{"admin": "new-pw", "reader": users["reader"]})
	if p := b.get("/ui/ops"); p.status != http.StatusUnauthorized {
		t.Errorf("after a password change /ui/ops: %d, want 401", p.status)
	}

	// Sign-out with the token.
	b2 := e.browser()
	b2.login("reader", users["reader"])
	if p := b2.do("POST", "/ui/logout", url.Values{"csrf": {b2.csrf("/ui/login")}}); p.status != http.StatusSeeOther {
		t.Errorf("sign-out: %d", p.status)
	}
	if p := b2.get("/ui/r/secret/app"); p.status != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d, want 401", p.status)
	}
}

func TestLoginLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b := e.browser()
	for range 3 {
		b.login("reader", "guess")
	}
	p := b.login("reader", users["reader"])
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "Too many failed sign-ins") {
		t.Errorf("sign-in after 3 failures: %d %v", p.status, p.header)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	amd, amdSize := e.pushImage("team/app", "amd64", "amd64", nil, nil)
	arm, armSize := e.pushImage("team/app", "arm64", "arm64", nil, nil)
	e.pushManifest("team/app", "v1", "application/vnd.oci.image.index.v1+json", map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []desc{
			{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: amd, Size: amdSize, Platform: map[string]string{"os": "linux", "architecture": "amd64"}},
			{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: arm, Size: armSize, Platform: map[string]string{"os": "linux", "architecture": "arm64"}},
		},
	})
	b := e.browser()
	b.login("admin", users["admin"])

	repo := b.get("/ui/r/team/app")
	for _, want := range []string{"linux/amd64", "linux/arm64", "OCI index", `href="/ui/delete?ref=v1&amp;repo=team%2Fapp"`} {
		if !strings.Contains(repo.body, want) {
			t.Errorf("repository page lacks %q", want)
		}
	}
	confirm := b.get("/ui/delete?repo=team/app&ref=v1")
	if confirm.status != 200 || !strings.Contains(confirm.body, `action="/ui/delete"`) {
		t.Fatalf("confirmation page: %d", confirm.status)
	}
	tok := csrfRE.FindStringSubmatch(confirm.body)[1]

	// A platform the index lists: the registry refuses, as for the API.
	p := b.do("POST", "/ui/delete", url.Values{"csrf": {tok}, "repo": {"team/app"}, "ref": {amd}})
	if p.status != http.StatusConflict || !strings.Contains(p.body, "MANIFEST_REFERENCED") {
		t.Errorf("deleting a listed platform: %d, want 409 MANIFEST_REFERENCED\n%s", p.status, p.body)
	}
	if r := e.api("GET", "/v2/team/app/manifests/"+amd, "", nil); r.StatusCode != 200 {
		t.Errorf("the refused delete removed the manifest: %d", r.StatusCode)
	}

	// A tag: gone from the registry, the manifest stays.
	p = b.do("POST", "/ui/delete", url.Values{"csrf": {tok}, "repo": {"team/app"}, "ref": {"arm64"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/r/team/app?deleted=arm64" {
		t.Fatalf("deleting a tag: %d %v\n%s", p.status, p.header, p.body)
	}
	if r := e.api("GET", "/v2/team/app/manifests/arm64", "", nil); r.StatusCode != 404 {
		t.Errorf("tag arm64 after delete: %d, want 404", r.StatusCode)
	}
	if r := e.api("GET", "/v2/team/app/manifests/"+arm, "", nil); r.StatusCode != 200 {
		t.Errorf("manifest of the deleted tag: %d, want 200", r.StatusCode)
	}
	if p := b.get("/ui/r/team/app?deleted=arm64"); !strings.Contains(p.body, "Deleted arm64") || strings.Contains(p.body, `href="/ui/m/team/app@arm64"`) {
		t.Errorf("repository page after the delete does not say so, or still lists arm64")
	}
}

func TestOpenRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	e.pushImage("any/app", "v1", "riscv64", map[string]string{"a": "b"}, nil)
	b := e.browser()
	home := b.get("/ui/")
	if !strings.Contains(home.body, "Open registry.") || !strings.Contains(home.body, "any/app") {
		t.Errorf("open registry: banner %v, listing %v", strings.Contains(home.body, "Open registry."), strings.Contains(home.body, "any/app"))
	}
	m := b.get("/ui/m/any/app@v1")
	if m.status != 200 || !strings.Contains(m.body, "linux/riscv64") || !strings.Contains(m.body, "/ui/delete") {
		t.Errorf("open registry manifest page: %d", m.status)
	}
	if p := b.get("/ui/login"); !strings.Contains(p.body, "no sign-in") {
		t.Errorf("the sign-in page of an open registry does not say so")
	}
	// The registry API still answers beside the UI, and / leads to it.
	if r, err := http.Get(e.srv.URL + "/v2/"); err != nil || r.StatusCode != 200 {
		t.Errorf("GET /v2/ beside the UI: %v %v", r, err)
	}
	if p := b.get("/"); p.status != http.StatusFound || p.header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d %s", p.status, p.header.Get("Location"))
	}
	if p := b.get("/ui/r/Not..Valid"); p.status != http.StatusBadRequest {
		t.Errorf("invalid name: %d", p.status)
	}
	if p := b.get("/ui/m/any/app@" + "sha256:zz"); p.status != http.StatusBadRequest {
		t.Errorf("invalid digest: %d", p.status)
	}
	if p := b.get("/ui/m/any/app@v2"); p.status != http.StatusNotFound {
		t.Errorf("unknown tag: %d", p.status)
	}
}

func TestOperationsPage(t *testing.T) {
	t.Parallel()
	started := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	e := newEnvWith(t, true, func(o *ui.Options) {
		o.GCInterval = 24 * time.Hour
		o.GCRuns = func() []gc.RunSummary {
			return []gc.RunSummary{{Started: started, Finished: started.Add(1500 * time.Millisecond), Repositories: 3, Manifests: 2, Blobs: 4, BytesFreed: 3 << 20}}
		}
		o.WebhookDeliveries = func(context.Context, int) ([]ui.WebhookDelivery, error) {
			return []ui.WebhookDelivery{{Webhook: "ci", Event: "push", Repository: "any/app", Status: "failed", Attempts: 3, At: started,
				Error: "<b>refused</b>"}}, nil
		}
	})
	e.pushImage("any/app", "v1", "amd64", nil, nil)
	p := e.browser().get("/ui/ops")
	if p.status != 200 {
		t.Fatalf("GET /ui/ops: %d", p.status)
	}
	for _, want := range []string{"Scheduled every 24h0m0s", "2030-05-06 07:08 UTC", "3.0 MiB", "1.5s", "complete",
		"Webhook deliveries", "&lt;b&gt;refused&lt;/b&gt;", `href="/ui/r/any/app"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("operations page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "<b>refused") {
		t.Error("a delivery's error is not escaped")
	}
}
