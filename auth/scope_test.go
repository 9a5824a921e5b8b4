package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	good := map[string]Access{
		"repository:a:pull":                                {TypeRepository, "a", []string{"pull"}},
		"repository:team/app:pull,push":                    {TypeRepository, "team/app", []string{"pull", "push"}},
		"repository:team/app:pull,pull":                    {TypeRepository, "team/app", []string{"pull"}},
		"repository:a-b/c__d/e.f:*":                        {TypeRepository, "a-b/c__d/e.f", []string{"*"}},
		"registry:catalog:*":                               {TypeRegistry, "catalog", []string{"*"}},
		"repository:a:delete":                              {TypeRepository, "a", []string{"delete"}},
		"repository(plugin):vendor/x:pull":                 {"repository(plugin)", "vendor/x", []string{"pull"}},
		"repository:a:frobnicate":                          {TypeRepository, "a", []string{"frobnicate"}},
		"repository:" + strings.Repeat("a", 255) + ":pull": {TypeRepository, strings.Repeat("a", 255), []string{"pull"}},
	}
	for s, want := range good {
		got, err := ParseScope(s)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	bad := []string{
		"",
		"repository",
		"repository:a",
		"repository::pull",
		"repository:a:",
		"repository:a:pull,",
		"repository:a:PULL",
		"repository:a:b:pull",              // an extra ':' in the name
		"repository:localhost:5000/a:pull", // a host with a port is not a name here
		"repository:/a:pull",
		"repository:a/:pull",
		"repository:a//b:pull",
		"repository:../a:pull",
		"repository:public/../secret:pull",
		"repository:public/./x:pull",
		"repository:A:pull",
		"repository:a b:pull",
		"registry:other:*",
		"Repository:a:pull",
		":a:pull",
		"repository:a:pull push",
		"repository:" + strings.Repeat("a", 256) + ":pull",
		"repository:a:" + strings.Repeat("pull,", 9) + "pull",
		"x:\"quoted\":pull",
	}
	for _, s := range bad {
		if got, err := ParseScope(s); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an error", s, got)
		} else if !errors.Is(err, ErrScopeInvalid) {
			t.Errorf("ParseScope(%q): %v is not ErrScopeInvalid", s, err)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	got, err := ParseScopes([]string{
		"repository:a:pull registry:catalog:*",
		"repository:a:push",
		"  repository:b:pull  ",
		"",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{TypeRepository, "a", []string{"pull", "push"}},
		{TypeRegistry, "catalog", []string{"*"}},
		{TypeRepository, "b", []string{"pull"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if s := FormatScopes(got); s != "repository:a:pull,push registry:catalog:* repository:b:pull" {
		t.Errorf("FormatScopes = %q", s)
	}
	if _, err := ParseScopes([]string{strings.Repeat("repository:a:pull ", maxScopes+1)}); err == nil {
		t.Error("more than maxScopes scopes accepted")
	}
	if _, err := ParseScopes([]string{"repository:a:pull repository:../b:pull"}); err == nil {
		t.Error("one bad scope among good ones accepted")
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:a:pull", "registry:catalog:*", "repository:a/b:pull,push repository:c:*",
		"repository:a:b:pull", "repository:../x:pull", "a:b:c:d", "::", "repository:a:pull,,push",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseScopes([]string{s})
		if err != nil {
			return
		}
		for _, a := range list {
			if a.Type == TypeRepository && !validRepoName(a.Name) {
				t.Fatalf("accepted invalid repository name %q from %q", a.Name, s)
			}
			if len(a.Actions) == 0 {
				t.Fatalf("scope without actions from %q", s)
			}
			// What is accepted formats back to something that parses the same.
			again, err := ParseScopes([]string{FormatScope(a)})
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], a) {
				t.Fatalf("round trip of %+v: %+v, %v", a, again, err)
			}
		}
	})
}

// validRepoName restates the name grammar's safety properties the fuzz
// test checks: no path tricks, no separators.
func validRepoName(name string) bool {
	if name == "" || strings.ContainsAny(name, ": \t\r\n\"\\") {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
