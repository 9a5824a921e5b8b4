// Package providertest serves, on loopback, the wire protocols of the
// cloud services berth's upstream providers talk to, as their
// documentation describes them: ECR's GetAuthorizationToken (the AWS JSON
// 1.1 protocol), Microsoft Entra's token endpoint and ACR's
// /oauth2/exchange and /oauth2/token, Google's OAuth2 token endpoint (the
// JWT bearer grant of a service account), Docker Hub's search API, and a
// registry front (Gateway) that authenticates requests the way each
// registry does before passing them to a real registry behind it.
//
// The servers issue real credentials with real lifetimes, check what they
// are sent, and count requests, so tests can see a provider fetch, cache,
// renew and refuse credentials.
package providertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Mode is how a Gateway authenticates registry requests.
type Mode int

const (
	// Basic: every /v2/ request carries Basic credentials that Check
	// accepts (ECR).
	Basic Mode = iota + 1
	// Token: the distribution token flow; the token endpoint (GET
	// /v2/token, as Artifact Registry's) takes Basic credentials that
	// Check accepts.
	Token
	// ACR: Azure Container Registry's flow: POST /oauth2/exchange trades
	// an Entra access token (CheckAAD) for a refresh token, POST
	// /oauth2/token a refresh token for an access token.
	ACR
)

// Gateway is a registry front on loopback that authenticates requests as
// a cloud registry does and passes the authenticated ones to a real
// registry.
type Gateway struct {
	srv  *httptest.Server
	mode Mode
	// Check accepts Basic credentials (Basic and Token modes).
	Check func(user, pass string) bool
	// CheckAAD accepts an Entra access token (ACR mode).
	CheckAAD func(token string) bool
	// RefreshLifetime is the lifetime of ACR refresh tokens (default 3h).
	RefreshLifetime time.Duration

	mu      sync.Mutex
	tokens  map[string]time.Time // access tokens issued, by expiry
	refresh map[string]time.Time // ACR refresh tokens issued
	counts  map[string]int
}

// NewGateway starts a Gateway in front of the registry at target
// (http://HOST:PORT). Close stops it.
func NewGateway(target string, mode Mode) (*Gateway, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	g := &Gateway{mode: mode, tokens: map[string]time.Time{}, refresh: map[string]time.Time{}, counts: map[string]int{}, RefreshLifetime: 3 * time.Hour}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.serve(w, r, rp)
	}))
	return g, nil
}

// URL is the gateway's base URL.
func (g *Gateway) URL() string { return g.srv.URL }

// Host is the gateway's host:port.
func (g *Gateway) Host() string { return strings.TrimPrefix(g.srv.URL, "http://") }

// Close stops the gateway.
func (g *Gateway) Close() { g.srv.Close() }

// Count returns how many requests of a kind the gateway received: "token"
// (token endpoint), "exchange" (ACR's), "refused" (401 answers), or
// "METHOD manifests|blobs REF" for registry requests it passed on.
func (g *Gateway) Count(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[key]
}

// Counts returns a copy of every count.
func (g *Gateway) Counts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.counts))
	for k, v := range g.counts {
		out[k] = v
	}
	return out
}

// RevokeAll forgets every token it issued: the next request with one is
// refused, as after a key rotation.
func (g *Gateway) RevokeAll() {
	g.mu.Lock()
	g.tokens = map[string]time.Time{}
	g.refresh = map[string]time.Time{}
	g.mu.Unlock()
}

func (g *Gateway) count(key string) {
	g.mu.Lock()
	g.counts[key]++
	g.mu.Unlock()
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	switch {
	case g.mode == Token && r.URL.Path == "/v2/token":
		g.count("token")
		user, pass, ok := r.BasicAuth()
		if !ok || g.Check == nil || !g.Check(user, pass) {
			g.count("refused")
			writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid credentials")
			return
		}
		tok := g.issue(5 * time.Minute)
		writeJSON(w, map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": time.Now().UTC().Format(time.RFC3339)})
		return
	case g.mode == ACR && r.URL.Path == "/oauth2/exchange":
		g.acrExchange(w, r)
		return
	case g.mode == ACR && r.URL.Path == "/oauth2/token":
		g.acrToken(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2/") {
		http.NotFound(w, r)
		return
	}
	if !g.authorized(r) {
		g.count("refused")
		g.challenge(w, r)
		return
	}
	g.count(CountKey(r))
	rp.ServeHTTP(w, r)
}

func (g *Gateway) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch g.mode {
	case Basic:
		user, pass, ok := r.BasicAuth()
		return ok && g.Check != nil && g.Check(user, pass)
	default:
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return false
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		exp, ok := g.tokens[tok]
		return ok && time.Now().Before(exp)
	}
}

func (g *Gateway) challenge(w http.ResponseWriter, r *http.Request) {
	host := g.Host()
	switch g.mode {
	case Basic:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="https://%s/",service="ecr.amazonaws.com"`, host))
	case Token:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/v2/token",service="%s",scope="%s"`, g.URL(), host, scopeOf(r)))
	case ACR:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/oauth2/token",service="%s",scope="%s"`, g.URL(), strings.Split(host, ":")[0], scopeOf(r)))
	}
	writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

// scopeOf is the pull scope of a registry request.
func scopeOf(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	for _, k := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			return "repository:" + p[:i] + ":pull"
		}
	}
	if p == "_catalog" {
		return "registry:catalog:*"
	}
	return ""
}

func (g *Gateway) acrExchange(w http.ResponseWriter, r *http.Request) {
	g.count("exchange")
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "access_token" || r.PostForm.Get("service") == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if g.CheckAAD == nil || !g.CheckAAD(r.PostForm.Get("access_token")) {
		g.count("refused")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_grant")
		return
	}
	exp := time.Now().Add(g.RefreshLifetime)
	rt := fakeJWT(map[string]any{"exp": exp.Unix(), "grant_type": "refresh_token", "jti": randomString()})
	g.mu.Lock()
	g.refresh[rt] = exp
	g.mu.Unlock()
	writeJSON(w, map[string]any{"refresh_token": rt})
}

func (g *Gateway) acrToken(w http.ResponseWriter, r *http.Request) {
	g.count("token")
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	g.mu.Lock()
	exp, ok := g.refresh[r.PostForm.Get("refresh_token")]
	g.mu.Unlock()
	if !ok || !time.Now().Before(exp) {
		g.count("refused")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_grant")
		return
	}
	writeJSON(w, map[string]any{"access_token": g.issue(5 * time.Minute)})
}

func (g *Gateway) issue(life time.Duration) string {
	tok := randomString()
	g.mu.Lock()
	g.tokens[tok] = time.Now().Add(life)
	g.mu.Unlock()
	return tok
}

// CountKey names a registry request for counting: "METHOD manifests|blobs
// REF", or "METHOD other".
func CountKey(r *http.Request) string {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
	n := len(segs)
	if n >= 3 && (segs[n-2] == "manifests" || segs[n-2] == "blobs") {
		return r.Method + " " + segs[n-2] + " " + segs[n-1]
	}
	return r.Method + " other"
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func writeOAuthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}
