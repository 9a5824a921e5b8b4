package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/registry"
)

// Modes of authentication.
const (
	// ModeBasic: Basic credentials checked against an htpasswd file.
	ModeBasic = "basic"
	// ModeToken: bearer tokens, from berth's own token service or from an
	// external issuer.
	ModeToken = "token"
)

// GateOptions configure a Gate.
type GateOptions struct {
	// Mode is ModeBasic or ModeToken.
	Mode string
	// Users checks passwords (basic mode, and the built-in token service).
	Users *Htpasswd
	// Rules decide access.
	Rules *Rules
	// Limiter slows down failed logins; nil for no limit.
	Limiter *Limiter
	// BasicRealm is the realm of Basic challenges.
	BasicRealm string
	// Verifier checks bearer tokens (token mode).
	Verifier Verifier
	// Issuer, when set in token mode, is berth's own: the Gate serves the
	// token service at the realm's path.
	Issuer *Issuer
	// Realm is the token realm: a path on this server or an absolute URL.
	Realm string
	// Service is the service name of challenges and tokens.
	Service string
	// TrustForwardedProto makes an absolute realm follow the
	// X-Forwarded-Proto header of a reverse proxy.
	TrustForwardedProto bool
	// Log receives failed logins and issued tokens, never secrets.
	Log *slog.Logger
	// Metrics, when set, counts credential checks by method and outcome.
	Metrics Metrics
	// Audit, when set, records every login (password check), token
	// refused or issued, and access refused to an authenticated caller.
	Audit *audit.Logger
}

// Gate stands between clients and the registry: it authenticates requests,
// answers the registry's Authorize and MayPull hooks and, with a built-in
// issuer, serves the token service.
type Gate struct {
	opts    GateOptions
	service *Service
	log     *slog.Logger
}

// NewGate checks the options and returns a Gate.
func NewGate(opts GateOptions) (*Gate, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Rules == nil {
		return nil, errors.New("auth: no rules")
	}
	if opts.BasicRealm == "" {
		opts.BasicRealm = "berth"
	}
	switch opts.Mode {
	case ModeBasic:
		if opts.Users == nil {
			return nil, errors.New("auth: basic mode needs an htpasswd file")
		}
	case ModeToken:
		if opts.Verifier == nil {
			return nil, errors.New("auth: token mode needs a verifier")
		}
		if opts.Realm == "" || opts.Service == "" {
			return nil, errors.New("auth: token mode needs a realm and a service")
		}
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", opts.Mode)
	}
	g := &Gate{opts: opts, log: opts.Log}
	if opts.Mode == ModeToken && opts.Issuer != nil {
		if opts.Users == nil {
			return nil, errors.New("auth: the token service needs an htpasswd file")
		}
		g.service = &Service{gate: g}
	}
	return g, nil
}

// RealmPath is the path the built-in token service answers on, or "" when
// there is none.
func (g *Gate) RealmPath() string {
	if g.service == nil {
		return ""
	}
	if u, err := url.Parse(g.opts.Realm); err == nil && u.IsAbs() {
		return u.Path
	}
	return g.opts.Realm
}

// Wrap returns a handler that authenticates each request once, for the
// Authorize and MayPull hooks to read, and serves the token service at its
// path.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	realm := g.RealmPath()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if realm != "" && r.URL.Path == realm {
			registry.SetFamily(r.Context(), registry.FamilyToken)
			g.service.ServeHTTP(w, r)
			return
		}
		id, err := g.authenticate(r)
		if err == nil && id.Name != "" {
			registry.SetUser(r.Context(), id.Name)
		}
		next.ServeHTTP(w, r.WithContext(withResult(r.Context(), &result{id: id, err: err})))
	})
}

// Authenticate implements Authenticator for registry requests: Basic in
// basic mode, bearer tokens in token mode, verified client certificates
// in both.
func (g *Gate) Authenticate(r *http.Request) (Identity, error) { return g.authenticate(r) }

func (g *Gate) authenticate(r *http.Request) (Identity, error) {
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
	switch {
	case scheme == schemeBasic && g.opts.Mode == ModeBasic:
		user, pass, err := ParseBasic(cred)
		if err != nil {
			return Identity{}, err
		}
		return g.login(r, user, pass)
	case scheme == schemeBearer && g.opts.Mode == ModeToken:
		id, err := g.opts.Verifier.Verify(cred)
		if g.opts.Metrics != nil {
			g.opts.Metrics.Authentication(MethodToken, err == nil)
		}
		if err != nil && g.opts.Audit != nil {
			g.observe(r, MethodToken, "", err)
		}
		return id, err
	}
	return Identity{}, ErrWrongScheme
}

// RetryError is ErrTooManyAttempts with the time to wait.
type RetryError struct{ Wait time.Duration }

func (e *RetryError) Error() string { return ErrTooManyAttempts.Error() }

// Unwrap makes errors.Is(err, ErrTooManyAttempts) hold.
func (e *RetryError) Unwrap() error { return ErrTooManyAttempts }

// login checks a password, counting failures against the guessing source:
// the client's address and the user it tried (see Limiter).
func (g *Gate) login(r *http.Request, user, password string) (Identity, error) {
	source := clientKey(r)
	if wait := g.opts.Limiter.Wait(source, user); wait > 0 {
		g.log.Warn("login refused: too many failures", "user", user, "remote", r.RemoteAddr)
		err := &RetryError{Wait: wait}
		g.observe(r, MethodBasic, user, err)
		return Identity{}, err
	}
	if err := g.opts.Users.Verify(user, password); err != nil {
		g.opts.Limiter.Fail(source, user)
		g.log.Info("login failed", "user", user, "remote", r.RemoteAddr, "err", err)
		g.observe(r, MethodBasic, user, err)
		return Identity{}, err
	}
	g.observe(r, MethodBasic, user, nil)
	registry.SetUser(r.Context(), user)
	return Identity{Name: user, Method: MethodBasic}, nil
}

// clientKey is the address failures are counted against: the host, or
// for IPv6 its /64, which one client usually holds whole.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

// need is what a request requires and what its challenge asks for.
type need struct {
	access    []Access // each with one action
	challenge []Access // the scopes to name in a challenge
	// admin: the rules must also make the caller an administrator
	// (Rules.Administers).
	admin bool
}

// required derives the access a routed request needs from the route's
// declared Access. A push is challenged for pull and push, as clients that
// push also read; a mount from another repository adds pull on it to the
// challenge, so that a client asking for exactly the challenged scopes gets
// a token that lets the mount succeed.
func required(r *http.Request, rt registry.Route) need {
	var n need
	one := func(typ, name, action string, challenge ...string) {
		n.access = append(n.access, Access{Type: typ, Name: name, Actions: []string{action}})
		n.challenge = append(n.challenge, Access{Type: typ, Name: name, Actions: challenge})
	}
	switch rt.Access {
	case registry.AccessCatalog:
		one(TypeRegistry, CatalogName, ActionAll, ActionAll)
	case registry.AccessAdmin:
		one(TypeRegistry, CatalogName, ActionAll, ActionAll)
		n.admin = true
	case registry.AccessPull:
		one(TypeRepository, rt.Name, ActionPull, ActionPull)
	case registry.AccessPush:
		one(TypeRepository, rt.Name, ActionPush, ActionPull, ActionPush)
	case registry.AccessDelete:
		one(TypeRepository, rt.Name, ActionDelete, ActionDelete)
	}
	if from := mountSource(r, rt); from != "" {
		n.challenge = append(n.challenge, Access{Type: TypeRepository, Name: from, Actions: []string{ActionPull}})
	}
	return n
}

// isBase reports whether the request is the API's base endpoint, which
// needs credentials (any valid ones) when authentication is on: clients
// learn from its challenge how to log in, and `docker login` checks the
// credentials there.
func isBase(r *http.Request, rt registry.Route) bool {
	return rt.Access == registry.AccessNone && rt.Name == "" && (r.URL.Path == "/v2/" || r.URL.Path == "/v2")
}

// allowed decides one access for an identity: a token must cover it, and
// unless the token is an external issuer's, the rules must allow the
// token's subject too (so a rule change also narrows tokens already out).
func (g *Gate) allowed(id Identity, a Access) bool {
	action := a.Actions[0]
	if id.Method == MethodToken {
		if !covers(id.Token, a.Type, a.Name, action) {
			return false
		}
		if id.External {
			return true
		}
	}
	return g.opts.Rules.Allowed(id, a.Type, a.Name, action)
}

// Authorize is the registry's Authorize hook.
func (g *Gate) Authorize(w http.ResponseWriter, r *http.Request, rt registry.Route) bool {
	res := resultFrom(r.Context())
	if res == nil {
		id, err := g.authenticate(r)
		res = &result{id: id, err: err}
	}
	n := required(r, rt)
	if res.err != nil {
		g.refuse(w, r, res.err, n)
		return false
	}
	id := res.id
	if isBase(r, rt) && id.Method == MethodNone {
		g.challenge(w, r, n, "")
		return false
	}
	for _, a := range n.access {
		if !g.allowed(id, a) {
			g.auditAccess(r, id, rt)
			g.deny(w, r, id, n)
			return false
		}
	}
	if n.admin && !g.Administers(id) {
		g.auditAccess(r, id, rt)
		g.deny(w, r, id, n)
		return false
	}
	if from := mountSource(r, rt); from != "" && id.Method == MethodToken && !covers(id.Token, TypeRepository, from, ActionPull) {
		// A mount reads its source: the token itself must grant pull on
		// it. When a token with that scope could be had (the account may
		// pull the source, or an external issuer decides), the client is
		// challenged for it, as distribution does; otherwise the registry
		// answers as for a blob it cannot mount (202, a new session).
		if id.External || g.opts.Rules.Allowed(id, TypeRepository, from, ActionPull) {
			g.challenge(w, r, n, "insufficient_scope")
			return false
		}
	}
	return true
}

// mountSource returns the repository a cross-repository mount reads from,
// or "".
func mountSource(r *http.Request, rt registry.Route) string {
	if r.Method != http.MethodPost || rt.Kind != registry.KindUploadStart {
		return ""
	}
	q := r.URL.Query()
	if from := q.Get("from"); q.Get("mount") != "" && from != rt.Name && registry.ValidName(from) {
		return from
	}
	return ""
}

// MayPull is the registry's MayPull hook: it judges the caller's account,
// not the scope of its token, since listing the catalog needs only the
// catalog scope. External tokens carry no account berth knows, so their
// access claim decides.
func (g *Gate) MayPull(r *http.Request, name string) bool {
	res := resultFrom(r.Context())
	if res == nil || res.err != nil {
		return false
	}
	if res.id.Method == MethodToken && res.id.External {
		return covers(res.id.Token, TypeRepository, name, ActionPull)
	}
	return g.opts.Rules.Allowed(res.id, TypeRepository, name, ActionPull)
}

// MayMount is the registry's MayMount hook: a cross-repository mount reads
// the source repository's blobs, so the caller needs pull on it as for any
// read: the rules must allow it and, with a token, the token itself must
// grant it (a token scoped to the target alone mounts nothing, as in
// distribution).
func (g *Gate) MayMount(r *http.Request, name string) bool {
	res := resultFrom(r.Context())
	if res == nil || res.err != nil {
		return false
	}
	return g.allowed(res.id, Access{Type: TypeRepository, Name: name, Actions: []string{ActionPull}})
}

// refuse answers a request whose credentials failed.
func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, err error, n need) {
	var re *RetryError
	if errors.As(err, &re) {
		secs := int(re.Wait.Round(time.Second) / time.Second)
		h := http.Header{}
		h.Set("Retry-After", strconv.Itoa(max(1, secs)))
		registry.WriteError(w, r, &registry.Error{Code: registry.ErrTooManyRequests, Message: "too many failed logins; try again later", Header: h})
		return
	}
	code := ""
	if g.opts.Mode == ModeToken && errors.Is(err, ErrInvalidCredentials) {
		code = "invalid_token"
		g.log.Debug("token refused", "err", err, "remote", r.RemoteAddr)
	}
	g.challenge(w, r, n, code)
}

// deny answers an authenticated request that lacks a right: 403 when the
// caller's account does not have it, 401 with a challenge when logging in
// or fetching a token with a wider scope could help.
func (g *Gate) deny(w http.ResponseWriter, r *http.Request, id Identity, n need) {
	switch {
	case id.Method == MethodNone:
		g.challenge(w, r, n, "")
		return
	case id.Method == MethodToken && (id.External || id.Anonymous() || g.accountAllows(id, n)):
		g.challenge(w, r, n, "insufficient_scope")
		return
	}
	registry.WriteError(w, r, &registry.Error{Code: registry.ErrDenied, Detail: accessDetail(n.access)})
}

// accountAllows reports whether the rules give the identity's user all of
// n, whatever its token says.
func (g *Gate) accountAllows(id Identity, n need) bool {
	for _, a := range n.access {
		if !g.opts.Rules.Allowed(id, a.Type, a.Name, a.Actions[0]) {
			return false
		}
	}
	return true
}

// challenge answers 401 with the mode's challenge for the request's scope.
func (g *Gate) challenge(w http.ResponseWriter, r *http.Request, n need, errCode string) {
	h := http.Header{}
	if g.opts.Mode == ModeToken {
		h.Set("WWW-Authenticate", bearerChallenge(g.absoluteRealm(r), g.opts.Service, FormatScopes(n.challenge), errCode))
	} else {
		h.Set("WWW-Authenticate", basicChallenge(g.opts.BasicRealm))
	}
	registry.WriteError(w, r, &registry.Error{Code: registry.ErrUnauthorized, Detail: accessDetail(n.access), Header: h})
}

// accessDetail is the detail of 401 and 403 errors, in the form the
// reference registry sends.
func accessDetail(list []Access) any {
	type item struct {
		Type   string `json:"Type"`
		Name   string `json:"Name"`
		Action string `json:"Action"`
	}
	var out []item
	for _, a := range list {
		for _, act := range a.Actions {
			out = append(out, item{a.Type, a.Name, act})
		}
	}
	if out == nil {
		return nil
	}
	return out
}

// absoluteRealm is the token realm as an absolute URL the client can reach:
// a configured URL as it is, a path on the host and scheme the request
// came in on.
func (g *Gate) absoluteRealm(r *http.Request) string {
	if u, err := url.Parse(g.opts.Realm); err == nil && u.IsAbs() {
		return g.opts.Realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if g.opts.TrustForwardedProto {
		switch p := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0])); p {
		case "http", "https":
			scheme = p
		}
	}
	host := r.Host
	if host == "" || strings.ContainsAny(host, " \"\\/@") {
		host = "localhost"
	}
	return scheme + "://" + host + g.opts.Realm
}
