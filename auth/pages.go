package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
)

// ErrNoPasswords: this Gate checks no passwords (token mode with an
// external issuer), so nobody can sign in with one.
var ErrNoPasswords = errors.New("no password sign-in: tokens come from an external issuer")

// What follows serves sign-in and rights for pages that people use (the
// web UI): the same users, limiter and rules as the registry API.

// PasswordLogin reports whether users can sign in with a password.
func (g *Gate) PasswordLogin() bool { return g.opts.Users != nil }

// Login checks a user's password as a Basic login to the registry is
// checked: through the same login limiter (a *RetryError while the
// client's address and that user name must wait), with failures counted
// against them.
func (g *Gate) Login(r *http.Request, user, password string) (Identity, error) {
	if g.opts.Users == nil {
		return Identity{}, ErrNoPasswords
	}
	return g.login(r, user, password)
}

// Fingerprint identifies the current password of user, so that a sign-in
// remembered elsewhere (a session) ends when the password changes or the
// user is removed. ok is false for an unknown user or without passwords.
func (g *Gate) Fingerprint(user string) (string, bool) {
	if g.opts.Users == nil {
		return "", false
	}
	return g.opts.Users.Fingerprint(user)
}

// SameFingerprint compares fingerprints in constant time.
func SameFingerprint(a, b string) bool { return sameFingerprint(a, b) }

// Allowed reports whether id may perform action on the resource, as the
// registry's Authorize hook would decide it: a token must cover it, and
// the rules must allow the identity's user (unless an external issuer's
// token decides alone).
func (g *Gate) Allowed(id Identity, typ, name, action string) bool {
	return g.allowed(id, Access{Type: typ, Name: name, Actions: []string{action}})
}

// Administers reports whether the rules give id every right on every
// repository and the catalog (see Rules.Administers). External tokens
// never do: their issuer grants names, not administration of berth.
func (g *Gate) Administers(id Identity) bool {
	if id.Method == MethodToken && id.External {
		return false
	}
	return g.opts.Rules.Administers(id)
}

// Administers reports whether a rule gives id every action on every
// repository ("**") and the catalog, with no refusing rule for id before
// it. Such a user may see what the registry does as a whole (garbage
// collection, storage per repository), which spans every repository.
func (rs *Rules) Administers(id Identity) bool {
	for i := range rs.rules {
		r := &rs.rules[i]
		if !rs.subjectMatches(r, id.Name) {
			continue
		}
		if r.Deny {
			return false
		}
		all := slices.Contains(r.Actions, ActionAll) ||
			(slices.Contains(r.Actions, ActionPull) && slices.Contains(r.Actions, ActionPush) && slices.Contains(r.Actions, ActionDelete))
		if r.Catalog && all && slices.Contains(r.Repositories, "**") {
			return true
		}
	}
	return false
}

// WithIdentity returns ctx carrying id as the authenticated caller, as the
// Gate's Wrap records it: a request made inside berth on a signed-in
// person's behalf (the web UI's delete, sent through the registry) is
// then authorised by the registry's own hooks as that person.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return withResult(ctx, &result{id: id})
}
