package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
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
