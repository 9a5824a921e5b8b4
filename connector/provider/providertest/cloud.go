package providertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ECR serves ECR's GetAuthorizationToken in the AWS JSON 1.1 protocol
// (POST /, X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken),
// for requests signed (SigV4) with AccessKeyID. The tokens it issues are
// base64("AWS:PASSWORD") and live for Lifetime; Valid tells a Gateway in
// Basic mode which passwords are current.
type ECR struct {
	srv *httptest.Server
	// Lifetime of the tokens (default 12h, as ECR's).
	Lifetime time.Duration

	mu          sync.Mutex
	accessKeyID string
	malformed   bool
	expired     bool
	issued      map[string]time.Time
	requests    int
}

// NewECR starts an ECR API stand-in accepting requests signed with
// accessKeyID.
func NewECR(accessKeyID string) *ECR {
	e := &ECR{accessKeyID: accessKeyID, Lifetime: 12 * time.Hour, issued: map[string]time.Time{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

// URL is the endpoint to point the SDK at (ecr.endpoint).
func (e *ECR) URL() string { return e.srv.URL }

// Close stops the server.
func (e *ECR) Close() { e.srv.Close() }

// Requests counts GetAuthorizationToken calls.
func (e *ECR) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

// SetAnswers makes the next answers carry a token that is not base64
// (malformed) or that expired already (expired).
func (e *ECR) SetAnswers(malformed, expired bool) {
	e.mu.Lock()
	e.malformed, e.expired = malformed, expired
	e.mu.Unlock()
}

// Rotate revokes every token issued and accepts requests signed with
// accessKeyID only from now on.
func (e *ECR) Rotate(accessKeyID string) {
	e.mu.Lock()
	e.accessKeyID = accessKeyID
	e.issued = map[string]time.Time{}
	e.mu.Unlock()
}

// Valid reports whether AWS:pass is a current token.
func (e *ECR) Valid(user, pass string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.issued[pass]
	return user == "AWS" && ok && time.Now().Before(exp)
}

func (e *ECR) serve(w http.ResponseWriter, r *http.Request) {
	awsError := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", randomString())
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		awsError(http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		awsError(http.StatusBadRequest, "SerializationException", "content type "+ct)
		return
	}
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/ecr/aws4_request, SignedHeaders=..., Signature=...
	auth := r.Header.Get("Authorization")
	cred := ""
	if i := strings.Index(auth, "Credential="); strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") && i > 0 {
		cred, _, _ = strings.Cut(auth[i+len("Credential="):], "/")
	}
	e.mu.Lock()
	want := e.accessKeyID
	e.mu.Unlock()
	if cred != want || !strings.Contains(auth, "/ecr/aws4_request") {
		awsError(http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	var in struct {
		RegistryIds []string `json:"registryIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		awsError(http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	e.mu.Lock()
	e.requests++
	pass := randomString() + randomString()
	exp := time.Now().Add(e.Lifetime)
	if e.expired {
		exp = time.Now().Add(-time.Minute)
	}
	e.issued[pass] = exp
	malformed := e.malformed
	e.mu.Unlock()
	tok := base64.StdEncoding.EncodeToString([]byte("AWS:" + pass))
	if malformed {
		tok = "%%%not-base64%%%"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": tok,
		"expiresAt":          float64(exp.UnixMilli()) / 1000,
		"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	}}})
}

// Entra serves Microsoft Entra's OpenID configuration and v2.0 token
// endpoint (client credentials grant with a client secret) over TLS, as
// the authority host a service principal signs in at.
type Entra struct {
	srv          *httptest.Server
	Tenant       string
	ClientID     string
	ClientSecret string
	// Lifetime of the access tokens (default 1h).
	Lifetime time.Duration

	mu       sync.Mutex
	issued   map[string]time.Time
	requests int
}

// NewEntra starts the stand-in for one service principal.
func NewEntra(tenant, clientID, secret string) *Entra {
	e := &Entra{Tenant: tenant, ClientID: clientID, ClientSecret: secret, Lifetime: time.Hour, issued: map[string]time.Time{}}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(e.serve))
	return e
}

// URL is the authority host (acr.authorityHost).
func (e *Entra) URL() string { return e.srv.URL }

// CertPEM is the server's certificate, to trust (upstream.tls.caFile).
func (e *Entra) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
}

// TLSConfig trusts the server.
func (e *Entra) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Close stops the server.
func (e *Entra) Close() { e.srv.Close() }

// Requests counts token requests.
func (e *Entra) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

// Valid reports whether tok is a current access token.
func (e *Entra) Valid(tok string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.issued[tok]
	return ok && time.Now().Before(exp)
}

func (e *Entra) serve(w http.ResponseWriter, r *http.Request) {
	base := e.srv.URL + "/" + e.Tenant
	switch r.URL.Path {
	case "/" + e.Tenant + "/v2.0/.well-known/openid-configuration":
		writeJSON(w, map[string]any{
			"token_endpoint":                        base + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
			"issuer":                                "https://login.microsoftonline.com/" + e.Tenant + "/v2.0",
			"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"tenant_region_scope":                   "EU",
		})
	case "/" + e.Tenant + "/oauth2/v2.0/token":
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
			return
		}
		if r.PostForm.Get("client_id") != e.ClientID || r.PostForm.Get("client_secret") != e.ClientSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": []int{7000215}})
			return
		}
		e.mu.Lock()
		e.requests++
		tok := fakeJWT(map[string]any{"aud": "https://management.azure.com", "tid": e.Tenant, "appid": e.ClientID, "jti": randomString()})
		e.issued[tok] = time.Now().Add(e.Lifetime)
		e.mu.Unlock()
		writeJSON(w, map[string]any{"token_type": "Bearer", "expires_in": int(e.Lifetime / time.Second),
			"ext_expires_in": int(e.Lifetime / time.Second), "access_token": tok})
	default:
		http.NotFound(w, r)
	}
}

// Google serves Google's OAuth2 token endpoint for the JWT bearer grant
// of a service account: it checks the assertion's RS256 signature
// against the account's public key, its issuer, audience and scope.
type Google struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	Email string
	// Lifetime of the access tokens (expires_in; default 1h).
	Lifetime time.Duration

	mu       sync.Mutex
	issued   map[string]time.Time
	requests int
}

// NewGoogle starts the stand-in for one service account, whose key it
// makes.
func NewGoogle(email string) (*Google, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	g := &Google{key: key, Email: email, Lifetime: time.Hour, issued: map[string]time.Time{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	return g, nil
}

// TokenURL is the token endpoint (the key's token_uri).
func (g *Google) TokenURL() string { return g.srv.URL + "/token" }

// Close stops the server.
func (g *Google) Close() { g.srv.Close() }

// KeyJSON is the service account key file, whose token_uri is this
// server.
func (g *Google) KeyJSON() []byte {
	der := x509.MarshalPKCS1PrivateKey(g.key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "berth-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
		"client_email": g.Email, "client_id": "1", "token_uri": g.TokenURL(),
	})
	return b
}

// Requests counts token requests.
func (g *Google) Requests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

// Valid reports whether oauth2accesstoken:tok carries a current token.
func (g *Google) Valid(user, tok string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.issued[tok]
	return user == "oauth2accesstoken" && ok && time.Now().Before(exp)
}

func (g *Google) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if err := g.verify(r.PostForm.Get("assertion")); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	g.mu.Lock()
	g.requests++
	tok := "ya29." + randomString()
	g.issued[tok] = time.Now().Add(g.Lifetime)
	g.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": int(g.Lifetime / time.Second), "token_type": "Bearer"})
}

// verify checks a JWT assertion signed with the account's key.
func (g *Google) verify(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&g.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("invalid JWT signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct {
		Iss   string `json:"iss"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Exp   int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	switch {
	case c.Iss != g.Email:
		return fmt.Errorf("iss %q", c.Iss)
	case c.Aud != g.TokenURL():
		return fmt.Errorf("aud %q", c.Aud)
	case !strings.Contains(c.Scope, "https://www.googleapis.com/auth/cloud-platform"):
		return fmt.Errorf("scope %q", c.Scope)
	case time.Unix(c.Exp, 0).Before(time.Now()):
		return fmt.Errorf("expired assertion")
	}
	return nil
}

// HubSearch serves Docker Hub's search API
// (GET /v2/search/repositories/?query=TERM&page_size=N) over a fixed list.
type HubSearch struct {
	srv     *httptest.Server
	Results []HubRepo

	mu      sync.Mutex
	queries []url.Values
}

// HubRepo is one repository of a HubSearch.
type HubRepo struct {
	Name        string // repo_name: "alpine" for official images, "org/name" else
	Description string
	Stars       int
	Official    bool
}

// NewHubSearch starts the stand-in.
func NewHubSearch(repos ...HubRepo) *HubSearch {
	h := &HubSearch{Results: repos}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	return h
}

// URL is the search API's base URL (dockerhub.searchURL).
func (h *HubSearch) URL() string { return h.srv.URL }

// Close stops the server.
func (h *HubSearch) Close() { h.srv.Close() }

// Queries returns the query strings received.
func (h *HubSearch) Queries() []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]url.Values(nil), h.queries...)
}

func (h *HubSearch) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/search/repositories/" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	h.mu.Lock()
	h.queries = append(h.queries, q)
	h.mu.Unlock()
	term := strings.ToLower(q.Get("query"))
	size := 25
	_, _ = fmt.Sscanf(q.Get("page_size"), "%d", &size)
	results := []map[string]any{}
	for _, repo := range h.Results {
		if len(results) >= size {
			break
		}
		if !strings.Contains(strings.ToLower(repo.Name+" "+repo.Description), term) {
			continue
		}
		owner := ""
		if o, _, ok := strings.Cut(repo.Name, "/"); ok {
			owner = o
		}
		results = append(results, map[string]any{
			"repo_name": repo.Name, "short_description": repo.Description, "star_count": repo.Stars,
			"pull_count": 1000, "repo_owner": owner, "is_automated": false, "is_official": repo.Official,
		})
	}
	writeJSON(w, map[string]any{"count": len(results), "next": "", "previous": "", "results": results})
}

// fakeJWT is an unsigned JWT with the given claims, the shape of the
// tokens Entra and ACR hand out (their signatures are for their own
// services to check).
func fakeJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(randomString()))
}
