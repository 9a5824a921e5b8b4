package registry

import (
	"net/http"
	"regexp"
	"strings"
)

// Access is what a route needs from the caller, checked in one place by
// whoever authorizes requests.
type Access string

// Access levels.
const (
	AccessNone    Access = ""
	AccessPull    Access = "pull"
	AccessPush    Access = "push"
	AccessDelete  Access = "delete"
	AccessCatalog Access = "catalog"
	// AccessAdmin is for what acts on the registry as a whole (a
	// reload): the catalog, and every action on every repository.
	AccessAdmin Access = "admin"
)

// Route kinds: what a request path addresses.
const (
	KindBase = iota + 1
	KindCatalog
	KindTags
	KindManifest
	KindBlob
	KindUploadStart
	KindUpload
	KindReferrers
	KindPingV1
	KindSearchV1
	// KindHealth is the connectors' health report (HealthPath).
	KindHealth
	// KindReload reloads the configuration (ReloadPath).
	KindReload
)

// HealthPath is where the connectors' health is served as JSON.
const HealthPath = "/_berth/connectors"

// ReloadPath is where a POST reloads the configuration (Options.Reload).
const ReloadPath = "/_berth/reload"

// Route is a parsed request path.
type Route struct {
	Kind int
	// Name is the repository name, when the route has one.
	Name string
	// Ref is the tag or digest of a manifest, the digest of a blob or
	// subject, or the id of an upload session.
	Ref string
	// Access is what the method on this route needs.
	Access Access
}

// nameRE is the distribution spec's repository name grammar: path
// components of lowercase alphanumerics joined by separators.
var nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// tagRE is the spec's tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// maxNameLength bounds repository names, as Docker's reference grammar does.
const maxNameLength = 255

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool {
	return len(name) <= maxNameLength && nameRE.MatchString(name)
}

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool { return tagRE.MatchString(tag) }

// ParseRoute matches a request path. Repository names contain slashes, so
// the path is matched from its end: the last segments name the route kind,
// everything before them is the repository name. ok is false for paths that
// are no route at all; a route with an invalid name is returned with ok
// true and is rejected by the handler with NAME_INVALID.
func ParseRoute(method, path string) (rt Route, ok bool) {
	switch path {
	case "/v2", "/v2/":
		return Route{Kind: KindBase}, true
	case "/v2/_catalog":
		return Route{Kind: KindCatalog, Access: AccessCatalog}, true
	case "/v1/_ping":
		return Route{Kind: KindPingV1}, true
	case "/v1/search":
		return Route{Kind: KindSearchV1, Access: AccessCatalog}, true
	case HealthPath:
		// It names upstreams: for callers who may list the catalog.
		return Route{Kind: KindHealth, Access: AccessCatalog}, true
	case ReloadPath:
		// An operator's: for callers the rules give the catalog.
		return Route{Kind: KindReload, Access: AccessAdmin}, true
	}
	rest, found := strings.CutPrefix(path, "/v2/")
	if !found {
		return Route{}, false
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	name := func(k int) string { return strings.Join(segs[:n-k], "/") }
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt = Route{Kind: KindTags, Name: name(2)}
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		if segs[n-1] == "" {
			rt = Route{Kind: KindUploadStart, Name: name(3)}
		} else {
			rt = Route{Kind: KindUpload, Name: name(3), Ref: segs[n-1]}
		}
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		// POST without the trailing slash, as some clients send it.
		rt = Route{Kind: KindUploadStart, Name: name(2)}
	case n >= 3 && segs[n-2] == "blobs":
		rt = Route{Kind: KindBlob, Name: name(2), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "manifests":
		rt = Route{Kind: KindManifest, Name: name(2), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "referrers":
		rt = Route{Kind: KindReferrers, Name: name(2), Ref: segs[n-1]}
	default:
		return Route{}, false
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		rt.Access = AccessPull
	case http.MethodDelete:
		rt.Access = AccessDelete
		if rt.Kind == KindUpload {
			rt.Access = AccessPush
		}
	default:
		rt.Access = AccessPush
	}
	if rt.Kind == KindUpload || rt.Kind == KindUploadStart {
		rt.Access = AccessPush
	}
	return rt, true
}

// named reports whether the route addresses a repository, so that its
// name must be valid (an empty name included).
func (rt Route) named() bool {
	switch rt.Kind {
	case KindTags, KindManifest, KindBlob, KindUploadStart, KindUpload, KindReferrers:
		return true
	}
	return false
}
