package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of the tokens berth issues: the registered ones
// (iss, sub, aud, exp, nbf, iat, jti) and the Docker token spec's access.
type Claims struct {
	jwt.RegisteredClaims
	// Access is what the token grants; present (possibly empty) in every
	// access token.
	Access []Access `json:"access"`
}

// refreshClaims are the claims of a refresh token: who, and a fingerprint
// of the password at the time, so that a removed user or a changed
// password ends the token.
type refreshClaims struct {
	jwt.RegisteredClaims
	Use         string `json:"use"`
	Fingerprint string `json:"pwf"`
}

// refreshUse marks refresh tokens, which are never access tokens.
const refreshUse = "refresh"

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	// Issuer is the iss claim; Service the aud claim of access tokens.
	Issuer, Service string
	// TTL is the life of access tokens; RefreshTTL that of refresh tokens.
	TTL, RefreshTTL time.Duration
	// Leeway is the clock skew tolerated when verifying.
	Leeway time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Issuer signs and verifies berth's own tokens.
type Issuer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
	opts   IssuerOptions
}

// NewIssuer returns an issuer signing with key (ECDSA P-256 → ES256,
// P-384 → ES384, Ed25519 → EdDSA, RSA → RS256).
func NewIssuer(key crypto.Signer, opts IssuerOptions) (*Issuer, error) {
	method, err := methodFor(key)
	if err != nil {
		return nil, err
	}
	jwk, err := NewJWK(key.Public())
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Issuer{key: key, method: method, kid: jwk.Kid, opts: opts}, nil
}

func methodFor(key crypto.Signer) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s (want P-256 or P-384)", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA keys under 2048 bits are refused")
		}
		return jwt.SigningMethodRS256, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// Algorithm is the JWS algorithm of the issuer's tokens.
func (i *Issuer) Algorithm() string { return i.method.Alg() }

// PublicJWK is the issuer's public key, for verifiers elsewhere.
func (i *Issuer) PublicJWK() JWK {
	k, _ := NewJWK(i.key.Public())
	k.Alg, k.Use = i.method.Alg(), "sig"
	return k
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

func (i *Issuer) sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(i.method, claims)
	t.Header["kid"] = i.kid
	return t.SignedString(i.key)
}

// Issue signs an access token for subject (empty for anonymous) granting
// access, and returns it with its claims.
func (i *Issuer) Issue(subject string, access []Access) (string, *Claims, error) {
	now := i.opts.Now().Truncate(time.Second)
	if access == nil {
		access = []Access{}
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.opts.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{i.opts.Service},
			ExpiresAt: jwt.NewNumericDate(now.Add(i.opts.TTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newJTI(),
		},
		Access: access,
	}
	s, err := i.sign(c)
	return s, c, err
}

// IssueRefresh signs a refresh token for user, bound to the fingerprint of
// the user's password.
func (i *Issuer) IssueRefresh(user, fingerprint string) (string, error) {
	now := i.opts.Now().Truncate(time.Second)
	return i.sign(&refreshClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.opts.Issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{i.opts.Service},
			ExpiresAt: jwt.NewNumericDate(now.Add(i.opts.RefreshTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newJTI(),
		},
		Use:         refreshUse,
		Fingerprint: fingerprint,
	})
}

func (i *Issuer) parserOptions() []jwt.ParserOption {
	return []jwt.ParserOption{
		jwt.WithValidMethods([]string{i.method.Alg()}),
		jwt.WithIssuer(i.opts.Issuer),
		jwt.WithAudience(i.opts.Service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(i.opts.Leeway),
		jwt.WithTimeFunc(i.opts.Now),
	}
}

func (i *Issuer) keyFunc(*jwt.Token) (any, error) { return i.key.Public(), nil }

// rawClaims decodes both kinds of token, to tell them apart after the
// signature and registered claims have been checked.
type rawClaims struct {
	jwt.RegisteredClaims
	Access      *[]Access `json:"access"`
	Use         string    `json:"use"`
	Fingerprint string    `json:"pwf"`
}

// Verify implements Verifier for access tokens: signature by this issuer's
// key with its algorithm only, iss, aud, exp, nbf and iat. Refresh tokens
// are refused.
func (i *Issuer) Verify(raw string) (Identity, error) {
	var c rawClaims
	if _, err := jwt.ParseWithClaims(raw, &c, i.keyFunc, i.parserOptions()...); err != nil {
		return Identity{}, fmt.Errorf("%w: token: %v", ErrInvalidCredentials, err)
	}
	if c.Use != "" || c.Access == nil {
		return Identity{}, fmt.Errorf("%w: not an access token", ErrInvalidCredentials)
	}
	return Identity{Name: c.Subject, Method: MethodToken, Token: *c.Access}, nil
}

// VerifyRefresh checks a refresh token and returns its user and password
// fingerprint.
func (i *Issuer) VerifyRefresh(raw string) (user, fingerprint string, err error) {
	var c rawClaims
	if _, err := jwt.ParseWithClaims(raw, &c, i.keyFunc, i.parserOptions()...); err != nil {
		return "", "", fmt.Errorf("%w: refresh token: %v", ErrInvalidCredentials, err)
	}
	if c.Use != refreshUse || c.Subject == "" || c.Fingerprint == "" {
		return "", "", fmt.Errorf("%w: not a refresh token", ErrInvalidCredentials)
	}
	return c.Subject, c.Fingerprint, nil
}

// Key algorithms for generated keys.
const (
	KeyES256 = "ES256"
	KeyEdDSA = "EdDSA"
)

// LoadKey reads a PEM private key (PKCS #8, SEC 1 "EC PRIVATE KEY" or
// PKCS #1 "RSA PRIVATE KEY").
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKey(data)
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key in PEM data")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

// LoadOrCreateKey reads the key at path, or generates one with algorithm
// alg (KeyES256 or KeyEdDSA) and writes it there, readable only by its
// owner, when the file does not exist. created reports a new key.
func LoadOrCreateKey(path, alg string) (key crypto.Signer, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	switch alg {
	case KeyEdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case KeyES256, "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, false, fmt.Errorf("cannot generate a key for algorithm %q (want %s or %s)", alg, KeyES256, KeyEdDSA)
	}
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	// O_EXCL: if another process created the key meanwhile, use its key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		key, err = LoadKey(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, err
	}
	return key, true, nil
}
