package transport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Credentials are what a user proves their identity with.
type Credentials struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token (the config file's "identitytoken"); when
	// set, bearer tokens are fetched with grant_type=refresh_token.
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as it is.
	RegistryToken string
}

// Empty reports whether there is nothing to authenticate with.
func (c Credentials) Empty() bool {
	return c.Username == "" && c.Password == "" && c.IdentityToken == "" && c.RegistryToken == ""
}

// CredentialFunc returns the credentials for a registry host ("host[:port]"); empty ones
// (and a nil error) mean anonymous access.
type CredentialFunc func(ctx context.Context, host string) (Credentials, error)

// AuthOptions configure NewAuth.
type AuthOptions struct {
	// Host is the registry's "host[:port]": credentials are looked up for it, and only
	// requests to it are authorized.
	Host string
	// Credentials returns the credentials for Host; nil means anonymous.
	Credentials CredentialFunc
	// Challenges are the ones a ping found, so the first request can carry authorization.
	Challenges []Challenge
	// TokenTransport sends token requests (default: the transport being wrapped).
	TokenTransport http.RoundTripper
	// ClientID is sent with OAuth2 token requests (default "berth-client").
	ClientID string
	// OAuthPassword fetches tokens with an OAuth2 POST, grant_type=password, when there is
	// a username and password (a login does this to obtain a refresh token). Token
	// services that do not accept POST (404 or 405) are asked by GET instead.
	OAuthPassword bool
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
}

// Auth is the RoundTripper that authorizes requests to one registry host. It remembers the
// host's challenges, answers Basic ones with the credentials, and for Bearer ones fetches a
// token per set of scopes, caches it until shortly before it expires, and sends it. A 401
// answer updates the challenges (a registry asks for more scope with error="insufficient_scope")
// and the request is sent once more with a fresh token if its body can be replayed.
type Auth struct {
	inner http.RoundTripper
	opts  AuthOptions

	mu         sync.Mutex
	challenges []Challenge
	tokens     map[string]Token
	refresh    string // newest refresh token a token service handed out
}

// NewAuth wraps inner with authorization for opts.Host.
func NewAuth(inner http.RoundTripper, opts AuthOptions) *Auth {
	if opts.TokenTransport == nil {
		opts.TokenTransport = inner
	}
	if opts.ClientID == "" {
		opts.ClientID = "berth-client"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Auth{inner: inner, opts: opts, challenges: opts.Challenges, tokens: map[string]Token{}}
}

// SetChallenges replaces the known challenges (after a ping).
func (a *Auth) SetChallenges(chs []Challenge) {
	a.mu.Lock()
	a.challenges = chs
	a.mu.Unlock()
}

// RefreshToken returns the newest OAuth2 refresh token a token service handed out, if any:
// a login stores it as the identity token.
func (a *Auth) RefreshToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refresh
}

// RoundTrip authorizes and sends req, answering one 401 challenge.
func (a *Auth) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != a.opts.Host {
		// Never send this registry's credentials elsewhere (a redirect to storage, a Link to
		// another host).
		return a.inner.RoundTrip(req)
	}
	scopes := MergeScopes(append(ScopesForRequest(req.Method, req.URL.Path), ScopesFromContext(req.Context())...))
	authed, sent, err := a.authorize(req, scopes, false)
	if err != nil {
		return nil, err
	}
	resp, err := a.inner.RoundTrip(authed)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	chs := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if len(chs) == 0 || !replayable(req) {
		return resp, nil
	}
	if bearer, ok := ChallengeFor(chs, "bearer"); ok && bearer.Params["scope"] != "" {
		scopes = MergeScopes(append(scopes, bearer.Params["scope"]))
	}
	a.mu.Lock()
	a.challenges = chs
	a.mu.Unlock()
	// Send again only if this attempt can differ from the last: a fresh token, or credentials
	// where none were sent.
	retry, sent2, err := a.authorize(req, scopes, true)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if sent2 == "" || (sent2 == sent && !strings.HasPrefix(sent2, "Bearer ")) {
		return resp, nil
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		retry.Body = body
	}
	return a.inner.RoundTrip(retry)
}

// replayable reports whether req can be sent a second time.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// authorize returns a copy of req with an Authorization header for the known challenges,
// and that header's value ("" if none). fresh skips the token cache.
func (a *Auth) authorize(req *http.Request, scopes []string, fresh bool) (*http.Request, string, error) {
	if req.Header.Get("Authorization") != "" {
		return req, req.Header.Get("Authorization"), nil
	}
	a.mu.Lock()
	chs := a.challenges
	a.mu.Unlock()
	var value string
	if bearer, ok := ChallengeFor(chs, "bearer"); ok {
		tok, err := a.token(req.Context(), bearer, scopes, fresh)
		if err != nil {
			return nil, "", err
		}
		value = "Bearer " + tok.Token
	} else if _, ok := ChallengeFor(chs, "basic"); ok {
		creds, err := a.credentials(req.Context(), scopes)
		if err != nil {
			return nil, "", err
		}
		if creds.Username != "" || creds.Password != "" {
			value = "Basic " + basicAuth(creds.Username, creds.Password)
		}
	}
	if value == "" {
		return req, "", nil
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", value)
	return r, value, nil
}

func (a *Auth) credentials(ctx context.Context, scopes []string) (Credentials, error) {
	if a.opts.Credentials == nil {
		return Credentials{}, nil
	}
	c, err := a.opts.Credentials(context.WithValue(ctx, credentialScopesKey{}, scopes), a.opts.Host)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials for %s: %w", a.opts.Host, credentialError{err})
	}
	return c, nil
}

// credentialError is a failure of the credential source: its message, matching
// ErrCredentials and what it wraps.
type credentialError struct{ err error }

func (e credentialError) Error() string   { return e.err.Error() }
func (e credentialError) Unwrap() []error { return []error{ErrCredentials, e.err} }

type credentialScopesKey struct{}

// CredentialScopes returns, inside a CredentialFunc called by Auth, the scopes the request
// being authorized needs, so that a credential source that issues credentials per scope (a
// cloud provider's token exchange) can ask for just those. Outside such a call it is nil.
func CredentialScopes(ctx context.Context) []string {
	s, _ := ctx.Value(credentialScopesKey{}).([]string)
	return s
}

// ForgetTokens drops the cached bearer tokens, so the next request fetches one with fresh
// credentials (after a credential source was told its credentials were refused).
func (a *Auth) ForgetTokens() {
	a.mu.Lock()
	a.tokens = map[string]Token{}
	a.mu.Unlock()
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// tokenSlack is how long before its expiry a cached token is no longer used.
const tokenSlack = 10 * time.Second

// token returns a cached token for the challenge and scopes, or fetches one.
func (a *Auth) token(ctx context.Context, ch Challenge, scopes []string, fresh bool) (Token, error) {
	key := ch.Params["realm"] + "\x00" + ch.Params["service"] + "\x00" + strings.Join(scopes, " ")
	now := a.opts.Now()
	if !fresh {
		a.mu.Lock()
		tok, ok := a.tokens[key]
		a.mu.Unlock()
		if ok && now.Add(tokenSlack).Before(tok.Expires) {
			return tok, nil
		}
	}
	creds, err := a.credentials(ctx, scopes)
	if err != nil {
		return Token{}, err
	}
	a.mu.Lock()
	if a.refresh != "" && creds.IdentityToken == "" && creds.Username == "" {
		creds.IdentityToken = a.refresh
	}
	a.mu.Unlock()
	tok, err := FetchToken(ctx, a.opts.TokenTransport, ch, creds, scopes, TokenOptions{
		ClientID: a.opts.ClientID, OAuthPassword: a.opts.OAuthPassword, Now: a.opts.Now,
	})
	if err != nil {
		return Token{}, err
	}
	a.mu.Lock()
	a.tokens[key] = tok
	if tok.RefreshToken != "" {
		a.refresh = tok.RefreshToken
	}
	a.mu.Unlock()
	return tok, nil
}

// Token is a bearer token from a token service.
type Token struct {
	Token   string
	Expires time.Time
	// RefreshToken is set when an OAuth2 exchange handed one out.
	RefreshToken string
}

// TokenOptions tune FetchToken.
type TokenOptions struct {
	ClientID      string
	OAuthPassword bool
	Now           func() time.Time
}

// minTokenLife is what a token without expires_in is good for (the token spec's default).
const minTokenLife = 60 * time.Second

// FetchToken asks the token service of a Bearer challenge for a token for scopes.
//
// With an identity token it POSTs grant_type=refresh_token (OAuth2); with opts.OAuthPassword
// and a username it POSTs grant_type=password. Otherwise, or when the service answers such a
// POST with 404 or 405, it GETs realm?service=...&scope=... (one scope parameter each), with
// Basic credentials if there are any. A registry token in creds is used as it is.
func FetchToken(ctx context.Context, rt http.RoundTripper, ch Challenge, creds Credentials, scopes []string, opts TokenOptions) (Token, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if creds.RegistryToken != "" {
		return Token{Token: creds.RegistryToken, Expires: now().Add(24 * time.Hour)}, nil
	}
	realm := ch.Params["realm"]
	if realm == "" {
		return Token{}, errors.New("bearer challenge without realm")
	}
	ru, err := url.Parse(realm)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" {
		return Token{}, fmt.Errorf("bearer challenge with invalid realm %q", realm)
	}
	service := ch.Params["service"]
	hc := &http.Client{Transport: rt}
	if opts.ClientID == "" {
		opts.ClientID = "berth-client"
	}

	var form url.Values
	switch {
	case creds.IdentityToken != "":
		form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {creds.IdentityToken}}
	case opts.OAuthPassword && creds.Username != "":
		form = url.Values{"grant_type": {"password"}, "username": {creds.Username}, "password": {creds.Password},
			"access_type": {"offline"}}
	}
	if form != nil {
		form.Set("service", service)
		form.Set("client_id", opts.ClientID)
		if len(scopes) > 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		body := form.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ru.String(), strings.NewReader(body))
		if err != nil {
			return Token{}, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			return Token{}, fmt.Errorf("token from %s: %w", ru.Host, err)
		}
		if (resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed) ||
			creds.Username == "" {
			return readToken(resp, now)
		}
		resp.Body.Close()
	}

	q := ru.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	if opts.OAuthPassword && creds.Username != "" {
		// Asking for a refresh token lets a login store it instead of the password.
		q.Set("offline_token", "true")
		q.Set("client_id", opts.ClientID)
	}
	ru.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
	if err != nil {
		return Token{}, err
	}
	if creds.Username != "" || creds.Password != "" {
		req.SetBasicAuth(creds.Username, creds.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("token from %s: %w", ru.Host, err)
	}
	return readToken(resp, now)
}

// maxTokenBody bounds a token answer.
const maxTokenBody = 1 << 20

func readToken(resp *http.Response, now func() time.Time) (Token, error) {
	if err := CheckResponse(resp, http.StatusOK); err != nil {
		return Token{}, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Token        string `json:"token"`
		AccessToken  string `json:"access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		IssuedAt     string `json:"issued_at"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenBody)).Decode(&body); err != nil {
		return Token{}, fmt.Errorf("token request: %w: decoding the answer: %w", ErrBadToken, err)
	}
	tok := Token{Token: body.Token, RefreshToken: body.RefreshToken}
	if tok.Token == "" {
		tok.Token = body.AccessToken
	}
	if tok.Token == "" {
		return Token{}, fmt.Errorf("token request: %w: the answer holds no token", ErrBadToken)
	}
	life := time.Duration(body.ExpiresIn) * time.Second
	if life < minTokenLife {
		life = minTokenLife
	}
	issued := now()
	if t, err := time.Parse(time.RFC3339, body.IssuedAt); err == nil && t.Before(issued) && issued.Sub(t) < life {
		issued = t
	}
	tok.Expires = issued.Add(life)
	return tok, nil
}
