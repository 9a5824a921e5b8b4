// Package auth authenticates registry callers and decides what they may do.
//
// The pieces are small and separate:
//   - an Authenticator turns a request's credentials (Basic, a bearer token,
//     a client certificate) into an Identity;
//   - an Authorizer (Rules) decides from the configured rules whether an
//     identity may perform an action on a resource;
//   - the token Service is the http.Handler of the Docker token protocol
//     (GET) and its OAuth2 form (POST), issuing signed JWTs through an Issuer;
//   - a Verifier checks bearer tokens: the Issuer's own, or an External
//     issuer's (JWKS or x5c chains to configured roots);
//   - the Gate ties them to the registry: it authenticates each request
//     once, answers the registry's Authorize and MayPull hooks, and writes
//     challenges exactly as clients parse them.
//
// All state lives in instances; nothing here is global.
package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
)

// Resource types of the token specification.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// CatalogName is the registry resource whose "*" action lists repositories.
const CatalogName = "catalog"

// Actions on resources. ActionAll stands for every action.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// repositoryActions are what ActionAll means on a repository.
var repositoryActions = []string{ActionPull, ActionPush, ActionDelete}

// Access is a resource and actions on it: one entry of a token's access
// claim, one parsed scope.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Has reports whether a lists action, directly or through ActionAll.
func (a Access) Has(action string) bool {
	return slices.Contains(a.Actions, action) || slices.Contains(a.Actions, ActionAll)
}

// Methods of authentication, as recorded in Identity.Method.
const (
	MethodNone  = ""
	MethodBasic = "basic"
	MethodToken = "token"
	MethodTLS   = "tls"
)

// Identity is who a caller is and how it proved it.
type Identity struct {
	// Name is the user; empty for an anonymous caller (or an anonymous
	// token's subject).
	Name string
	// Method is how the caller authenticated; MethodNone when it sent no
	// credentials.
	Method string
	// Token is the access a bearer token grants, when the caller sent one.
	// The caller may do only what it covers.
	Token []Access
	// External marks a token from an external issuer: the issuer decided
	// what it grants, so the configured rules do not apply to it.
	External bool
}

// Anonymous reports whether the caller is not a known user.
func (id Identity) Anonymous() bool { return id.Name == "" }

// Errors of authentication. Wrapped errors carry detail for logs; none
// carries a password or a token.
var (
	// ErrInvalidCredentials: wrong password, unknown user, a bad or
	// expired token.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrWrongScheme: credentials of a kind this mode does not take (Basic
	// where tokens are required, a token where Basic is).
	ErrWrongScheme = errors.New("unsupported authorization scheme")
	// ErrTooManyAttempts: too many failed logins from this client or for
	// this user; the caller must wait.
	ErrTooManyAttempts = errors.New("too many failed login attempts")
)

// Authenticator turns the credentials of a request into an identity. A
// request without credentials is anonymous, not an error.
type Authenticator interface {
	Authenticate(r *http.Request) (Identity, error)
}

// Authorizer decides whether an identity may perform an action on a
// resource (type and name, as in a scope).
type Authorizer interface {
	Allowed(id Identity, typ, name, action string) bool
}

// Verifier checks a bearer token and returns the identity it asserts.
type Verifier interface {
	Verify(token string) (Identity, error)
}

type resultKey struct{}

// result is what the Gate learned about a request's caller.
type result struct {
	id  Identity
	err error
}

func withResult(ctx context.Context, res *result) context.Context {
	return context.WithValue(ctx, resultKey{}, res)
}

func resultFrom(ctx context.Context) *result {
	res, _ := ctx.Value(resultKey{}).(*result)
	return res
}

// IdentityFrom returns the identity the Gate established for the request
// carrying ctx, and false when there is none (no Gate, or credentials that
// failed).
func IdentityFrom(ctx context.Context) (Identity, bool) {
	res := resultFrom(ctx)
	if res == nil || res.err != nil {
		return Identity{}, false
	}
	return res.id, true
}
