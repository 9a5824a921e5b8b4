package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestAuthGenericV2Flow replays, call by call, how a generic V2 client such as VS Code's
// registry explorer works against berth in token mode: Basic first, then a token for the
// space-joined scopes from the challenge's realm, the catalog page by page following Link,
// tag lists, a manifest's digest, and DELETE by digest. In basic mode, the first request
// with Basic credentials succeeds directly.
func TestAuthGenericV2Flow(t *testing.T) {
	t.Parallel()
	srv := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)
	admin := srv.client(t, adminUser, adminPass)
	img := newImage(t, "linux", "amd64", 1)
	repos := []string{"vs/app", "vs/lib", "vs/tool"}
	for _, r := range repos {
		admin.pushImage(r, "v1", img)
	}
	admin.pushImage("vs/app", "v2", newImage(t, "linux", "amd64", 1))

	raw := &regClient{t: t, base: admin.base, hc: srv.httpClient()}
	basic := basicAuthz(adminUser, adminPass)

	// 1. The first request carries Basic credentials; token mode answers with a challenge.
	r := raw.expect(raw.request("GET", "/v2/_catalog", nil, "Authorization", basic), http.StatusUnauthorized)
	h := r.Header.Get("WWW-Authenticate")
	want := `Bearer realm="` + srv.URL() + `/token",service="berth",scope="registry:catalog:*"`
	if h != want {
		t.Fatalf("challenge\n got %s\nwant %s", h, want)
	}
	ch := parseChallenge(h)
	if !slices.Equal(ch.order, []string{"realm", "service", "scope"}) {
		t.Errorf("challenge parameters in order %v", ch.order)
	}
	if errorCode(r) != "UNAUTHORIZED" {
		t.Errorf("401 body: %s", r.Body)
	}

	// 2. GET realm?service=…&scope=<space-joined scopes> with Basic, reading .token.
	scopes := []string{ch.params["scope"], "repository:vs/app:pull", "repository:vs/app:*"}
	q := url.Values{"service": {ch.params["service"]}, "scope": {strings.Join(scopes, " ")}}
	tr := raw.expect(raw.request("GET", ch.params["realm"]+"?"+q.Encode(), nil, "Authorization", basic), http.StatusOK)
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(tr.Body, &tok); err != nil || tok.Token == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("token response: %s", tr)
	}
	bearer := "Bearer " + tok.Token

	// 3. The catalog, one page at a time, following Link.
	var catalog []string
	next := "/v2/_catalog?n=1"
	for pages := 0; next != ""; pages++ {
		if pages > len(repos) {
			t.Fatalf("catalog pagination does not end: %v", catalog)
		}
		r := raw.expect(raw.request("GET", next, nil, "Authorization", bearer), http.StatusOK)
		var page struct{ Repositories []string }
		if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Repositories) > 1 {
			t.Fatalf("catalog page: %s", r)
		}
		catalog = append(catalog, page.Repositories...)
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ";")[0], "<"), ">")
		}
	}
	if !slices.Equal(catalog, repos) {
		t.Fatalf("catalog %v, want %v", catalog, repos)
	}

	// 4. Tags, then the manifest's digest, then DELETE by digest.
	r = raw.expect(raw.request("GET", "/v2/vs/app/tags/list", nil, "Authorization", bearer), http.StatusOK)
	var tags struct {
		Name string
		Tags []string
	}
	if err := json.Unmarshal(r.Body, &tags); err != nil || tags.Name != "vs/app" || !equalSorted(tags.Tags, []string{"v1", "v2"}) {
		t.Fatalf("tags: %s", r)
	}
	r = raw.expect(raw.request("GET", "/v2/vs/app/manifests/v1", nil, "Authorization", bearer, "Accept", manifestAccept), http.StatusOK)
	dgst := r.Header.Get("Docker-Content-Digest")
	if dgst != img.Manifest.Digest() {
		t.Fatalf("Docker-Content-Digest %q, want %s", dgst, img.Manifest.Digest())
	}
	raw.expect(raw.request("DELETE", "/v2/vs/app/manifests/"+dgst, nil, "Authorization", bearer), http.StatusAccepted)
	if st := admin.manifestStatus("vs/app", dgst); st != http.StatusNotFound {
		t.Errorf("manifest after DELETE: %d", st)
	}
	if got := admin.tags("vs/app"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("tags after DELETE: %v", got)
	}
	// The same token does not reach another repository's delete.
	r = raw.expect(raw.request("DELETE", "/v2/vs/lib/manifests/"+dgst, nil, "Authorization", bearer), http.StatusUnauthorized)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="repository:vs/lib:delete",error="insufficient_scope"`) {
		t.Errorf("challenge for another repository: %s", r.Header.Get("WWW-Authenticate"))
	}

	// Basic mode: the first request with Basic credentials succeeds directly.
	bsrv := startAuthBerth(t, exampleConfig(t, "auth-basic.yaml"), nil)
	braw := &regClient{t: t, base: mustParseURL(t, bsrv.URL()), hc: bsrv.httpClient()}
	r = braw.expect(braw.request("GET", "/v2/_catalog", nil, "Authorization", basic), http.StatusOK)
	if string(r.Body) != `{"repositories":[]}` {
		t.Errorf("empty catalog: %s", r.Body)
	}
	r = braw.expect(braw.request("GET", "/v2/_catalog", nil), http.StatusOK) // anonymous may list (public/* only)
	r = braw.expect(braw.request("GET", "/v2/", nil), http.StatusUnauthorized)
	if h := r.Header.Get("WWW-Authenticate"); h != `Basic realm="berth example"` {
		t.Errorf("basic challenge %q", h)
	}
}

func mustParseURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
