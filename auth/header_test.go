package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	b := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		h, scheme, user, pass string
		ok                    bool
	}{
		{"Basic " + b("admin:secret"), "basic", "admin", "secret", true},
		{"basic " + b("admin:se:cret"), "basic", "admin", "se:cret", true},
		{"BASIC  " + b("admin:") + " ", "basic", "admin", "", true},
		{"Basic " + b(":secret"), "basic", "", "", false},
		{"Basic " + b("admin"), "basic", "", "", false},
		{"Basic " + b("ad\x01min:x"), "basic", "", "", false},
		{"Basic " + b("admin:\xff"), "basic", "", "", false},
		{"Basic !!!", "basic", "", "", false},
		{"Basic", "", "", "", false},
		{"", "", "", "", false},
		{"Bearer abc.def.ghi", "bearer", "", "", true},
		{"Bearer " + strings.Repeat("a", maxAuthorizationLength), "", "", "", false},
	}
	for _, c := range cases {
		scheme, cred, err := ParseAuthorization(c.h)
		if c.scheme == "" {
			if err == nil {
				t.Errorf("ParseAuthorization(%q) accepted", c.h)
			}
			continue
		}
		if err != nil || scheme != c.scheme {
			t.Errorf("ParseAuthorization(%q) = %q, %v", c.h, scheme, err)
			continue
		}
		if scheme != schemeBasic {
			continue
		}
		user, pass, err := ParseBasic(cred)
		if (err == nil) != c.ok || (c.ok && (user != c.user || pass != c.pass)) {
			t.Errorf("ParseBasic(%q) = %q, %q, %v", c.h, user, pass, err)
		}
	}
}

func TestChallenges(t *testing.T) {
	t.Parallel()
	got := bearerChallenge("http://h:1/token", "berth", "repository:a:pull,push repository:b:pull", "insufficient_scope")
	want := `Bearer realm="http://h:1/token",service="berth",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := bearerChallenge("r", "s", "", ""); got != `Bearer realm="r",service="s"` {
		t.Errorf("without scope: %s", got)
	}
	if got := basicChallenge(`a "b" \c`); got != `Basic realm="a \"b\" \\c"` {
		t.Errorf("quoting: %s", got)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("Basic YWRtaW46c2VjcmV0")
	f.Add("Bearer x.y.z")
	f.Add("Basic Og==")
	f.Fuzz(func(t *testing.T, h string) {
		scheme, cred, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		if scheme != strings.ToLower(scheme) || cred == "" || cred != strings.TrimSpace(cred) {
			t.Fatalf("%q -> %q %q", h, scheme, cred)
		}
		user, _, err := ParseBasic(cred)
		if err == nil && (user == "" || strings.Contains(user, ":")) {
			t.Fatalf("user %q from %q", user, h)
		}
	})
}
