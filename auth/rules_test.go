package auth

import (
	"reflect"
	"strings"
	"testing"
)

func exampleRules(t *testing.T) *Rules {
	t.Helper()
	rs, err := NewRules([]Rule{
		{Repositories: []string{"secret/**"}, Users: []string{"reader"}, Actions: []string{"*"}, Deny: true},
		{Repositories: []string{"**"}, Groups: []string{"admins"}, Actions: []string{"*"}, Catalog: true},
		{Repositories: []string{"**"}, Users: []string{"reader"}, Actions: []string{"pull"}, Catalog: true},
		{Repositories: []string{"ci/*"}, Users: []string{"*"}, Actions: []string{"push"}},
		{Repositories: []string{"public/*"}, Users: []string{"anonymous"}, Actions: []string{"pull"}, Catalog: true},
	}, map[string][]string{"admins": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRulesAllowed(t *testing.T) {
	t.Parallel()
	rs := exampleRules(t)
	admin, reader, other, anon := Identity{Name: "admin"}, Identity{Name: "reader"}, Identity{Name: "other"}, Identity{}
	cases := []struct {
		id           Identity
		typ, name, a string
		want         bool
	}{
		{admin, TypeRepository, "x/y", "push", true},
		{admin, TypeRepository, "secret/x", "delete", true},
		{admin, TypeRegistry, "catalog", "*", true},
		{reader, TypeRepository, "x/y", "pull", true},
		{reader, TypeRepository, "x/y", "push", false},
		{reader, TypeRepository, "secret/x", "pull", false}, // the deny rule comes first
		{reader, TypeRepository, "public/app", "pull", true},
		{reader, TypeRepository, "ci/app", "push", true},
		{other, TypeRepository, "ci/app", "push", true},
		{other, TypeRepository, "ci/app", "pull", false},
		{other, TypeRepository, "public/app", "pull", true}, // anonymous means everyone
		{other, TypeRegistry, "catalog", "*", true},
		{anon, TypeRepository, "public/app", "pull", true},
		{anon, TypeRepository, "public/app", "push", false},
		{anon, TypeRepository, "public/app/nested", "pull", false},
		{anon, TypeRepository, "publicity/app", "pull", false},
		{anon, TypeRepository, "ci/app", "push", false}, // "*" is signed-in users only
		{anon, TypeRegistry, "catalog", "*", true},
		{anon, TypeRegistry, "catalog", "pull", false},
		{anon, "other", "catalog", "*", false},
	}
	for _, c := range cases {
		if got := rs.Allowed(c.id, c.typ, c.name, c.a); got != c.want {
			t.Errorf("Allowed(%q, %s:%s:%s) = %v, want %v", c.id.Name, c.typ, c.name, c.a, got, c.want)
		}
	}
}

func TestRulesGrant(t *testing.T) {
	t.Parallel()
	rs := exampleRules(t)
	req := []Access{
		{TypeRepository, "x/y", []string{"pull", "push"}},
		{TypeRepository, "secret/s", []string{"pull"}},
		{TypeRepository, "public/app", []string{"*"}},
		{TypeRegistry, "catalog", []string{"*"}},
		{"unknown", "thing", []string{"pull"}},
	}
	got := rs.Grant(Identity{Name: "reader"}, req)
	want := []Access{
		{TypeRepository, "x/y", []string{"pull"}},
		{TypeRepository, "public/app", []string{"pull"}},
		{TypeRegistry, "catalog", []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reader: %+v, want %+v", got, want)
	}
	got = rs.Grant(Identity{Name: "admin"}, req[:3])
	want = []Access{
		{TypeRepository, "x/y", []string{"pull", "push"}},
		{TypeRepository, "secret/s", []string{"pull"}},
		{TypeRepository, "public/app", []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("admin: %+v, want %+v", got, want)
	}
	if got := rs.Grant(Identity{}, []Access{{TypeRepository, "x/y", []string{"pull"}}}); got != nil {
		t.Errorf("anonymous on x/y: %+v, want nothing", got)
	}
}

func TestNewRulesErrors(t *testing.T) {
	t.Parallel()
	_, err := NewRules([]Rule{
		{Repositories: []string{"Bad Pattern"}, Users: []string{"a"}, Actions: []string{"pull"}},
		{Repositories: []string{"a"}, Actions: []string{"pull"}},
		{Repositories: []string{"a"}, Users: []string{"a"}, Actions: []string{"fly"}},
		{Repositories: []string{"a"}, Groups: []string{"nope"}, Actions: []string{"pull"}},
		{Users: []string{"a"}},
	}, nil)
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{`rules[0]: repositories: "Bad Pattern": character 'B'`, "rules[1]", "rules[2]", "rules[3]", "rules[4]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	list := []Access{
		{TypeRepository, "a/b", []string{"pull"}},
		{TypeRepository, "team/*", []string{"push"}},
		{TypeRepository, "*", []string{"delete"}},
		{TypeRegistry, "catalog", []string{"*"}},
	}
	cases := []struct {
		typ, name, action string
		want              bool
	}{
		{TypeRepository, "a/b", "pull", true},
		{TypeRepository, "a/b", "push", false},
		{TypeRepository, "a/bc", "pull", false},
		{TypeRepository, "team/x", "push", true},
		{TypeRepository, "team/x/y", "push", false},
		{TypeRepository, "anything/at/all", "delete", true},
		{TypeRegistry, "catalog", "*", true},
		{TypeRegistry, "catalog", "pull", true},
		{TypeRepository, "catalog", "pull", false},
	}
	for _, c := range cases {
		if got := covers(list, c.typ, c.name, c.action); got != c.want {
			t.Errorf("covers(%s:%s:%s) = %v, want %v", c.typ, c.name, c.action, got, c.want)
		}
	}
}
