package transport

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// Scope actions on repositories.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
)

// RepositoryScope returns the token scope "repository:NAME:ACTIONS".
func RepositoryScope(name string, actions ...string) string {
	return "repository:" + name + ":" + strings.Join(actions, ",")
}

// CatalogScope is the scope of the catalog listing.
const CatalogScope = "registry:catalog:*"

type scopesKey struct{}

// WithScopes returns a context whose requests the auth transport authorizes for these scopes
// (in addition to what the request's path implies). A copy that mounts a blob from another
// repository, for example, needs pull on that one too.
func WithScopes(ctx context.Context, scopes ...string) context.Context {
	prev, _ := ctx.Value(scopesKey{}).([]string)
	return context.WithValue(ctx, scopesKey{}, append(slices.Clone(prev), scopes...))
}

// ScopesFromContext returns the scopes set with WithScopes.
func ScopesFromContext(ctx context.Context) []string {
	s, _ := ctx.Value(scopesKey{}).([]string)
	return s
}

// ScopesForRequest returns the scopes a distribution API request needs, from its method and
// path: pull for reads, pull and push for writes, delete for deletes, the catalog scope for
// /v2/_catalog. Other paths need none.
func ScopesForRequest(method, path string) []string {
	if path == "/v2/_catalog" {
		return []string{CatalogScope}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return nil
	}
	segs := strings.Split(rest, "/")
	name := ""
	for i := len(segs) - 2; i >= 1; i-- {
		switch segs[i] {
		case "manifests", "blobs", "tags", "referrers":
			name = strings.Join(segs[:i], "/")
		}
		if name != "" {
			break
		}
	}
	if name == "" {
		return nil
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		return []string{RepositoryScope(name, ActionPull)}
	case http.MethodDelete:
		if strings.Contains(rest, "/blobs/uploads/") {
			return []string{RepositoryScope(name, ActionPull, ActionPush)}
		}
		return []string{RepositoryScope(name, ActionDelete)}
	default:
		return []string{RepositoryScope(name, ActionPull, ActionPush)}
	}
}

// MergeScopes joins scopes on the same resource ("repository:a:pull" and
// "repository:a:push" become "repository:a:pull,push") and sorts them, so that equal sets
// give equal cache keys.
func MergeScopes(scopes []string) []string {
	actions := map[string][]string{}
	var order []string
	for _, s := range scopes {
		for _, one := range strings.Fields(s) { // a challenge's scope may list several
			i := strings.LastIndexByte(one, ':')
			if i <= 0 {
				continue
			}
			res, acts := one[:i], one[i+1:]
			if _, ok := actions[res]; !ok {
				order = append(order, res)
			}
			for _, a := range strings.Split(acts, ",") {
				if a != "" && !slices.Contains(actions[res], a) {
					actions[res] = append(actions[res], a)
				}
			}
		}
	}
	out := make([]string, 0, len(order))
	for _, res := range order {
		acts := actions[res]
		slices.Sort(acts)
		out = append(out, res+":"+strings.Join(acts, ","))
	}
	slices.Sort(out)
	return out
}
