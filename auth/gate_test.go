package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// env is a registry behind a Gate, over HTTP.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	gate     *Gate
	htpasswd string
	host     string
}

var testUsers = map[string]string{"admin": "admin-secret", "reader": "reader-secret", "pusher": "pusher-secret"}

func testRules(t *testing.T) *Rules {
	t.Helper()
	rs, err := NewRules([]Rule{
		{Repositories: []string{"**"}, Groups: []string{"admins"}, Actions: []string{"*"}, Catalog: true},
		{Repositories: []string{"**"}, Users: []string{"reader"}, Actions: []string{"pull"}, Catalog: true},
		{Repositories: []string{"ci/*"}, Users: []string{"pusher"}, Actions: []string{"pull", "push"}},
		{Repositories: []string{"public/*"}, Users: []string{"anonymous"}, Actions: []string{"pull"}, Catalog: true},
	}, map[string][]string{"admins": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// newTestEnv starts a registry in mode; adjust may change the options.
func newTestEnv(t *testing.T, mode string, adjust func(*GateOptions)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, htpasswd: filepath.Join(dir, "htpasswd")}
	if err := EditHtpasswd(e.htpasswd, func(u map[string]string) error {
		for name, pw := range testUsers {
			u[name] = hashFor(t, pw)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	users, err := NewHtpasswd(e.htpasswd, log)
	if err != nil {
		t.Fatal(err)
	}
	opts := GateOptions{
		Mode: mode, Users: users, Rules: testRules(t), Limiter: NewLimiter(5, 1),
		Realm: "/token", Service: "berth", Log: log,
	}
	if mode == ModeToken {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		iss, err := NewIssuer(key, IssuerOptions{Issuer: "berth", Service: "berth", TTL: time.Minute, RefreshTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		opts.Issuer, opts.Verifier = iss, iss
	}
	if adjust != nil {
		adjust(&opts)
	}
	e.gate, err = NewGate(opts)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	blobs := storage.New(inmemory.New())
	reg := registry.New(blobs, gc.Guard(meta, blobs), registry.Options{
		Logger: log, Authorize: e.gate.Authorize, MayPull: e.gate.MayPull, MayMount: e.gate.MayMount,
	})
	e.srv = httptest.NewServer(registry.Handler(e.gate.Wrap(reg), registry.HandlerOptions{Logger: log}))
	t.Cleanup(e.srv.Close)
	e.host = strings.TrimPrefix(e.srv.URL, "http://")
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) String() string {
	return fmt.Sprintf("%d %v %s", r.status, r.header, r.body)
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// do sends a request; hdr holds pairs of header name and value.
func (e *env) do(method, target string, body []byte, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// token gets a token from the built-in service for user (empty for
// anonymous) and scopes.
func (e *env) token(user string, scopes ...string) string {
	e.t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	var hdr []string
	if user != "" {
		hdr = []string{"Authorization", basicAuth(user, testUsers[user])}
	}
	r := e.do("GET", "/token?"+q.Encode(), nil, hdr...)
	if r.status != http.StatusOK {
		e.t.Fatalf("token for %q %v: %s", user, scopes, r)
	}
	var tr TokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.Token == "" || tr.AccessToken != tr.Token {
		e.t.Fatalf("token response %s: %v", r.body, err)
	}
	return "Bearer " + tr.Token
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// push uploads a small image to repo:tag with the given Authorization.
func (e *env) push(authz, repo, tag string) string {
	e.t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","repo":%q}`, repo))
	layer := []byte("layer of " + repo)
	for _, b := range [][]byte{cfg, layer} {
		r := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digestOf(b), b, "Authorization", authz, "Content-Type", "application/octet-stream")
		if r.status != http.StatusCreated {
			e.t.Fatalf("push blob to %s: %s", repo, r)
		}
	}
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digestOf(cfg), len(cfg), digestOf(layer), len(layer)))
	r := e.do("PUT", "/v2/"+repo+"/manifests/"+tag, man, "Authorization", authz, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if r.status != http.StatusCreated {
		e.t.Fatalf("push manifest to %s: %s", repo, r)
	}
	return digestOf(layer)
}

func (e *env) expect(r resp, status int, challenge string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r)
	}
	if got := r.header.Get("WWW-Authenticate"); got != challenge {
		e.t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, challenge)
	}
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		code := map[int]string{401: "UNAUTHORIZED", 403: "DENIED"}[status]
		if json.Unmarshal(r.body, &body) != nil || len(body.Errors) != 1 || body.Errors[0].Code != code {
			e.t.Fatalf("body %s, want one %s error", r.body, code)
		}
	}
}

func (e *env) bearer(scope, errCode string) string {
	return bearerChallenge("http://"+e.host+"/token", "berth", scope, errCode)
}

func TestGateTokenMode(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeToken, nil)

	// The base endpoint challenges without a scope, even with Basic
	// credentials: token mode wants tokens.
	e.expect(e.do("GET", "/v2/", nil), 401, e.bearer("", ""))
	e.expect(e.do("GET", "/v2/", nil, "Authorization", basicAuth("admin", "admin-secret")), 401, e.bearer("", ""))
	e.expect(e.do("GET", "/v2/", nil, "Authorization", e.token("admin")), 200, "")
	e.expect(e.do("GET", "/v2/", nil, "Authorization", "Bearer garbage"), 401, e.bearer("", "invalid_token"))

	// Each route is challenged with its own scope.
	e.expect(e.do("GET", "/v2/_catalog", nil, "Authorization", basicAuth("admin", "admin-secret")), 401, e.bearer("registry:catalog:*", ""))
	admin := e.token("admin", "repository:team/app:pull,push", "registry:catalog:*")
	e.push(admin, "team/app", "v1")
	e.expect(e.do("GET", "/v2/team/app/manifests/v1", nil), 401, e.bearer("repository:team/app:pull", ""))
	e.expect(e.do("PUT", "/v2/team/app/manifests/v2", []byte("{}")), 401, e.bearer("repository:team/app:pull,push", ""))
	e.expect(e.do("DELETE", "/v2/team/app/manifests/v1", nil), 401, e.bearer("repository:team/app:delete", ""))
	e.expect(e.do("GET", "/v2/_catalog", nil), 200, "") // anonymous may list (and sees nothing here)

	// A token lacking the scope its account could have: 401 insufficient_scope.
	e.expect(e.do("DELETE", "/v2/team/app/manifests/v1", nil, "Authorization", admin), 401,
		e.bearer("repository:team/app:delete", "insufficient_scope"))
	// A token whose account lacks the right: 403.
	reader := e.token("reader", "repository:team/app:pull,push")
	e.expect(e.do("PUT", "/v2/team/app/manifests/v2", []byte("{}"), "Authorization", reader), 403, "")
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", reader), 200, "")
	// A token for another repository.
	other := e.token("admin", "repository:team/other:pull,push,delete")
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", other), 401, e.bearer("repository:team/app:pull", "insufficient_scope"))

	// Anonymous tokens carry what anonymous callers may do.
	anon := e.token("", "repository:team/app:pull")
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", anon), 401, e.bearer("repository:team/app:pull", "insufficient_scope"))
	e.push(e.token("admin", "repository:public/app:pull,push"), "public/app", "v1")
	anonPub := e.token("", "repository:public/app:pull,push")
	e.expect(e.do("GET", "/v2/public/app/tags/list", nil, "Authorization", anonPub), 200, "")
	e.expect(e.do("GET", "/v2/public/app/tags/list", nil), 200, "") // without a token at all
	e.expect(e.do("POST", "/v2/public/app/blobs/uploads/", nil, "Authorization", anonPub), 401,
		e.bearer("repository:public/app:pull,push", "insufficient_scope"))
}

func TestGateBasicMode(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeBasic, nil)
	basic := `Basic realm="berth"`
	admin := basicAuth("admin", "admin-secret")
	e.expect(e.do("GET", "/v2/", nil), 401, basic)
	e.expect(e.do("GET", "/v2/", nil, "Authorization", admin), 200, "")
	// The first request with Basic credentials succeeds directly.
	e.expect(e.do("GET", "/v2/_catalog", nil, "Authorization", admin), 200, "")
	e.push(admin, "team/app", "v1")
	e.push(admin, "public/app", "v1")
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", basicAuth("admin", "wrong")), 401, basic)
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", basicAuth("ghost", "x")), 401, basic)
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", "Bearer x.y.z"), 401, basic)
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil), 401, basic)
	reader := basicAuth("reader", "reader-secret")
	e.expect(e.do("GET", "/v2/team/app/tags/list", nil, "Authorization", reader), 200, "")
	e.expect(e.do("POST", "/v2/team/app/blobs/uploads/", nil, "Authorization", reader), 403, "")
	e.expect(e.do("DELETE", "/v2/team/app/manifests/v1", nil, "Authorization", reader), 403, "")
	e.expect(e.do("GET", "/v2/public/app/tags/list", nil), 200, "")
	e.expect(e.do("POST", "/v2/public/app/blobs/uploads/", nil), 401, basic)
	// Wrong credentials are refused even where anonymous access would do.
	e.expect(e.do("GET", "/v2/public/app/tags/list", nil, "Authorization", basicAuth("admin", "wrong")), 401, basic)
}

func catalogOf(t *testing.T, e *env, authz string, n int) []string {
	t.Helper()
	var all []string
	next := "/v2/_catalog"
	if n > 0 {
		next += fmt.Sprintf("?n=%d", n)
	}
	for next != "" {
		var hdr []string
		if authz != "" {
			hdr = []string{"Authorization", authz}
		}
		r := e.do("GET", next, nil, hdr...)
		if r.status != 200 {
			t.Fatalf("catalog: %s", r)
		}
		var body struct{ Repositories []string }
		json.Unmarshal(r.body, &body)
		if n > 0 && len(body.Repositories) > n {
			t.Fatalf("page of %d, asked %d", len(body.Repositories), n)
		}
		all = append(all, body.Repositories...)
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ";")[0], "<"), ">")
		}
	}
	return all
}

func TestCatalogAndSearchFiltered(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeBasic, nil)
	admin := basicAuth("admin", "admin-secret")
	repos := []string{"a/one", "ci/build", "public/app", "public/lib", "public/nested/deep", "secret/x", "z/last"}
	for _, r := range repos {
		e.push(admin, r, "v1")
	}
	for _, c := range []struct {
		authz string
		want  []string
	}{
		{"", []string{"public/app", "public/lib"}},
		{basicAuth("pusher", "pusher-secret"), []string{"ci/build", "public/app", "public/lib"}},
		{basicAuth("reader", "reader-secret"), repos},
		{admin, repos},
	} {
		for _, n := range []int{0, 1, 2} {
			if got := catalogOf(t, e, c.authz, n); !slices.Equal(got, c.want) {
				t.Errorf("catalog (n=%d) for %q: %v, want %v", n, c.authz, got, c.want)
			}
		}
	}
	r := e.do("GET", "/v1/search?q=l", nil)
	var res struct{ Results []struct{ Name string } }
	json.Unmarshal(r.body, &res)
	var names []string
	for _, x := range res.Results {
		names = append(names, x.Name)
	}
	if !slices.Equal(names, []string{"public/app", "public/lib"}) {
		t.Errorf("anonymous search: %v (%s)", names, r)
	}
}

func TestMountNeedsPullOnSource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeBasic, nil)
	admin := basicAuth("admin", "admin-secret")
	pusher := basicAuth("pusher", "pusher-secret")
	secretLayer := e.push(admin, "secret/x", "v1")
	ciLayer := e.push(admin, "ci/src", "v1")
	mount := func(authz, from, d string) int {
		q := "mount=" + d
		if from != "" {
			q += "&from=" + from
		}
		return e.do("POST", "/v2/ci/dst/blobs/uploads/?"+q, nil, "Authorization", authz).status
	}
	// A caller who may not pull the source gets an upload session, not the blob.
	if st := mount(pusher, "secret/x", secretLayer); st != http.StatusAccepted {
		t.Errorf("mount from a repository the caller may not pull: %d, want 202", st)
	}
	if st := mount(pusher, "", secretLayer); st != http.StatusAccepted {
		t.Errorf("mount without from of a blob only in a hidden repository: %d, want 202", st)
	}
	if st := e.do("HEAD", "/v2/ci/dst/blobs/"+secretLayer, nil, "Authorization", pusher).status; st != http.StatusNotFound {
		t.Errorf("the hidden blob is readable through the target: %d", st)
	}
	if st := mount(pusher, "ci/src", ciLayer); st != http.StatusCreated {
		t.Errorf("mount from a readable repository: %d, want 201", st)
	}
	if st := mount(pusher, "", ciLayer); st != http.StatusCreated {
		t.Errorf("mount without from of a readable blob: %d, want 201", st)
	}
	if st := mount(admin, "secret/x", secretLayer); st != http.StatusCreated {
		t.Errorf("admin mount: %d, want 201", st)
	}
}

func TestMountChallengeNamesSource(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeToken, nil)
	r := e.do("POST", "/v2/ci/dst/blobs/uploads/?mount=sha256:"+strings.Repeat("a", 64)+"&from=ci/src", nil)
	e.expect(r, 401, e.bearer("repository:ci/dst:pull,push repository:ci/src:pull", ""))
}

func tokenResponse(t *testing.T, r resp) TokenResponse {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("token request: %s", r)
	}
	var tr TokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response without Cache-Control: no-store")
	}
	return tr
}

func TestTokenService(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeToken, nil)
	admin := basicAuth("admin", "admin-secret")

	// GET: scopes repeated and space-separated, offline token.
	r := e.do("GET", "/token?service=berth&account=admin&client_id=test&offline_token=true"+
		"&scope=repository:a/b:pull,push+registry:catalog:*&scope=repository:c:delete", nil, "Authorization", admin)
	tr := tokenResponse(t, r)
	if tr.RefreshToken == "" || tr.ExpiresIn != 60 || tr.IssuedAt == "" {
		t.Errorf("response %+v", tr)
	}
	id, err := e.gate.opts.Verifier.Verify(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{{TypeRepository, "a/b", []string{"pull", "push"}}, {TypeRegistry, "catalog", []string{"*"}}, {TypeRepository, "c", []string{"delete"}}}
	if id.Name != "admin" || fmt.Sprint(id.Token) != fmt.Sprint(want) {
		t.Errorf("token for %q grants %+v, want %+v", id.Name, id.Token, want)
	}

	// The grant is the intersection with the rules.
	tr = tokenResponse(t, e.do("GET", "/token?service=berth&scope=repository:a/b:pull,push,delete", nil, "Authorization", basicAuth("reader", "reader-secret")))
	id, _ = e.gate.opts.Verifier.Verify(tr.Token)
	if fmt.Sprint(id.Token) != fmt.Sprint([]Access{{TypeRepository, "a/b", []string{"pull"}}}) || tr.RefreshToken != "" {
		t.Errorf("reader: %+v, refresh %q", id.Token, tr.RefreshToken)
	}

	// OAuth2: refresh grant, then the user is removed.
	form := func(kv ...string) resp {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return e.do("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	}
	pw := tokenResponse(t, form("grant_type", "password", "username", "reader", "password", "reader-secret",
		"service", "berth", "client_id", "test", "access_type", "offline", "scope", "repository:x:pull"))
	if pw.RefreshToken == "" || pw.Scope != "repository:x:pull" {
		t.Fatalf("password grant: %+v", pw)
	}
	rf := tokenResponse(t, form("grant_type", "refresh_token", "refresh_token", pw.RefreshToken, "service", "berth", "scope", "repository:y:pull"))
	if id, err := e.gate.opts.Verifier.Verify(rf.AccessToken); err != nil || id.Name != "reader" || len(id.Token) != 1 {
		t.Fatalf("refreshed token: %+v %v", id, err)
	}
	if err := EditHtpasswd(e.htpasswd, func(u map[string]string) error { delete(u, "reader"); return nil }); err != nil {
		t.Fatal(err)
	}
	oauthErr := func(r resp, status int, code string) {
		t.Helper()
		var body struct{ Error string }
		if r.status != status || json.Unmarshal(r.body, &body) != nil || body.Error != code {
			t.Errorf("want %d %s, got %s", status, code, r)
		}
	}
	oauthErr(form("grant_type", "refresh_token", "refresh_token", pw.RefreshToken, "service", "berth"), 400, "invalid_grant")
	oauthErr(form("grant_type", "password", "username", "admin", "password", "nope", "service", "berth"), 400, "invalid_grant")
	oauthErr(form("grant_type", "refresh_token", "refresh_token", tr.Token, "service", "berth"), 400, "invalid_grant") // an access token
	oauthErr(form("grant_type", "client_credentials"), 400, "unsupported_grant_type")
	oauthErr(form("grant_type", "password", "username", "admin", "password", "admin-secret", "scope", "repository:../x:pull"), 400, "invalid_scope")
	oauthErr(form("grant_type", "password", "username", "admin", "password", "admin-secret", "service", "other"), 400, "invalid_request")

	// GET refusals.
	for _, c := range []struct {
		target, authz string
		status        int
	}{
		{"/token?service=berth", basicAuth("admin", "wrong"), 401},
		{"/token?service=berth", basicAuth("ghost", "x"), 401},
		{"/token?service=berth&account=reader", admin, 401},
		{"/token?service=other", admin, 403},
		{"/token?service=berth&scope=repository:a:b:pull", admin, 400},
		{"/token?service=berth&scope=repository:public/../secret:pull", admin, 400},
		{"/token?service=berth&scope=repository:/x:pull", admin, 400},
		{"/token?service=berth", "Bearer " + tr.Token, 401},
	} {
		r := e.do("GET", c.target, nil, "Authorization", c.authz)
		if r.status != c.status || bytes.Contains(r.body, []byte(`"token"`)) {
			t.Errorf("GET %s (%s): %s, want %d", c.target, strings.Fields(c.authz)[0], r, c.status)
		}
		if c.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="berth"` {
			t.Errorf("GET %s: challenge %q", c.target, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := e.do("PUT", "/token", nil); r.status != 405 {
		t.Errorf("PUT /token: %s", r)
	}
}

func TestLoginLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeBasic, func(o *GateOptions) { o.Limiter = NewLimiter(3, 1) })
	for range 3 {
		e.expect(e.do("GET", "/v2/", nil, "Authorization", basicAuth("admin", "guess")), 401, `Basic realm="berth"`)
	}
	// Now even the right password is refused without being checked.
	r := e.do("GET", "/v2/", nil, "Authorization", basicAuth("admin", "admin-secret"))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !bytes.Contains(r.body, []byte("TOOMANYREQUESTS")) {
		t.Fatalf("after 3 failures: %s", r)
	}
	// Requests without credentials are not logins.
	if r := e.do("GET", "/v2/public/app/tags/list", nil); r.status == http.StatusTooManyRequests {
		t.Fatalf("anonymous request limited: %s", r)
	}
}

func TestTokenServiceLoginLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeToken, func(o *GateOptions) { o.Limiter = NewLimiter(2, 1) })
	for range 2 {
		if r := e.do("GET", "/token?service=berth", nil, "Authorization", basicAuth("reader", "x")); r.status != 401 {
			t.Fatalf("wrong password: %s", r)
		}
	}
	if r := e.do("GET", "/token?service=berth", nil, "Authorization", basicAuth("reader", "reader-secret")); r.status != 429 {
		t.Fatalf("GET after the budget: %s", r)
	}
	v := url.Values{"grant_type": {"password"}, "username": {"reader"}, "password": {"reader-secret"}}
	if r := e.do("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded"); r.status != 429 {
		t.Fatalf("POST for the guessed user from the same client after the budget: %s", r)
	}
	// Another user from the same client is not the guessing source.
	v = url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin-secret"}}
	if r := e.do("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 {
		t.Fatalf("POST for another user from the same client: %s", r)
	}
}

func TestRealmFromRequest(t *testing.T) {
	t.Parallel()
	for _, trust := range []bool{false, true} {
		e := newTestEnv(t, ModeToken, func(o *GateOptions) { o.TrustForwardedProto = trust })
		r := e.do("GET", "/v2/", nil, "X-Forwarded-Proto", "https")
		scheme := "http"
		if trust {
			scheme = "https"
		}
		want := bearerChallenge(scheme+"://"+e.host+"/token", "berth", "", "")
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("trust %v: %s, want %s", trust, got, want)
		}
	}
	e := newTestEnv(t, ModeToken, func(o *GateOptions) { o.Realm = "https://auth.example/token" })
	if got := e.do("GET", "/v2/", nil).header.Get("WWW-Authenticate"); got != bearerChallenge("https://auth.example/token", "berth", "", "") {
		t.Errorf("absolute realm: %s", got)
	}
	if r := e.do("GET", "/token?service=berth", nil); r.status != 200 {
		t.Errorf("the token service answers at the absolute realm's path: %s", r)
	}
}

func FuzzParseTokenRequest(f *testing.F) {
	f.Add("GET", "service=berth&scope=repository:a:pull+registry:catalog:*&offline_token=true", "")
	f.Add("POST", "", "grant_type=password&username=a&password=b&scope=repository:a:pull")
	f.Add("POST", "", "grant_type=refresh_token&refresh_token=x.y.z&scope=%zz")
	f.Fuzz(func(t *testing.T, method, query, body string) {
		if method != "GET" && method != "POST" {
			return
		}
		req := httptest.NewRequest(method, "/token", strings.NewReader(body))
		req.URL.RawQuery = query
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		tr, err := ParseTokenRequest(req)
		if err != nil {
			return
		}
		for _, a := range tr.Scopes {
			if a.Type == TypeRepository && !registry.ValidName(a.Name) {
				t.Fatalf("invalid name %q accepted", a.Name)
			}
		}
		if method == "POST" && (strings.Contains(query, "password") && tr.Password != "" && !strings.Contains(body, "password")) {
			t.Fatal("a POST took its password from the query")
		}
	})
}
