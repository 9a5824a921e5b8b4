package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func writeJWKS(t *testing.T, path string, keys ...JWK) {
	t.Helper()
	b, _ := json.Marshal(JWKS{Keys: keys})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJWK(t *testing.T, pub any) JWK {
	t.Helper()
	k, err := NewJWK(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func externalClaims(c *clock) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://idp.example", "sub": "ci-bot", "aud": []string{"other", "berth"},
		"exp": c.t.Add(time.Minute).Unix(), "iat": c.t.Unix(),
		"access": []map[string]any{
			{"type": "repository", "name": "team/*", "actions": []string{"pull", "push"}},
			{"type": "repository", "name": "*", "actions": []string{"pull"}},
		},
	}
}

func TestExternalJWKSFile(t *testing.T) {
	t.Parallel()
	c := newClock()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	ecJWK, rsJWK, edJWK := mustJWK(t, &ec.PublicKey), mustJWK(t, &rs.PublicKey), mustJWK(t, ed.Public())
	writeJWKS(t, jwks, ecJWK, rsJWK, edJWK)
	v, err := NewExternal(ExternalOptions{Issuer: "https://idp.example", Audience: "berth", JWKS: jwks, Leeway: 30 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	kid := func(k JWK) map[string]any { return map[string]any{"kid": k.Kid} }
	for name, tok := range map[string]string{
		"ES256 with kid":    forge(t, jwt.SigningMethodES256, ec, externalClaims(c), kid(ecJWK)),
		"ES256 without kid": forge(t, jwt.SigningMethodES256, ec, externalClaims(c), nil),
		"RS256":             forge(t, jwt.SigningMethodRS256, rs, externalClaims(c), kid(rsJWK)),
		"PS256":             forge(t, jwt.SigningMethodPS256, rs, externalClaims(c), nil),
		"EdDSA":             forge(t, jwt.SigningMethodEdDSA, ed, externalClaims(c), kid(edJWK)),
	} {
		id, err := v.Verify(tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if id.Name != "ci-bot" || !id.External || id.Method != MethodToken {
			t.Errorf("%s: identity %+v", name, id)
		}
		if !covers(id.Token, TypeRepository, "team/app", ActionPush) || covers(id.Token, TypeRepository, "x", ActionPush) ||
			!covers(id.Token, TypeRepository, "any/thing", ActionPull) {
			t.Errorf("%s: access %+v", name, id.Token)
		}
	}

	with := func(k string, val any) jwt.MapClaims {
		m := externalClaims(c)
		if val == nil {
			delete(m, k)
		} else {
			m[k] = val
		}
		return m
	}
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecX, _ := base64.RawURLEncoding.DecodeString(ecJWK.X)
	refused := map[string]string{
		"other issuer":          forge(t, jwt.SigningMethodES256, ec, with("iss", "https://evil.example"), nil),
		"no issuer":             forge(t, jwt.SigningMethodES256, ec, with("iss", nil), nil),
		"other audience":        forge(t, jwt.SigningMethodES256, ec, with("aud", "other"), nil),
		"audience list without": forge(t, jwt.SigningMethodES256, ec, with("aud", []string{"a", "b"}), nil),
		"expired past leeway":   forge(t, jwt.SigningMethodES256, ec, with("exp", c.t.Add(-time.Minute).Unix()), nil),
		"no exp":                forge(t, jwt.SigningMethodES256, ec, with("exp", nil), nil),
		"nbf past leeway":       forge(t, jwt.SigningMethodES256, ec, with("nbf", c.t.Add(time.Minute).Unix()), nil),
		"unknown key":           forge(t, jwt.SigningMethodES256, other, externalClaims(c), nil),
		"unknown kid":           forge(t, jwt.SigningMethodES256, other, externalClaims(c), map[string]any{"kid": "nope"}),
		"kid of another key":    forge(t, jwt.SigningMethodES256, other, externalClaims(c), kid(ecJWK)),
		"alg none":              forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, externalClaims(c), nil),
		"HS256 with public DER": forge(t, jwt.SigningMethodHS256, ecPub, externalClaims(c), kid(ecJWK)),
		"HS256 with jwk x":      forge(t, jwt.SigningMethodHS256, ecX, externalClaims(c), kid(ecJWK)),
		"embedded jwk":          forge(t, jwt.SigningMethodES256, other, externalClaims(c), map[string]any{"jwk": mustJWK(t, &other.PublicKey)}),
		"refresh use":           forge(t, jwt.SigningMethodES256, ec, with("use", "refresh"), nil),
	}
	for name, tok := range refused {
		if id, err := v.Verify(tok); err == nil {
			t.Errorf("%s: accepted as %+v", name, id)
		} else if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: %v is not ErrInvalidCredentials", name, err)
		}
	}
	// Within the leeway.
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, ec, with("exp", c.t.Add(-20*time.Second).Unix()), nil)); err != nil {
		t.Errorf("expired within leeway: %v", err)
	}
	// No access claim: a valid token that grants nothing.
	id, err := v.Verify(forge(t, jwt.SigningMethodES256, ec, with("access", nil), nil))
	if err != nil || len(id.Token) != 0 || id.Method != MethodToken {
		t.Errorf("no access claim: %+v, %v", id, err)
	}

	// The file is reread when it changes: a rotated key is picked up.
	writeJWKS(t, jwks, mustJWK(t, &other.PublicKey))
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, other, externalClaims(c), nil)); err != nil {
		t.Errorf("rotated key: %v", err)
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, ec, externalClaims(c), nil)); err == nil {
		t.Error("a key removed from the set still verifies")
	}
}

func TestExternalAlgorithmAllowList(t *testing.T) {
	t.Parallel()
	c := newClock()
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwks, mustJWK(t, &rs.PublicKey))
	v, err := NewExternal(ExternalOptions{Issuer: "https://idp.example", Audience: "berth", JWKS: jwks, Algorithms: []string{"PS256"}, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodPS256, rs, externalClaims(c), nil)); err != nil {
		t.Errorf("PS256: %v", err)
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodRS256, rs, externalClaims(c), nil)); err == nil {
		t.Error("RS256 accepted outside the allow-list")
	}
	for _, alg := range []string{"HS256", "none"} {
		if _, err := NewExternal(ExternalOptions{Issuer: "i", Audience: "a", JWKS: jwks, Algorithms: []string{alg}}); err == nil {
			t.Errorf("allow-list with %s accepted", alg)
		}
	}
}

func TestExternalJWKSURL(t *testing.T) {
	t.Parallel()
	c := newClock()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var current atomic.Value
	current.Store(mustJWK(t, &k1.PublicKey))
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(JWKS{Keys: []JWK{current.Load().(JWK)}})
	}))
	defer srv.Close()
	v, err := NewExternal(ExternalOptions{Issuer: "https://idp.example", Audience: "berth", JWKS: srv.URL, Now: c.now, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, k1, externalClaims(c), nil)); err != nil {
		t.Fatal(err)
	}
	// The issuer rotates its key: an unknown kid triggers a new fetch, at
	// most once per interval.
	j2 := mustJWK(t, &k2.PublicKey)
	current.Store(j2)
	tok2 := forge(t, jwt.SigningMethodES256, k2, externalClaims(c), map[string]any{"kid": j2.Kid})
	if _, err := v.Verify(tok2); err == nil {
		t.Fatal("verified with a key not fetched yet (the refetch interval has not passed)")
	}
	c.advance(jwksMinInterval + time.Second)
	if _, err := v.Verify(tok2); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	n := fetches.Load()
	for range 5 {
		v.Verify(forge(t, jwt.SigningMethodES256, k1, externalClaims(c), map[string]any{"kid": "unknown"}))
	}
	if fetches.Load() != n {
		t.Errorf("unknown kids caused %d fetches within the interval", fetches.Load()-n)
	}
}

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(100 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate (DER) and its key.
func (ca *testCA) issue(t *testing.T, cn string, notAfter time.Time, ext ...x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  ext,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestExternalX5C(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now()}
	root, rogue := newTestCA(t, "root"), newTestCA(t, "rogue")
	roots := filepath.Join(t.TempDir(), "roots.pem")
	os.WriteFile(roots, root.pem, 0o644)
	v, err := NewExternal(ExternalOptions{Issuer: "https://idp.example", Audience: "berth", RootCerts: roots, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	leaf, key := root.issue(t, "signer", time.Now().Add(time.Hour))
	x5c := func(ders ...[]byte) map[string]any {
		var list []string
		for _, d := range ders {
			list = append(list, base64.StdEncoding.EncodeToString(d))
		}
		return map[string]any{"x5c": list}
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, key, externalClaims(c), x5c(leaf, root.cert.Raw))); err != nil {
		t.Fatalf("chain to the root: %v", err)
	}
	if _, err := v.Verify(forge(t, jwt.SigningMethodES256, key, externalClaims(c), x5c(leaf))); err != nil {
		t.Fatalf("leaf alone: %v", err)
	}
	rogueLeaf, rogueKey := rogue.issue(t, "signer", time.Now().Add(time.Hour))
	expiredLeaf, expiredKey := root.issue(t, "signer", time.Now().Add(-time.Minute))
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tok := range map[string]string{
		"untrusted root":        forge(t, jwt.SigningMethodES256, rogueKey, externalClaims(c), x5c(rogueLeaf, rogue.cert.Raw)),
		"self-signed as leaf":   forge(t, jwt.SigningMethodES256, rogue.key, externalClaims(c), x5c(rogue.cert.Raw)),
		"expired leaf":          forge(t, jwt.SigningMethodES256, expiredKey, externalClaims(c), x5c(expiredLeaf)),
		"signed by another key": forge(t, jwt.SigningMethodES256, otherKey, externalClaims(c), x5c(leaf)),
		"no x5c":                forge(t, jwt.SigningMethodES256, key, externalClaims(c), nil),
		"garbage x5c":           forge(t, jwt.SigningMethodES256, key, externalClaims(c), map[string]any{"x5c": []string{"!!"}}),
		"x5c not a list":        forge(t, jwt.SigningMethodES256, key, externalClaims(c), map[string]any{"x5c": "abc"}),
	} {
		if id, err := v.Verify(tok); err == nil {
			t.Errorf("%s: accepted as %+v", name, id)
		}
	}
}

func TestJWKRoundTrip(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, pub := range []any{&ec.PublicKey, &rs.PublicKey, ed.Public()} {
		j := mustJWK(t, pub)
		got, err := j.PublicKey()
		if err != nil || !reflectEqualKeys(pub, got) {
			t.Errorf("%T: %v", pub, err)
		}
	}
	// RFC 7638's example thumbprint.
	k := JWK{Kty: "RSA", E: "AQAB", N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	if tp := k.thumbprint(); tp != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("thumbprint %s", tp)
	}
	for _, bad := range []string{
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[]}`,
		`not json`,
	} {
		if keys, err := parseJWKS([]byte(bad)); err == nil || len(keys) > 0 {
			t.Errorf("parseJWKS(%s) = %v, %v", bad, keys, err)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`)
	f.Fuzz(func(t *testing.T, data string) {
		keys, _ := parseJWKS([]byte(data))
		for _, k := range keys {
			if k.key == nil {
				t.Fatal("nil key accepted")
			}
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	c := newClock()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, _ := NewIssuer(key, IssuerOptions{Issuer: "berth", Service: "s", TTL: time.Minute, Now: c.now})
	good, _, _ := iss.Issue("u", nil)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := iss.Verify(tok)
		if err == nil && tok != good {
			// Only tokens signed with the key verify; anything else that does is a
			// re-encoding of the one good token at most.
			if id.Name != "u" {
				t.Fatalf("forged token accepted: %q as %+v", tok, id)
			}
		}
	})
}
