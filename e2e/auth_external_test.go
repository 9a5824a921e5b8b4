package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// bearerTransport sends a fixed Authorization header.
type bearerTransport struct {
	authz string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", b.authz)
	return b.next.RoundTrip(r)
}

// ecJWK is the public JWK of an EC P-256 key.
func ecJWK(key *ecdsa.PrivateKey, kid string) map[string]string {
	pad := func(b *big.Int) string {
		buf := make([]byte, 32)
		return base64.RawURLEncoding.EncodeToString(b.FillBytes(buf))
	}
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "x": pad(key.X), "y": pad(key.Y), "use": "sig", "alg": "ES256"}
}

// TestAuthExternalIssuer runs berth as a verifier of an external issuer's tokens: keys from
// a JWKS URL and, for tokens carrying x5c, a chain to a configured root. The issuer's access
// claim decides (with "*" as a wildcard); iss, aud, exp and the signature are checked; the
// challenge sends clients to the issuer's realm.
func TestAuthExternalIssuer(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{ecJWK(key, "k1")}})
	}))
	defer jwks.Close()
	ca := newCA(t, "issuer root")
	leafPEM, leafKeyPEM, _ := ca.leaf(t, "issuer signing", false)
	leafPair := mustKeyPair(t, leafPEM, leafKeyPEM)

	cfg := exampleConfig(t, "auth-token.yaml")
	dir := filepath.Dir(cfg)
	writeFile(t, dir, "roots.pem", ca.PEM)
	writeFile(t, dir, "external.yaml", []byte(`auth:
  mode: token
  token:
    realm: https://idp.example/token
    service: registry.example
    issuer: https://idp.example
    jwks: `+jwks.URL+`
    rootCerts: roots.pem
    leeway: 30s
  rules:
    - repositories: ["public/*"]
      users: [anonymous]
      actions: [pull]
      catalog: true
`))
	srv := startAuthBerth(t, filepath.Join(dir, "external.yaml"), nil)

	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "https://idp.example", "sub": "ci", "aud": []string{"other", "registry.example"},
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
			"access": []map[string]any{
				{"type": "repository", "name": "ext/app", "actions": []string{"pull", "push"}},
				{"type": "repository", "name": "public/*", "actions": []string{"*"}},
				{"type": "registry", "name": "catalog", "actions": []string{"*"}},
			},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(c jwt.MapClaims, header map[string]any, signer any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	clientWith := func(tok string) *regClient {
		c := &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: srv.httpClient()}
		c.hc.Transport = bearerTransport{authz: "Bearer " + tok, next: c.hc.Transport}
		return c
	}

	good := clientWith(sign(claims(nil), map[string]any{"kid": "k1"}, key))
	img := newImage(t, "linux", "amd64", 1)
	good.pushImage("ext/app", "v1", img)
	good.pushImage("public/lib", "v1", img)
	good.checkImage("ext/app", img)
	if got := good.catalog(); !equalSorted(got, []string{"ext/app", "public/lib"}) {
		t.Errorf("catalog with the token: %v", got)
	}
	if st := good.request("DELETE", "/v2/ext/app/manifests/"+img.Manifest.Digest(), nil).Status; st != http.StatusUnauthorized {
		t.Errorf("delete outside the token's access: %d", st)
	}
	if st := good.request("POST", "/v2/ext/other/blobs/uploads/", nil).Status; st != http.StatusUnauthorized {
		t.Errorf("push to another repository: %d", st)
	}

	// x5c: a certificate chained to the configured root.
	x5c := []string{base64.StdEncoding.EncodeToString(leafPair.Certificate[0])}
	clientWith(sign(claims(nil), map[string]any{"x5c": x5c}, leafPair.PrivateKey)).checkImage("ext/app", img)

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	roguePEM, rogueKeyPEM, _ := newCA(t, "rogue").leaf(t, "issuer signing", false)
	rogue := mustKeyPair(t, roguePEM, rogueKeyPEM)
	jwkJSON, _ := json.Marshal(ecJWK(key, "k1"))
	hmacKey := sha256.Sum256(jwkJSON)
	for name, tok := range map[string]string{
		"wrong audience":              sign(claims(func(c jwt.MapClaims) { c["aud"] = "berth" }), nil, key),
		"wrong issuer":                sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), nil, key),
		"expired":                     sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), nil, key),
		"unknown key":                 sign(claims(nil), map[string]any{"kid": "k1"}, other),
		"x5c not chained to the root": sign(claims(nil), map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(rogue.Certificate[0])}}, rogue.PrivateKey),
		"HS256": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(hmacKey[:])
			return s
		}(),
	} {
		c := clientWith(tok)
		r := c.request("GET", "/v2/ext/app/manifests/v1", nil, "Accept", manifestAccept)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %s", name, r)
			continue
		}
		if h := r.Header.Get("WWW-Authenticate"); h != `Bearer realm="https://idp.example/token",service="registry.example",scope="repository:ext/app:pull",error="invalid_token"` {
			t.Errorf("%s: challenge %s", name, h)
		}
	}
	// Without a token, the anonymous rules apply.
	anon := &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: srv.httpClient()}
	anon.checkImage("public/lib", img)
	if got := anon.catalog(); !equalSorted(got, []string{"public/lib"}) {
		t.Errorf("anonymous catalog: %v", got)
	}
}
