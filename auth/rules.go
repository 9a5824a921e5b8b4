package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berthhq/berth/internal/glob"
)

// Subjects with a meaning of their own in a rule's users.
const (
	// SubjectAnonymous stands for every caller, signed in or not: what
	// anonymous callers may do, signed-in users may do too.
	SubjectAnonymous = "anonymous"
	// SubjectAnyUser stands for every signed-in user.
	SubjectAnyUser = "*"
)

// Rule is one access rule: who (users and groups) may do what (actions) on
// which repositories (globs), or on the catalog.
type Rule struct {
	// Repositories are globs of repository names (see package
	// internal/glob).
	Repositories []string
	// Catalog makes the rule apply to registry:catalog:* too: listing the
	// catalog and searching (both show only what the caller may pull).
	Catalog bool
	// Users are user names, SubjectAnonymous or SubjectAnyUser.
	Users []string
	// Groups are names of groups from the configuration.
	Groups []string
	// Actions are pull, push, delete or "*" (all three).
	Actions []string
	// Deny turns the rule into a refusal.
	Deny bool
}

type compiledRule struct {
	Rule
	globs []*glob.Pattern
}

// Rules is the Authorizer of the configured rules. For a caller, a resource
// and an action, the first rule that matches all three decides: it allows,
// or refuses when it is a Deny rule. When no rule matches, the action is
// refused.
type Rules struct {
	rules []compiledRule
	// groups maps a user to the groups it belongs to.
	groups map[string][]string
}

// NewRules checks and compiles rules; groups maps group names to their
// members.
func NewRules(rules []Rule, groups map[string][]string) (*Rules, error) {
	rs := &Rules{groups: map[string][]string{}}
	var errs []error
	for g, members := range groups {
		if g == "" || strings.ContainsAny(g, " \t:") {
			errs = append(errs, fmt.Errorf("group %q: invalid name", g))
		}
		for _, u := range members {
			rs.groups[u] = append(rs.groups[u], g)
		}
	}
	for i, r := range rules {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("rules[%d]: "+format, append([]any{i}, args...)...))
		}
		cr := compiledRule{Rule: r}
		for _, p := range r.Repositories {
			g, err := glob.Compile(p)
			if err != nil {
				bad("repositories: %v", err)
				continue
			}
			cr.globs = append(cr.globs, g)
		}
		if len(r.Repositories) == 0 && !r.Catalog {
			bad("names no repositories and not the catalog")
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			bad("names no users or groups (use %q for everyone)", SubjectAnonymous)
		}
		for _, g := range r.Groups {
			if _, ok := groups[g]; !ok {
				bad("group %q is not defined under groups", g)
			}
		}
		for _, a := range r.Actions {
			if a != ActionPull && a != ActionPush && a != ActionDelete && a != ActionAll {
				bad("action %q: want pull, push, delete or *", a)
			}
		}
		if len(r.Repositories) > 0 && len(r.Actions) == 0 {
			bad("names repositories but no actions")
		}
		rs.rules = append(rs.rules, cr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// subjectMatches reports whether the rule applies to the caller named user
// ("" for anonymous).
func (rs *Rules) subjectMatches(r *compiledRule, user string) bool {
	for _, u := range r.Users {
		switch {
		case u == SubjectAnonymous:
			return true
		case u == SubjectAnyUser && user != "":
			return true
		case u == user && user != "":
			return true
		}
	}
	if user == "" {
		return false
	}
	for _, g := range rs.groups[user] {
		if slices.Contains(r.Groups, g) {
			return true
		}
	}
	return false
}

func (r *compiledRule) resourceMatches(typ, name string) bool {
	switch typ {
	case TypeRepository:
		for _, g := range r.globs {
			if g.Match(name) {
				return true
			}
		}
	case TypeRegistry:
		return r.Catalog && name == CatalogName
	}
	return false
}

func (r *compiledRule) actionMatches(typ, action string) bool {
	if typ == TypeRegistry {
		return action == ActionAll
	}
	return slices.Contains(r.Actions, action) || slices.Contains(r.Actions, ActionAll)
}

// Allowed implements Authorizer. It judges the identity's user: what a
// token grants is checked by the caller of Allowed.
func (rs *Rules) Allowed(id Identity, typ, name, action string) bool {
	for i := range rs.rules {
		r := &rs.rules[i]
		if r.resourceMatches(typ, name) && r.actionMatches(typ, action) && rs.subjectMatches(r, id.Name) {
			return !r.Deny
		}
	}
	return false
}

// Grant returns the part of the requested access that the rules allow id:
// the intersection of what was asked and what is allowed. Resources with
// nothing allowed are left out. Asking for "*" on a repository yields "*"
// when every action is allowed, and otherwise the actions that are.
func (rs *Rules) Grant(id Identity, requested []Access) []Access {
	var out []Access
	for _, a := range requested {
		var got []string
		for _, act := range a.Actions {
			switch {
			case a.Type == TypeRepository && act == ActionAll:
				all := true
				var some []string
				for _, x := range repositoryActions {
					if rs.Allowed(id, a.Type, a.Name, x) {
						some = append(some, x)
					} else {
						all = false
					}
				}
				if all {
					some = []string{ActionAll}
				}
				for _, x := range some {
					if !slices.Contains(got, x) {
						got = append(got, x)
					}
				}
			case rs.Allowed(id, a.Type, a.Name, act):
				if !slices.Contains(got, act) {
					got = append(got, act)
				}
			}
		}
		if len(got) > 0 {
			out = append(out, Access{Type: a.Type, Name: a.Name, Actions: got})
		}
	}
	return out
}

// covers reports whether the access list of a token grants action on the
// resource. A name of "*" covers every name, and other names are globs
// (exact for the names berth itself issues).
func covers(list []Access, typ, name, action string) bool {
	for _, a := range list {
		if a.Type != typ || !a.Has(action) {
			continue
		}
		if a.Name == name || a.Name == "*" {
			return true
		}
		if strings.Contains(a.Name, "*") {
			if g, err := glob.Compile(a.Name); err == nil && g.Match(name) {
				return true
			}
		}
	}
	return false
}
