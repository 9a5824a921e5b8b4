package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// snapshot is what a registry holds, as an admin sees it: every repository, its tags and
// the digest each tag points at.
func snapshot(c *regClient) map[string]map[string]string {
	c.t.Helper()
	out := map[string]map[string]string{}
	for _, repo := range c.catalog() {
		out[repo] = map[string]string{}
		for _, tag := range c.tags(repo) {
			_, _, d := c.manifest(repo, tag)
			out[repo][tag] = d
		}
	}
	return out
}

// TestAuthAttacks sends what an attacker would to berth in token mode, each with a read, a
// write and a delete on a private repository, and checks that every one is refused with
// the right status and that nothing stored changes. Every case has a control that is
// accepted, so the test fails if the refusals come from a broken setup rather than from
// the checks.
func TestAuthAttacks(t *testing.T) {
	t.Parallel()
	cfg := exampleConfig(t, "auth-token.yaml")
	srv := startAuthBerth(t, cfg, nil)
	admin := srv.client(t, adminUser, adminPass)
	img := newImage(t, "linux", "amd64", 1)
	for _, repo := range []string{"secret/app", "public/app", "public/app/nested", "publicity/app"} {
		admin.pushImage(repo, "v1", img)
	}
	other := newImage(t, "linux", "arm64", 1)
	for _, b := range append([]blob{other.Config}, other.Layers...) {
		admin.pushBlob("secret/app", b.Data) // so that a refused PUT fails for its auth, not its blobs
	}
	before := snapshot(admin)
	raw := &regClient{t: t, base: admin.base, hc: srv.httpClient()}

	// Tokens signed with berth's own key (read from its data directory), as an insider or a
	// stolen-key scenario would make them, varying one claim at a time.
	keyPEM, err := os.ReadFile(filepath.Join(srv.DataDir, "token-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(key.(crypto.Signer).Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	now := time.Now()
	claims := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "berth", "sub": adminUser, "aud": "berth", "jti": "t",
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
			"access": []map[string]any{{"type": "repository", "name": "secret/app", "actions": []string{"pull", "push", "delete"}}},
		}
		if k != "" {
			c[k] = v
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	forged := sign(jwt.SigningMethodES256, key, claims("", nil))
	parts := strings.Split(forged, ".")
	widened, _ := json.Marshal(claims("access", []map[string]any{{"type": "repository", "name": "*", "actions": []string{"*"}}}))
	sig := []byte(parts[2])
	sig[10] ^= 0x01
	reader := fetchToken(t, srv, readerUser, readerPass, url.Values{"offline_token": {"true"}}, "repository:secret/app:pull,push,delete")
	elsewhere := fetchToken(t, srv, adminUser, adminPass, nil, "repository:secret/other:pull,push,delete").Token
	anon := fetchToken(t, srv, "", "", nil, "repository:secret/app:pull,push,delete").Token

	manifestBody := other.Manifest.Data
	type attempt struct{ read, write, del int }
	refused := attempt{401, 401, 401}
	cases := []struct {
		name  string
		authz string
		want  attempt
	}{
		{"control: a token signed with the key", "Bearer " + forged, attempt{200, 201, 202}},
		{"no credentials", "", refused},
		{"Basic credentials in token mode", basicAuthz(adminUser, adminPass), refused},
		{"wrong password", basicAuthz(adminUser, "admin-secreT"), refused},
		{"expired token", "Bearer " + sign(jwt.SigningMethodES256, key, claims("exp", now.Add(-10*time.Minute).Unix())), refused},
		{"not yet valid", "Bearer " + sign(jwt.SigningMethodES256, key, claims("nbf", now.Add(10*time.Minute).Unix())), refused},
		{"another audience", "Bearer " + sign(jwt.SigningMethodES256, key, claims("aud", "other-registry")), refused},
		{"another issuer", "Bearer " + sign(jwt.SigningMethodES256, key, claims("iss", "evil")), refused},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("", nil)), refused},
		{"HS256 keyed with the public key", "Bearer " + sign(jwt.SigningMethodHS256, pubPEM, claims("", nil)), refused},
		{"HS256 keyed with the DER public key", "Bearer " + sign(jwt.SigningMethodHS256, pubDER, claims("", nil)), refused},
		{"tampered signature", "Bearer " + parts[0] + "." + parts[1] + "." + string(sig), refused},
		{"tampered claims", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString(widened) + "." + parts[2], refused},
		{"refresh token as access token", "Bearer " + reader.RefreshToken, refused},
		{"token for another repository", "Bearer " + elsewhere, refused},
		{"anonymous token", "Bearer " + anon, refused},
		{"reader token: read yes, write no", "Bearer " + reader.Token, attempt{200, 403, 403}},
	}
	// The control case changes data; run it last and compare before it.
	cases = append(cases[1:], cases[0])
	for _, c := range cases {
		var hdr []string
		if c.authz != "" {
			hdr = []string{"Authorization", c.authz}
		}
		if c.name == cases[len(cases)-1].name {
			if got := snapshot(admin); !reflect.DeepEqual(got, before) {
				t.Fatalf("stored data changed by refused requests:\nbefore %v\nafter  %v", before, got)
			}
		}
		get := raw.request("GET", "/v2/secret/app/manifests/v1", nil, append(hdr, "Accept", manifestAccept)...)
		put := raw.request("PUT", "/v2/secret/app/manifests/v2", manifestBody, append(hdr, "Content-Type", other.Manifest.MediaType)...)
		del := raw.request("DELETE", "/v2/secret/app/manifests/"+img.Manifest.Digest(), nil, hdr...)
		got := attempt{get.Status, put.Status, del.Status}
		if got != c.want {
			t.Errorf("%s: GET %d, PUT %d, DELETE %d; want %d, %d, %d\n%s", c.name, got.read, got.write, got.del,
				c.want.read, c.want.write, c.want.del, put)
			continue
		}
		for _, r := range []response{get, put, del} {
			switch r.Status {
			case 401:
				if errorCode(r) != "UNAUTHORIZED" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer realm="`) {
					t.Errorf("%s: 401 without UNAUTHORIZED and a Bearer challenge:\n%s", c.name, r)
				}
			case 403:
				if errorCode(r) != "DENIED" {
					t.Errorf("%s: 403 without DENIED:\n%s", c.name, r)
				}
			}
		}
	}

	// The token service refuses bad credentials and malformed scopes without a token.
	for _, c := range []struct {
		name, user, pass, scope string
		status                  int
	}{
		{"control", adminUser, adminPass, "repository:secret/app:pull", 200},
		{"wrong password", adminUser, "nope", "repository:secret/app:pull", 401},
		{"unknown user", "mallory", "x", "repository:secret/app:pull", 401},
		{"extra colon", adminUser, adminPass, "repository:secret/app:x:pull", 400},
		{"leading slash", adminUser, adminPass, "repository:/secret/app:pull", 400},
		{"double slash", adminUser, adminPass, "repository:secret//app:pull", 400},
		{"dot dot", adminUser, adminPass, "repository:public/../secret/app:pull", 400},
		{"host and port", adminUser, adminPass, "repository:127.0.0.1:5000/secret/app:pull", 400},
	} {
		q := url.Values{"service": {"berth"}, "scope": {c.scope}}
		r := raw.request("GET", "/token?"+q.Encode(), nil, "Authorization", basicAuthz(c.user, c.pass))
		if r.Status != c.status || (c.status != 200 && strings.Contains(string(r.Body), `"token"`)) {
			t.Errorf("token request, %s: %s, want %d", c.name, r, c.status)
		}
	}

	// Names that escape their glob: anonymous callers may pull public/* only.
	anonc := &regClient{t: t, base: admin.base, hc: srv.httpClient()}
	for repo, want := range map[string]int{"public/app": 200, "public/app/nested": 401, "publicity/app": 401, "secret/app": 401} {
		if got := anonc.manifestStatus(repo, "v1"); got != want {
			t.Errorf("anonymous GET %s: %d, want %d", repo, got, want)
		}
	}
	if got := anonc.catalog(); !equalSorted(got, []string{"public/app"}) {
		t.Errorf("anonymous catalog %v, want only public/app", got)
	}
	anonc.expect(anonc.request("POST", "/v2/public/app/blobs/uploads/", nil), http.StatusUnauthorized)
	for _, p := range []string{"/v2/public/../secret/app/manifests/v1", "/v2/public/%2e%2e/secret/app/manifests/v1", "/v2/public/app/../../secret/app/tags/list"} {
		req, _ := http.NewRequest("GET", srv.URL()+p, nil)
		resp, err := srv.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 400 or 404", p, resp.StatusCode, body)
		}
	}

	// A refresh token stops working once its user is removed with `berth user rm`.
	refresh := func() response {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {reader.RefreshToken}, "service": {"berth"},
			"client_id": {"e2e"}, "scope": {"repository:public/app:pull"}}
		return raw.request("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	}
	raw.expect(refresh(), http.StatusOK)
	out, err := exec.Command(berthBinary(t), "user", "rm", readerUser, "--htpasswd", filepath.Join(filepath.Dir(cfg), "htpasswd")).CombinedOutput()
	if err != nil {
		t.Fatalf("berth user rm: %v\n%s", err, out)
	}
	r := raw.expect(refresh(), http.StatusBadRequest)
	if !strings.Contains(string(r.Body), `"invalid_grant"`) || strings.Contains(string(r.Body), "token\"") {
		t.Errorf("refresh after removal: %s", r)
	}
	r = raw.request("GET", "/token?service=berth", nil, "Authorization", basicAuthz(readerUser, readerPass))
	if r.Status != http.StatusUnauthorized {
		t.Errorf("login of a removed user: %s", r)
	}
}

// TestAuthBasicModeRefusals checks basic mode's answers: 401 with a Basic challenge for
// missing or wrong credentials, 403 DENIED for a user without the right, nothing stored.
func TestAuthBasicModeRefusals(t *testing.T) {
	t.Parallel()
	srv := startAuthBerth(t, exampleConfig(t, "auth-basic.yaml"), nil)
	admin := srv.client(t, adminUser, adminPass)
	img := newImage(t, "linux", "amd64", 1)
	admin.pushImage("team/app", "v1", img)
	before := snapshot(admin)
	raw := &regClient{t: t, base: admin.base, hc: srv.httpClient()}
	for _, c := range []struct {
		name, authz string
		status      int
	}{
		{"none", "", 401},
		{"wrong password", basicAuthz(adminUser, "x"), 401},
		{"unknown user", basicAuthz("mallory", adminPass), 401},
		{"bearer in basic mode", "Bearer abc.def.ghi", 401},
		{"garbage", "Basic !!!", 401},
		{"reader", basicAuthz(readerUser, readerPass), 403},
	} {
		var hdr []string
		if c.authz != "" {
			hdr = []string{"Authorization", c.authz}
		}
		for _, r := range []response{
			raw.request("POST", "/v2/team/app/blobs/uploads/", nil, hdr...),
			raw.request("DELETE", "/v2/team/app/manifests/"+img.Manifest.Digest(), nil, hdr...),
		} {
			if r.Status != c.status {
				t.Errorf("%s: %s, want %d", c.name, r, c.status)
			}
			if c.status == 401 && (errorCode(r) != "UNAUTHORIZED" || r.Header.Get("WWW-Authenticate") != `Basic realm="berth example"`) {
				t.Errorf("%s: %s", c.name, r)
			}
			if c.status == 403 && errorCode(r) != "DENIED" {
				t.Errorf("%s: %s", c.name, r)
			}
		}
	}
	if got := snapshot(admin); !reflect.DeepEqual(got, before) {
		t.Fatalf("stored data changed: %v, was %v", got, before)
	}
}

// TestAuthLoginLimit checks that failed logins are slowed down per guessing source (client
// address and user): after the budget the guesser is refused with 429 even with the right
// password, while the same user from another address and other users from the guessing
// address log in as usual.
func TestAuthLoginLimit(t *testing.T) {
	t.Parallel()
	cfg := exampleConfig(t, "auth-basic.yaml")
	data, _ := os.ReadFile(cfg)
	cfgData := strings.Replace(string(data), "  mode: basic\n", "  mode: basic\n  loginLimit: {burst: 3, perMinute: 1}\n", 1)
	if cfgData == string(data) {
		t.Fatal("could not add loginLimit to the example")
	}
	os.WriteFile(cfg, []byte(cfgData), 0o644)
	srv := startAuthBerth(t, cfg, nil)
	from := func(ip string) *regClient {
		hc := srv.httpClient()
		hc.Transport = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
		return &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: hc}
	}
	a, b := from("127.0.0.1"), from("127.0.0.2")
	login := func(c *regClient, user, pass string) int {
		return c.request("GET", "/v2/", nil, "Authorization", basicAuthz(user, pass)).Status
	}
	if st := login(b, readerUser, readerPass); st != 200 {
		t.Fatalf("control login from 127.0.0.2: %d (is 127.0.0.2 routed to loopback?)", st)
	}
	for i := range 3 {
		if st := login(a, adminUser, fmt.Sprintf("guess-%d", i)); st != 401 {
			t.Fatalf("guess %d: %d", i, st)
		}
	}
	r := a.request("GET", "/v2/", nil, "Authorization", basicAuthz(adminUser, adminPass))
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || errorCode(r) != "TOOMANYREQUESTS" {
		t.Fatalf("right password after the budget: %s", r)
	}
	if st := login(a, readerUser, readerPass); st != 200 {
		t.Errorf("another user from the guessing client: %d, want 200", st)
	}
	if st := login(b, adminUser, adminPass); st != 200 {
		t.Errorf("the guessed user with the right password from another client: %d, want 200", st)
	}
	if st := login(a, adminUser, "guess-again"); st != 429 {
		t.Errorf("the guesser again: %d, want 429", st)
	}
	if st := login(b, readerUser, readerPass); st != 200 {
		t.Errorf("another user from another client: %d, want 200", st)
	}
	if strings.Contains(srv.log.String(), adminPass) || strings.Contains(srv.log.String(), "guess-") {
		t.Error("a password reached the log")
	}
}

// TestAuthSecretsNotLogged runs a token flow with a password, a refresh token and access
// tokens, and checks that none of them appears in berth's log.
func TestAuthSecretsNotLogged(t *testing.T) {
	t.Parallel()
	srv := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)
	raw := &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: srv.httpClient()}
	tr := fetchToken(t, srv, adminUser, adminPass, url.Values{"offline_token": {"true"}}, "repository:a/b:pull")
	raw.request("GET", "/v2/a/b/tags/list", nil, "Authorization", "Bearer "+tr.Token)
	raw.request("GET", "/v2/a/b/tags/list", nil, "Authorization", "Bearer "+tr.Token+"x")
	v := url.Values{"grant_type": {"password"}, "username": {adminUser}, "password": {adminPass}, "access_type": {"offline"}}
	raw.request("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	v = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}
	raw.request("POST", "/token", []byte(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	wrong := make([]byte, 8)
	rand.Read(wrong)
	bad := fmt.Sprintf("wrong-%x", wrong)
	raw.request("GET", "/token", nil, "Authorization", basicAuthz(adminUser, bad))
	logs := srv.log.String()
	sigOf := func(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }
	for name, secret := range map[string]string{"password": adminPass, "wrong password": bad,
		"access token": sigOf(tr.Token), "refresh token": sigOf(tr.RefreshToken)} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	if !strings.Contains(logs, "token issued") {
		t.Error("no token issued in the log: the test saw no logging at all")
	}
}
