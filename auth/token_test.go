package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clock is a settable time source for tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func newTestIssuer(t *testing.T, c *clock) (*Issuer, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(key, IssuerOptions{Issuer: "berth", Service: "berth-svc", TTL: 5 * time.Minute, RefreshTTL: time.Hour, Leeway: 10 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return iss, key
}

// forge signs claims with key and method, as an attacker or a test issuer
// would.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(c *clock) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "berth", "sub": "admin", "aud": "berth-svc",
		"exp": c.t.Add(time.Minute).Unix(), "nbf": c.t.Unix(), "iat": c.t.Unix(), "jti": "x",
		"access": []map[string]any{{"type": "repository", "name": "a", "actions": []string{"pull"}}},
	}
}

func TestIssuerRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClock()
	iss, _ := newTestIssuer(t, c)
	access := []Access{{TypeRepository, "a/b", []string{"pull", "push"}}}
	tok, claims, err := iss.Issue("admin", access)
	if err != nil {
		t.Fatal(err)
	}
	// The claims the spec asks for are all there.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"} {
		if _, ok := m[k]; !ok {
			t.Errorf("claim %s missing from %s", k, payload)
		}
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if !strings.Contains(string(header), `"alg":"ES256"`) || !strings.Contains(string(header), `"kid"`) {
		t.Errorf("header %s", header)
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) != 5*time.Minute {
		t.Errorf("ttl %v", claims.ExpiresAt.Sub(claims.IssuedAt.Time))
	}
	id, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "admin" || id.Method != MethodToken || id.External || len(id.Token) != 1 || id.Token[0].Name != "a/b" {
		t.Errorf("identity %+v", id)
	}
	// An anonymous token with no access still is a token (and grants nothing).
	tok, _, _ = iss.Issue("", nil)
	id, err = iss.Verify(tok)
	if err != nil || id.Method != MethodToken || id.Token == nil || len(id.Token) != 0 {
		t.Errorf("anonymous token: %+v, %v", id, err)
	}
	// Expiry, with leeway.
	tok, _, _ = iss.Issue("admin", access)
	c.advance(5*time.Minute + 5*time.Second)
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	c.advance(10 * time.Second)
	if _, err := iss.Verify(tok); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("expired token: %v", err)
	}
}

func TestIssuerRefuses(t *testing.T) {
	t.Parallel()
	c := newClock()
	iss, key := newTestIssuer(t, c)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(k string, v any) jwt.MapClaims {
		m := validClaims(c)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	good := forge(t, jwt.SigningMethodES256, key, validClaims(c), nil)
	if _, err := iss.Verify(good); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	refresh, _ := iss.IssueRefresh("admin", "fp")
	parts := strings.Split(good, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	tampered := with("access", []map[string]any{{"type": "repository", "name": "*", "actions": []string{"*"}}})
	tamperedPayload, _ := json.Marshal(tampered)
	cases := map[string]string{
		"expired":                   forge(t, jwt.SigningMethodES256, key, with("exp", c.t.Add(-time.Hour).Unix()), nil),
		"no exp":                    forge(t, jwt.SigningMethodES256, key, with("exp", nil), nil),
		"not yet valid":             forge(t, jwt.SigningMethodES256, key, with("nbf", c.t.Add(time.Hour).Unix()), nil),
		"issued later":              forge(t, jwt.SigningMethodES256, key, with("iat", c.t.Add(time.Hour).Unix()), nil),
		"other audience":            forge(t, jwt.SigningMethodES256, key, with("aud", "other"), nil),
		"audience list":             forge(t, jwt.SigningMethodES256, key, with("aud", []string{"x", "y"}), nil),
		"other issuer":              forge(t, jwt.SigningMethodES256, key, with("iss", "evil"), nil),
		"other key":                 forge(t, jwt.SigningMethodES256, otherKey, validClaims(c), nil),
		"alg none":                  forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(c), nil),
		"HS256 with public key PEM": forge(t, jwt.SigningMethodHS256, pubPEM, validClaims(c), nil),
		"HS256 with public key DER": forge(t, jwt.SigningMethodHS256, pubDER, validClaims(c), nil),
		"tampered signature":        parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"tampered payload":          parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2],
		"no signature":              parts[0] + "." + parts[1] + ".",
		"refresh token":             refresh,
		"no access claim":           forge(t, jwt.SigningMethodES256, key, with("access", nil), nil),
		"garbage":                   "not.a.token",
		"empty":                     "",
	}
	for name, tok := range cases {
		if id, err := iss.Verify(tok); err == nil {
			t.Errorf("%s: accepted as %+v", name, id)
		} else if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: error %v is not ErrInvalidCredentials", name, err)
		}
	}
	// Refresh tokens verify only as refresh tokens.
	if user, fp, err := iss.VerifyRefresh(refresh); err != nil || user != "admin" || fp != "fp" {
		t.Errorf("VerifyRefresh = %q, %q, %v", user, fp, err)
	}
	if _, _, err := iss.VerifyRefresh(good); err == nil {
		t.Error("an access token passed as a refresh token")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, alg := range []string{KeyES256, KeyEdDSA} {
		path := filepath.Join(dir, alg+".pem")
		k1, created, err := LoadOrCreateKey(path, alg)
		if err != nil || !created {
			t.Fatalf("%s: %v, created %v", alg, err, created)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file mode %v (%v), want 0600", alg, fi.Mode(), err)
		}
		k2, created, err := LoadOrCreateKey(path, alg)
		if err != nil || created {
			t.Fatalf("%s: second load: %v, created %v", alg, err, created)
		}
		if !reflectEqualKeys(k1.Public(), k2.Public()) {
			t.Errorf("%s: a different key after reload", alg)
		}
		iss, err := NewIssuer(k2, IssuerOptions{Issuer: "i", Service: "s", TTL: time.Minute})
		if err != nil || iss.Algorithm() != alg {
			t.Errorf("%s: issuer algorithm %v, %v", alg, iss, err)
		}
	}
	if _, _, err := LoadOrCreateKey(filepath.Join(dir, "x.pem"), "HS256"); err == nil {
		t.Error("generated a key for HS256")
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateKey(bad, KeyES256); err == nil {
		t.Error("a corrupt key file was accepted or replaced")
	}
}

func reflectEqualKeys(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(x crypto.PublicKey) bool }
	ea, ok := a.(eq)
	return ok && ea.Equal(b)
}

func TestEdDSAIssuer(t *testing.T) {
	t.Parallel()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := NewIssuer(key, IssuerOptions{Issuer: "berth", Service: "s", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := iss.Issue("u", nil)
	if !strings.HasPrefix(tok, "eyJhbGciOiJFZERTQSIs") { // {"alg":"EdDSA",
		t.Errorf("token header: %s", tok[:20])
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Fatal(err)
	}
}
