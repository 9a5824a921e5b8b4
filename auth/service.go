package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/berthhq/berth/registry"
)

// maxTokenForm bounds the body of an OAuth2 token request.
const maxTokenForm = 64 << 10

// Service is the built-in token service: the Docker token protocol (GET
// with Basic credentials or none) and its OAuth2 form (POST with
// grant_type password or refresh_token). What it grants is the
// intersection of the scopes asked for and what the rules allow; an
// anonymous request gets a token for what anonymous callers may do.
type Service struct {
	gate *Gate
}

// TokenResponse is the body of a successful token request.
type TokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// TokenRequest is a parsed token request, GET or POST.
type TokenRequest struct {
	Service  string
	Scopes   []Access
	Account  string
	ClientID string
	// Offline asks for a refresh token.
	Offline bool
	// GrantType is "" for GET, else the OAuth2 grant type.
	GrantType          string
	Username, Password string
	RefreshToken       string
}

// ParseTokenRequest reads the parameters of a token request: the query of
// a GET, the form body of a POST (whose query is ignored, so that secrets
// never travel in URLs that end up in logs).
func ParseTokenRequest(r *http.Request) (*TokenRequest, error) {
	var v map[string][]string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, err
		}
		v = q
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("form: %w", err)
		}
		v = r.PostForm
	default:
		return nil, fmt.Errorf("method %s", r.Method)
	}
	get := func(k string) string {
		if len(v[k]) > 0 {
			return v[k][0]
		}
		return ""
	}
	scopes, err := ParseScopes(v["scope"])
	if err != nil {
		return nil, err
	}
	tr := &TokenRequest{
		Service:  get("service"),
		Scopes:   scopes,
		Account:  get("account"),
		ClientID: get("client_id"),
	}
	if r.Method == http.MethodPost {
		tr.GrantType = get("grant_type")
		tr.Username, tr.Password = get("username"), get("password")
		tr.RefreshToken = get("refresh_token")
		tr.Offline = get("access_type") == "offline"
	} else {
		tr.Offline, _ = strconv.ParseBool(get("offline_token"))
	}
	return tr, nil
}

// parseQuery is url.ParseQuery with a bound on the size of the query.
func parseQuery(raw string) (map[string][]string, error) {
	if len(raw) > maxTokenForm {
		return nil, fmt.Errorf("query longer than %d bytes", maxTokenForm)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return q, nil
}

// ServeHTTP answers token requests. Responses are never cached.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		s.post(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		registry.WriteError(w, r, &registry.Error{Code: registry.ErrUnsupported, Message: r.Method + " is not allowed on the token service; allowed: GET, HEAD, POST"})
	}
}

// get serves the Docker token protocol.
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	g := s.gate
	tr, err := ParseTokenRequest(r)
	if err != nil {
		registry.WriteError(w, r, &registry.Error{Code: registry.ErrNameInvalid, Message: err.Error()})
		return
	}
	if tr.Service != "" && tr.Service != g.opts.Service {
		registry.WriteError(w, r, &registry.Error{Code: registry.ErrDenied, Message: fmt.Sprintf("this token service issues tokens for service %q, not %q", g.opts.Service, tr.Service)})
		return
	}
	id, err := s.credentials(r)
	if err == nil && tr.Account != "" && !id.Anonymous() && tr.Account != id.Name {
		err = fmt.Errorf("%w: account %q does not match the credentials", ErrInvalidCredentials, tr.Account)
	}
	if err != nil {
		var re *RetryError
		if errors.As(err, &re) {
			g.refuse(w, r, err, need{})
			return
		}
		h := http.Header{}
		h.Set("WWW-Authenticate", basicChallenge(g.opts.BasicRealm))
		registry.WriteError(w, r, &registry.Error{Code: registry.ErrUnauthorized, Message: "invalid username or password", Header: h})
		return
	}
	refresh := ""
	if tr.Offline && id.Method == MethodBasic {
		if refresh, err = s.refreshToken(id.Name); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.issue(w, r, id, tr, refresh, false)
}

// credentials authenticates a token request: Basic credentials, else a
// verified client certificate, else anonymous.
func (s *Service) credentials(r *http.Request) (Identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if id, ok := certIdentity(r); ok {
			return id, nil
		}
		return Identity{}, nil
	}
	scheme, cred, err := ParseAuthorization(h)
	if err != nil {
		return Identity{}, err
	}
	if scheme != schemeBasic {
		return Identity{}, ErrWrongScheme
	}
	user, pass, err := ParseBasic(cred)
	if err != nil {
		return Identity{}, err
	}
	return s.gate.login(r, user, pass)
}

func (s *Service) refreshToken(user string) (string, error) {
	fp, ok := s.gate.opts.Users.Fingerprint(user)
	if !ok {
		return "", fmt.Errorf("%w: user %q unknown", ErrInvalidCredentials, user)
	}
	return s.gate.opts.Issuer.IssueRefresh(user, fp)
}

// oauthError is an RFC 6749 error response.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}

// post serves the OAuth2 form: grant_type password or refresh_token.
func (s *Service) post(w http.ResponseWriter, r *http.Request) {
	g := s.gate
	tr, err := ParseTokenRequest(r)
	if err != nil {
		code := "invalid_request"
		if errors.Is(err, ErrScopeInvalid) {
			code = "invalid_scope"
		}
		oauthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	if tr.Service != "" && tr.Service != g.opts.Service {
		oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("this token service issues tokens for service %q", g.opts.Service))
		return
	}
	var id Identity
	refresh := ""
	switch tr.GrantType {
	case "password":
		if tr.Username == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "username is required")
			return
		}
		if id, err = g.login(r, tr.Username, tr.Password); err == nil && tr.Offline {
			refresh, err = s.refreshToken(id.Name)
		}
	case "refresh_token":
		id, err = s.observedRefresh(r, tr.RefreshToken)
		refresh = tr.RefreshToken
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token")
		return
	}
	if err != nil {
		var re *RetryError
		if errors.As(err, &re) {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(re.Wait.Round(time.Second)/time.Second))))
			oauthError(w, http.StatusTooManyRequests, "invalid_grant", "too many failed logins; try again later")
			return
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			s.fail(w, r, err)
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", "invalid credentials")
		return
	}
	s.issue(w, r, id, tr, refresh, true)
}

// refresh checks a refresh token and that its user still exists with the
// same password.
func (s *Service) refresh(raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: no refresh token", ErrInvalidCredentials)
	}
	user, fp, err := s.gate.opts.Issuer.VerifyRefresh(raw)
	if err != nil {
		return Identity{}, err
	}
	cur, ok := s.gate.opts.Users.Fingerprint(user)
	if !ok || !sameFingerprint(cur, fp) {
		s.gate.log.Info("refresh token refused: user removed or password changed", "user", user)
		return Identity{}, fmt.Errorf("%w: refresh token of user %q no longer valid", ErrInvalidCredentials, user)
	}
	return Identity{Name: user, Method: MethodBasic}, nil
}

// observedRefresh is refresh, counted and audited.
func (s *Service) observedRefresh(r *http.Request, raw string) (Identity, error) {
	id, err := s.refresh(raw)
	s.gate.observe(r, "refresh", id.Name, err)
	return id, err
}

// issue grants what the rules allow of the request and answers with a
// token.
func (s *Service) issue(w http.ResponseWriter, r *http.Request, id Identity, tr *TokenRequest, refresh string, oauth bool) {
	g := s.gate
	granted := g.opts.Rules.Grant(id, tr.Scopes)
	token, claims, err := g.opts.Issuer.Issue(id.Name, granted)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := TokenResponse{
		Token:        token,
		AccessToken:  token,
		ExpiresIn:    int(claims.ExpiresAt.Sub(claims.IssuedAt.Time) / time.Second),
		IssuedAt:     claims.IssuedAt.UTC().Format(time.RFC3339),
		RefreshToken: refresh,
	}
	if oauth {
		resp.Scope = FormatScopes(granted)
	}
	grant := tr.GrantType
	if grant == "" {
		grant = "get"
	}
	g.log.Info("token issued", "user", id.Name, "grant", grant, "client_id", tr.ClientID, "scope", FormatScopes(granted),
		"refresh", refresh != "", "remote", r.RemoteAddr)
	g.auditToken(r, id, grant, FormatScopes(granted))
	body, err := json.Marshal(resp)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.gate.log.Error("token service failed", "err", err)
	registry.WriteError(w, r, &registry.Error{Code: registry.ErrUnknown})
}
