package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultExternalAlgorithms are the algorithms accepted from an external
// issuer when none are configured. Symmetric algorithms and "none" are
// never accepted: a verifier that holds only public keys cannot use them
// safely.
var DefaultExternalAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ExternalOptions configure the verification of an external issuer's
// tokens.
type ExternalOptions struct {
	// Issuer is the required iss; Audience the required aud (one of the
	// token's audiences when it has several).
	Issuer, Audience string
	// JWKS is a key set file or an http(s) URL serving one.
	JWKS string
	// RootCerts is a PEM bundle: tokens whose x5c header holds a chain to
	// one of these roots are verified with the chain's leaf key.
	RootCerts string
	// Algorithms is the allow-list; DefaultExternalAlgorithms when empty.
	Algorithms []string
	// Leeway is the clock skew tolerated for exp, nbf and iat.
	Leeway time.Duration
	// Client fetches a JWKS URL; a client with a 10s timeout when nil.
	Client *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives problems with the key set.
	Log *slog.Logger
}

// Limits on key sets and certificate chains.
const (
	maxJWKSSize      = 1 << 20
	maxChainLength   = 8
	jwksRefetchAfter = time.Hour
	jwksMinInterval  = 30 * time.Second
)

// External verifies tokens of an external issuer: signed by a key from a
// JWKS (file or URL), or by a certificate whose chain (x5c) leads to a
// configured root. berth only verifies them; the issuer decides what they
// grant, in the access claim.
type External struct {
	opts  ExternalOptions
	algs  []string
	roots *x509.CertPool
	isURL bool

	mu        sync.Mutex
	keys      []verificationKey
	stamp     fileStamp
	fetchedAt time.Time
	triedAt   time.Time
}

// NewExternal checks the options and loads the keys. A JWKS URL that cannot
// be fetched now is logged and tried again when a token needs it.
func NewExternal(opts ExternalOptions) (*External, error) {
	if opts.Issuer == "" {
		return nil, errors.New("external issuer: the issuer (iss) to accept is required")
	}
	if opts.Audience == "" {
		return nil, errors.New("external issuer: the audience (aud) to accept is required")
	}
	if opts.JWKS == "" && opts.RootCerts == "" {
		return nil, errors.New("external issuer: a JWKS (file or URL) or a root certificate bundle is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	e := &External{opts: opts, algs: opts.Algorithms}
	if len(e.algs) == 0 {
		e.algs = DefaultExternalAlgorithms
	}
	for _, a := range e.algs {
		if !slices.Contains(DefaultExternalAlgorithms, a) {
			return nil, fmt.Errorf("external issuer: algorithm %q is not allowed (choose from %s)", a, strings.Join(DefaultExternalAlgorithms, ", "))
		}
	}
	if opts.RootCerts != "" {
		pem, err := os.ReadFile(opts.RootCerts)
		if err != nil {
			return nil, fmt.Errorf("external issuer: root certificates: %w", err)
		}
		e.roots = x509.NewCertPool()
		if !e.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("external issuer: no certificates in %s", opts.RootCerts)
		}
	}
	if opts.JWKS != "" {
		e.isURL = strings.HasPrefix(opts.JWKS, "https://") || strings.HasPrefix(opts.JWKS, "http://")
		e.mu.Lock()
		err := e.loadLocked()
		e.mu.Unlock()
		if err != nil {
			if !e.isURL {
				return nil, fmt.Errorf("external issuer: %w", err)
			}
			opts.Log.Warn("external issuer: cannot fetch the key set yet", "url", opts.JWKS, "err", err)
		}
	}
	return e, nil
}

// loadLocked (re)reads the key set: a file when it changed, a URL when it
// was never fetched or is old. Failures keep the keys already known.
func (e *External) loadLocked() error {
	if !e.isURL {
		st, err := statFile(e.opts.JWKS)
		if err != nil {
			return err
		}
		if !st.exists {
			return fmt.Errorf("key set %s does not exist", e.opts.JWKS)
		}
		if st == e.stamp && e.keys != nil {
			return nil
		}
		data, err := readLimited(e.opts.JWKS, maxJWKSSize)
		if err != nil {
			return err
		}
		keys, err := parseJWKS(data)
		if len(keys) > 0 {
			e.keys, e.stamp = keys, st
		}
		return err
	}
	e.triedAt = e.opts.Now()
	data, err := e.fetch()
	if err != nil {
		return err
	}
	keys, err := parseJWKS(data)
	if len(keys) > 0 {
		e.keys, e.fetchedAt = keys, e.opts.Now()
	}
	return err
}

func (e *External) fetch() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.opts.JWKS, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", e.opts.JWKS, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", e.opts.JWKS, maxJWKSSize)
	}
	return data, nil
}

// keysFor returns the keys that may have signed a token with kid and alg,
// refreshing the set when kid is unknown or the set is old.
func (e *External) keysFor(kid, alg string) []verificationKey {
	if e.opts.JWKS == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	known := func() bool {
		for _, k := range e.keys {
			if kid == "" || k.kid == kid {
				return true
			}
		}
		return false
	}
	switch {
	case !e.isURL:
		if err := e.loadLocked(); err != nil {
			e.opts.Log.Warn("external issuer: key set", "file", e.opts.JWKS, "err", err)
		}
	case (!known() || now.Sub(e.fetchedAt) > jwksRefetchAfter) && now.Sub(e.triedAt) > jwksMinInterval:
		if err := e.loadLocked(); err != nil {
			e.opts.Log.Warn("external issuer: key set", "url", e.opts.JWKS, "err", err)
		}
	}
	var out []verificationKey
	for _, k := range e.keys {
		if (kid == "" || k.kid == kid) && (k.alg == "" || k.alg == alg) {
			out = append(out, k)
		}
	}
	return out
}

// chainKey verifies an x5c chain against the roots and returns the leaf's
// public key.
func (e *External) chainKey(x5c any) (any, error) {
	list, ok := x5c.([]any)
	if !ok || len(list) == 0 || len(list) > maxChainLength {
		return nil, errors.New("x5c: want a list of 1 to 8 certificates")
	}
	var certs []*x509.Certificate
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("x5c: entries must be strings")
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         e.roots,
		Intermediates: inter,
		CurrentTime:   e.opts.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("x5c: %w", err)
	}
	return certs[0].PublicKey, nil
}

func (e *External) keyFunc(t *jwt.Token) (any, error) {
	// A chain to a configured root is a trust decision of its own: when the
	// token carries one, it is the chain that must verify.
	if x5c, ok := t.Header["x5c"]; ok && e.roots != nil {
		return e.chainKey(x5c)
	}
	kid, _ := t.Header["kid"].(string)
	keys := e.keysFor(kid, t.Method.Alg())
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key for kid %q", kid)
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.key)
	}
	return set, nil
}

// Verify implements Verifier.
func (e *External) Verify(raw string) (Identity, error) {
	var c rawClaims
	_, err := jwt.ParseWithClaims(raw, &c, e.keyFunc,
		jwt.WithValidMethods(e.algs),
		jwt.WithIssuer(e.opts.Issuer),
		jwt.WithAudience(e.opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(e.opts.Leeway),
		jwt.WithTimeFunc(e.opts.Now),
	)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: token: %v", ErrInvalidCredentials, err)
	}
	if c.Use != "" {
		return Identity{}, fmt.Errorf("%w: not an access token", ErrInvalidCredentials)
	}
	id := Identity{Name: c.Subject, Method: MethodToken, External: true, Token: []Access{}}
	if c.Access != nil {
		id.Token = *c.Access
	}
	return id, nil
}
