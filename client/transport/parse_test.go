package transport

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		want   []Challenge
	}{
		{"basic", []string{`Basic realm="Registry Realm"`},
			[]Challenge{{Scheme: "basic", Params: map[string]string{"realm": "Registry Realm"}}}},
		{"bearer", []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "https://auth.docker.io/token",
				"service": "registry.docker.io", "scope": "repository:library/ubuntu:pull"}}}},
		{"scheme and names are case-insensitive", []string{`BEARER Realm="r", SERVICE=svc`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "r", "service": "svc"}}}},
		{"two challenges in one value", []string{`Basic realm="a", Bearer realm="b",service="s"`},
			[]Challenge{
				{Scheme: "basic", Params: map[string]string{"realm": "a"}},
				{Scheme: "bearer", Params: map[string]string{"realm": "b", "service": "s"}}}},
		{"two values", []string{`Basic realm="a"`, `Bearer realm="b"`},
			[]Challenge{
				{Scheme: "basic", Params: map[string]string{"realm": "a"}},
				{Scheme: "bearer", Params: map[string]string{"realm": "b"}}}},
		{"quoted comma and escapes", []string{`Bearer realm="https://x/t?a=1,b=2",scope="repository:a:pull,push",error="say \"hi\" \\ok"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "https://x/t?a=1,b=2",
				"scope": "repository:a:pull,push", "error": `say "hi" \ok`}}}},
		{"spaces around equals and commas", []string{`Bearer realm = "r" ,  service = "s" ,, scope="x"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "r", "service": "s", "scope": "x"}}}},
		{"scheme alone then another", []string{`Negotiate, Basic realm="x"`},
			[]Challenge{
				{Scheme: "negotiate", Params: map[string]string{}},
				{Scheme: "basic", Params: map[string]string{"realm": "x"}}}},
		{"token68", []string{`Negotiate a87421000492aa874209af8bc028==`},
			[]Challenge{{Scheme: "negotiate", Params: map[string]string{}, Token68: "a87421000492aa874209af8bc028=="}}},
		{"unterminated quote drops the parameter", []string{`Bearer realm="r", service="s`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "r"}}}},
		{"empty", []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseChallenges(tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseChallenges(%q)\n got %#v\nwant %#v", tt.values, got, tt.want)
			}
		})
	}
}

func TestChallengeStringRoundTrip(t *testing.T) {
	t.Parallel()
	ch := Challenge{Scheme: "bearer", Params: map[string]string{"realm": `https://a/"q"\`, "scope": "repository:x:pull,push"}}
	got := ParseChallenges([]string{ch.String()})
	if len(got) != 1 || !reflect.DeepEqual(got[0], ch) {
		t.Fatalf("round trip of %q: %#v", ch.String(), got)
	}
}

// FuzzParseChallenges: the parser never panics, and what it produces survives rendering
// and parsing again.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Basic realm="x"`, `Bearer realm="https://a/b",service="s",scope="repository:a:pull"`,
		`Basic realm="a", Bearer realm="b"`, `Negotiate abc==`, `Bearer realm="\"`, `,,,`, `a=b`, `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		chs := ParseChallenges([]string{s})
		for _, c := range chs {
			if c.Scheme == "" || c.Scheme != strings.ToLower(c.Scheme) {
				t.Fatalf("bad scheme %q from %q", c.Scheme, s)
			}
			if c.Token68 != "" {
				continue
			}
			again := ParseChallenges([]string{c.String()})
			if len(again) != 1 || !reflect.DeepEqual(again[0].Params, c.Params) {
				t.Fatalf("%q: %#v renders as %q, which parses as %#v", s, c, c.String(), again)
			}
		}
	})
}

func TestParseLinks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  []Link
	}{
		{"spec form", `</v2/_catalog?last=b&n=2>; rel="next"`,
			[]Link{{Target: "/v2/_catalog?last=b&n=2", Params: map[string]string{"rel": "next"}}}},
		{"several", `<https://x/a>; rel=prev, <https://x/b,c>; rel="next"; title="t"`,
			[]Link{{Target: "https://x/a", Params: map[string]string{"rel": "prev"}},
				{Target: "https://x/b,c", Params: map[string]string{"rel": "next", "title": "t"}}}},
		{"garbage skipped", `nonsense, </ok>; rel=next`,
			[]Link{{Target: "/ok", Params: map[string]string{"rel": "next"}}}},
		{"unterminated", `</a; rel=next`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseLinks([]string{tt.value}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLinks(%q)\n got %#v\nwant %#v", tt.value, got, tt.want)
			}
		})
	}
}

func TestNextLinkResolves(t *testing.T) {
	t.Parallel()
	req := &http.Request{URL: &url.URL{Scheme: "https", Host: "r.example:5000", Path: "/v2/a/tags/list"}}
	resp := &http.Response{Request: req, Header: http.Header{"Link": {`</v2/a/tags/list?last=t3&n=3>; rel="next"`}}}
	u, err := NextLink(resp)
	if err != nil || u == nil || u.String() != "https://r.example:5000/v2/a/tags/list?last=t3&n=3" {
		t.Fatalf("NextLink = %v, %v", u, err)
	}
	resp.Header.Set("Link", `</x>; rel="prev"`)
	if u, err := NextLink(resp); u != nil || err != nil {
		t.Fatalf("NextLink without next = %v, %v", u, err)
	}
}

// FuzzParseLinks: the parser never panics, and every link it returns has a target free of
// the angle brackets that delimit it.
func FuzzParseLinks(f *testing.F) {
	for _, s := range []string{`</a>; rel="next"`, `<x>;rel=next, <y>; a="b\"c"`, `<`, `>;`, `<a>;;`, `<a>; rel="`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range ParseLinks([]string{s}) {
			if strings.ContainsAny(l.Target, "<>") {
				t.Fatalf("%q: target %q", s, l.Target)
			}
		}
	})
}

func TestScopesForRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path string
		want         []string
	}{
		{"GET", "/v2/library/ubuntu/manifests/latest", []string{"repository:library/ubuntu:pull"}},
		{"HEAD", "/v2/a/blobs/sha256:00", []string{"repository:a:pull"}},
		{"POST", "/v2/a/b/blobs/uploads/", []string{"repository:a/b:pull,push"}},
		{"PATCH", "/v2/a/blobs/uploads/123", []string{"repository:a:pull,push"}},
		{"DELETE", "/v2/a/manifests/sha256:00", []string{"repository:a:delete"}},
		{"DELETE", "/v2/a/blobs/uploads/123", []string{"repository:a:pull,push"}},
		{"GET", "/v2/a/tags/list", []string{"repository:a:pull"}},
		{"GET", "/v2/tags/manifests/x", []string{"repository:tags:pull"}},
		{"GET", "/v2/_catalog", []string{CatalogScope}},
		{"GET", "/v2/", nil},
	}
	for _, tt := range tests {
		if got := ScopesForRequest(tt.method, tt.path); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ScopesForRequest(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
	got := MergeScopes([]string{"repository:b:push", "repository:a:pull", "repository:b:pull", "repository:a:pull"})
	if want := []string{"repository:a:pull", "repository:b:pull,push"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MergeScopes = %v, want %v", got, want)
	}
}
