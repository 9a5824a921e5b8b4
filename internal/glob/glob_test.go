package glob

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"public/*", []string{"public/app", "public/a.b-c", "public/"}, []string{"public", "public/app/dev", "publicity/app", "xpublic/app", "public/app/"}},
		{"team/**", []string{"team/a", "team/a/b/c", "team/"}, []string{"team", "teams/a", "other/team/a"}},
		{"**", []string{"a", "a/b", "a/b/c", ""}, nil},
		{"*", []string{"a", "abc", ""}, []string{"a/b", "/"}},
		{"*/app", []string{"x/app", "yy/app"}, []string{"app", "x/y/app", "x/apps"}},
		{"*/cache", []string{"a/cache"}, []string{"a/b/cache", "cache"}},
		{"**/app", []string{"x/app", "x/y/app", "/app"}, []string{"app", "x/apps"}},
		{"lib-*", []string{"lib-a", "lib-"}, []string{"lib-a/b", "lib"}},
		{"lib.x", []string{"lib.x"}, []string{"libax"}},
		{"a*b", []string{"ab", "axxb"}, []string{"a/b"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbc"}, []string{"ab", "a/b/c", "aXb/c"}},
		{"a/**/b", []string{"a//b", "a/x/b", "a/x/y/b"}, []string{"a/b", "ab"}},
		{"*/*", []string{"a/b", "/"}, []string{"a", "a/b/c"}},
		{"**b", []string{"b", "a/b", "abb"}, []string{"a/bc"}},
		{"exact/name", []string{"exact/name"}, []string{"exact/name2", "exact/nam", "Exact/name"}},
	} {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		if p.String() != c.pattern {
			t.Errorf("String() = %q, want %q", p.String(), c.pattern)
		}
		for _, n := range c.yes {
			if !p.Match(n) {
				t.Errorf("%q should match %q", c.pattern, n)
			}
		}
		for _, n := range c.no {
			if p.Match(n) {
				t.Errorf("%q should not match %q", c.pattern, n)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ pattern, want string }{
		{"", "at least one character"},
		{"Public/*", `character 'P'`},
		{"a b", `character ' '`},
		{"a?", `character '?'`},
		{"a[b]", `character '['`},
		{"a:b", `character ':'`},
		{"a\\b", `character '\\'`},
		{"***", "three stars"},
		{"a/****", "three stars"},
	} {
		_, err := Compile(c.pattern)
		if err == nil {
			t.Errorf("Compile(%q) accepted", c.pattern)
			continue
		}
		// The error quotes the pattern, so the setting it came from can be found.
		for _, w := range []string{fmt.Sprintf("%q", c.pattern), c.want} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Compile(%q) = %v, want it to contain %q", c.pattern, err, w)
			}
		}
	}
}

func TestMustCompile(t *testing.T) {
	t.Parallel()
	if !MustCompile("a/*").Match("a/b") {
		t.Error("a/* does not match a/b")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustCompile accepted an invalid pattern")
		}
	}()
	MustCompile("A")
}

// TestWorstCase: a pattern that would make a backtracking matcher take
// exponential time is answered at once (the test times out otherwise).
func TestWorstCase(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{strings.Repeat("*a", 40) + "b", strings.Repeat("**a", 40) + "b"} {
		p, err := Compile(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if p.Match(strings.Repeat("a", 255)) {
			t.Fatalf("%q matched a name without b", pattern)
		}
		if !p.Match(strings.Repeat("a", 254) + "b") {
			t.Fatalf("%q did not match", pattern)
		}
	}
}

// reference is the documented semantics written as a regular expression:
// "**" is ".*", "*" is "[^/]*", everything else is literal. "**" matches
// any run of characters, new lines too (the s flag).
func reference(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(pattern); i++ {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(`.*`)
			i++
		case pattern[i] == '*':
			b.WriteString(`[^/]*`)
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"public/*", "public/app"},
		{"**/x*y", "a/b/xzy"},
		{"team/**", "team"},
		{"*/*", "a/b/c"},
		{"a*b*c", "aXb/c"},
		{"**", ""},
		{"*a*a*a", "aaaa/aaa"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		got, want := p.Match(name), reference(pattern).MatchString(name)
		if got != want {
			t.Fatalf("%q vs %q: Match = %v, the reference says %v", pattern, name, got, want)
		}
		// A pattern without stars matches only itself.
		if !strings.Contains(pattern, "*") && got != (pattern == name) {
			t.Fatalf("%q vs %q: %v", pattern, name, got)
		}
		// A single star never crosses a slash.
		if !strings.Contains(pattern, "**") && got && strings.Count(pattern, "/") != strings.Count(name, "/") {
			t.Fatalf("%q matched %q across a '/'", pattern, name)
		}
	})
}
