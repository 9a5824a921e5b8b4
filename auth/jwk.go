package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is a public JSON Web Key (RFC 7517) of the kinds berth verifies: RSA,
// EC (P-256, P-384, P-521) and OKP (Ed25519).
type JWK struct {
	Kty string   `json:"kty"`
	Kid string   `json:"kid,omitempty"`
	Use string   `json:"use,omitempty"`
	Alg string   `json:"alg,omitempty"`
	Crv string   `json:"crv,omitempty"`
	X   string   `json:"x,omitempty"`
	Y   string   `json:"y,omitempty"`
	N   string   `json:"n,omitempty"`
	E   string   `json:"e,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

var b64 = base64.RawURLEncoding

// PublicKey decodes the key. Private members, if any, are ignored.
func (k JWK) PublicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("jwk %q: unsupported curve %q", k.Kid, k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("jwk %q: %w", k.Kid, err)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, fmt.Errorf("jwk %q: coordinates of the wrong size", k.Kid)
		}
		// Parse through the uncompressed point form, which checks that the
		// point is on the curve.
		point := append([]byte{4}, append(x, y...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("jwk %q: %w", k.Kid, err)
		}
		return pub, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("jwk %q: unsupported curve %q", k.Kid, k.Crv)
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwk %q: bad Ed25519 key", k.Kid)
		}
		return ed25519.PublicKey(x), nil
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("jwk %q: %w", k.Kid, err)
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("jwk %q: bad RSA exponent", k.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("jwk %q: RSA keys under 2048 bits are refused", k.Kid)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("jwk %q: unsupported key type %q", k.Kid, k.Kty)
}

// NewJWK describes a public key as a JWK whose kid is its RFC 7638
// thumbprint.
func NewJWK(pub crypto.PublicKey) (JWK, error) {
	var k JWK
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			return JWK{}, err
		}
		size := (len(b) - 1) / 2
		k = JWK{Kty: "EC", Crv: p.Curve.Params().Name, X: b64.EncodeToString(b[1 : 1+size]), Y: b64.EncodeToString(b[1+size:])}
	case ed25519.PublicKey:
		k = JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(p)}
	case *rsa.PublicKey:
		k = JWK{Kty: "RSA", N: b64.EncodeToString(p.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())}
	default:
		return JWK{}, fmt.Errorf("unsupported public key type %T", pub)
	}
	k.Kid = k.thumbprint()
	return k, nil
}

// thumbprint is the RFC 7638 thumbprint: the SHA-256 of the required
// members in lexical order, without spaces.
func (k JWK) thumbprint() string {
	var s string
	switch k.Kty {
	case "EC":
		s = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Crv, k.X, k.Y)
	case "OKP":
		s = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, k.Crv, k.X)
	case "RSA":
		s = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	}
	sum := sha256.Sum256([]byte(s))
	return b64.EncodeToString(sum[:])
}

// parseJWKS decodes a key set. Keys that fail to decode are reported
// together; the good ones are still returned.
func parseJWKS(data []byte) ([]verificationKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []verificationKey
	var errs []error
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, verificationKey{kid: k.Kid, alg: k.Alg, key: pub})
	}
	if len(keys) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("jwks: no signing keys"))
	}
	return keys, errors.Join(errs...)
}

// verificationKey is a public key from a key set.
type verificationKey struct {
	kid string
	alg string // empty when the set does not pin one
	key crypto.PublicKey
}
