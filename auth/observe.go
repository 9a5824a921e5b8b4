package auth

import (
	"errors"
	"net/http"

	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/registry"
)

// Metrics receives the outcome of every credential check; internal/metrics
// implements it. method is basic, token, tls or refresh.
type Metrics interface {
	Authentication(method string, ok bool)
}

// observe counts and audits a credential check of method for r. user is
// the name the caller claimed or proved.
func (g *Gate) observe(r *http.Request, method, user string, err error) {
	if g.opts.Metrics != nil {
		g.opts.Metrics.Authentication(method, err == nil)
	}
	if g.opts.Audit == nil {
		return
	}
	e := audit.Entry{Action: "login", Outcome: audit.OK, User: user, Remote: r.RemoteAddr, Method: method,
		Request: registry.RequestID(r.Context())}
	var re *RetryError
	switch {
	case errors.As(err, &re):
		e.Outcome, e.Reason = audit.Denied, "too many failed logins"
	case err != nil:
		e.Outcome, e.Reason = audit.Failed, reason(err)
	}
	g.opts.Audit.Record(r.Context(), e)
}

// reason says why credentials failed, without anything secret.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return "invalid credentials"
	case errors.Is(err, ErrWrongScheme):
		return "wrong authentication scheme"
	}
	return "malformed credentials"
}

// auditAccess records a refused request of an authenticated caller: an
// authorisation decision against a known identity.
func (g *Gate) auditAccess(r *http.Request, id Identity, rt registry.Route) {
	if g.opts.Audit == nil || id.Method == MethodNone {
		return
	}
	g.opts.Audit.Record(r.Context(), audit.Entry{Action: "access", Outcome: audit.Denied, User: id.Name, Remote: r.RemoteAddr,
		Repository: rt.Name, Method: id.Method, Request: registry.RequestID(r.Context()), Reason: string(rt.Access) + " not allowed"})
}

// auditToken records a token the token service issued.
func (g *Gate) auditToken(r *http.Request, id Identity, grant, scope string) {
	if g.opts.Audit == nil {
		return
	}
	g.opts.Audit.Record(r.Context(), audit.Entry{Action: "token", Outcome: audit.OK, User: id.Name, Remote: r.RemoteAddr,
		Method: grant, Request: registry.RequestID(r.Context()), Reason: scope})
}
