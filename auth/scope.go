package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/berthhq/berth/registry"
)

// Limits on what a token request may ask for, so that parsing is bounded.
const (
	maxScopes      = 64
	maxScopeLength = 512
	maxActions     = 8
)

// ErrScopeInvalid is the category of malformed scopes.
var ErrScopeInvalid = errors.New("invalid scope")

var (
	scopeTypeRE   = regexp.MustCompile(`^[a-z0-9]+(?:\([a-z0-9]+\))?$`)
	scopeActionRE = regexp.MustCompile(`^(?:[a-z]+|\*)$`)
)

// ParseScope parses one scope of the token specification:
// type ":" name ":" action *("," action). The name lies between the first
// and the last colon; for a repository it must be a valid repository name
// (so "..", a stray ":" or "/" and empty components are refused), for the
// registry type it must be "catalog". Unknown resource types and actions
// parse, and are simply never granted.
func ParseScope(s string) (Access, error) {
	if len(s) > maxScopeLength {
		return Access{}, fmt.Errorf("%w: longer than %d bytes", ErrScopeInvalid, maxScopeLength)
	}
	i, j := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	if i < 0 || i == j {
		return Access{}, fmt.Errorf("%w: %q is not type:name:actions", ErrScopeInvalid, s)
	}
	typ, name, actions := s[:i], s[i+1:j], s[j+1:]
	if !scopeTypeRE.MatchString(typ) {
		return Access{}, fmt.Errorf("%w: resource type %q", ErrScopeInvalid, typ)
	}
	switch typ {
	case TypeRepository:
		if !registry.ValidName(name) {
			return Access{}, fmt.Errorf("%w: repository name %q", ErrScopeInvalid, name)
		}
	case TypeRegistry:
		if name != CatalogName {
			return Access{}, fmt.Errorf("%w: registry resource %q (only %q)", ErrScopeInvalid, name, CatalogName)
		}
	default:
		if name == "" || strings.ContainsAny(name, " \t\r\n\"\\") {
			return Access{}, fmt.Errorf("%w: resource name %q", ErrScopeInvalid, name)
		}
	}
	list := strings.Split(actions, ",")
	if len(list) > maxActions {
		return Access{}, fmt.Errorf("%w: more than %d actions", ErrScopeInvalid, maxActions)
	}
	a := Access{Type: typ, Name: name}
	for _, act := range list {
		if !scopeActionRE.MatchString(act) {
			return Access{}, fmt.Errorf("%w: action %q", ErrScopeInvalid, act)
		}
		if !slices.Contains(a.Actions, act) {
			a.Actions = append(a.Actions, act)
		}
	}
	return a, nil
}

// ParseScopes parses the scope parameters of a token request: each value
// holds one or more scopes separated by spaces, and the parameter may be
// repeated. Scopes on the same resource are merged.
func ParseScopes(values []string) ([]Access, error) {
	var out []Access
	n := 0
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			if n++; n > maxScopes {
				return nil, fmt.Errorf("%w: more than %d scopes", ErrScopeInvalid, maxScopes)
			}
			a, err := ParseScope(s)
			if err != nil {
				return nil, err
			}
			out = mergeAccess(out, a)
		}
	}
	return out, nil
}

// mergeAccess adds a to list, joining its actions to an entry for the same
// resource.
func mergeAccess(list []Access, a Access) []Access {
	for i := range list {
		if list[i].Type == a.Type && list[i].Name == a.Name {
			for _, act := range a.Actions {
				if !slices.Contains(list[i].Actions, act) {
					list[i].Actions = append(list[i].Actions, act)
				}
			}
			return list
		}
	}
	return append(list, Access{Type: a.Type, Name: a.Name, Actions: slices.Clone(a.Actions)})
}

// FormatScope writes a as a scope string.
func FormatScope(a Access) string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// FormatScopes joins scopes with spaces, as a challenge's scope parameter
// and a token request's scope value carry them.
func FormatScopes(list []Access) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = FormatScope(a)
	}
	return strings.Join(parts, " ")
}
