// Package glob matches repository names against the patterns that access
// rules, cache allow and deny lists and retention rules are written in.
//
// A pattern holds the characters of repository names (lowercase letters,
// digits, '.', '_', '-' and '/') and stars. "*" matches any run of
// characters within one path component (never "/"), "**" any run at all,
// and every other character itself. So "public/*" matches "public/app" but
// neither "public/app/dev" nor "publicity/app"; "team/**" matches
// everything under "team/" but not "team" itself; "**" matches every name.
//
// These patterns decide who may read and write what, so there is one
// implementation, and its matcher runs in time linear in the name for a
// given pattern: a hostile name cannot make it backtrack.
package glob

import (
	"fmt"
	"strings"
)

// Pattern is a compiled glob. The zero value matches nothing but "".
type Pattern struct {
	src   string
	parts []part
}

// part is a literal run or a star.
type part struct {
	lit  string // literal text, when star is 0
	star int    // 1 for "*", 2 for "**"
}

// Compile checks pattern and compiles it. Its errors quote the pattern
// and say what is wrong; callers put the setting's name in front.
func Compile(pattern string) (*Pattern, error) {
	if pattern == "" {
		return nil, fmt.Errorf("%q: a pattern needs at least one character (\"**\" matches every repository)", pattern)
	}
	for i := 0; i < len(pattern); i++ {
		if !allowed(pattern[i]) {
			return nil, fmt.Errorf("%q: character %q is not allowed: use lowercase letters, digits, '.', '_', '-', '/' and '*'", pattern, rune(pattern[i]))
		}
	}
	if strings.Contains(pattern, "***") {
		return nil, fmt.Errorf("%q: three stars in a row: use '*' (within a path component) or '**' (across components)", pattern)
	}
	p := &Pattern{src: pattern}
	for rest := pattern; rest != ""; {
		switch {
		case strings.HasPrefix(rest, "**"):
			p.parts = append(p.parts, part{star: 2})
			rest = rest[2:]
		case rest[0] == '*':
			p.parts = append(p.parts, part{star: 1})
			rest = rest[1:]
		default:
			i := strings.IndexByte(rest, '*')
			if i < 0 {
				i = len(rest)
			}
			p.parts = append(p.parts, part{lit: rest[:i]})
			rest = rest[i:]
		}
	}
	return p, nil
}

// MustCompile is Compile for patterns written in code; it panics on an
// invalid one.
func MustCompile(pattern string) *Pattern {
	p, err := Compile(pattern)
	if err != nil {
		panic("glob: " + err.Error())
	}
	return p
}

// allowed reports whether c may appear in a pattern.
func allowed(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("._-/*", c) >= 0
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.src }

// Match reports whether name matches the whole pattern. It tracks the set
// of name positions reachable after each part instead of backtracking, so
// it takes O(len(pattern)·len(name)) time whatever the two hold.
func (p *Pattern) Match(name string) bool {
	// reach[j]: name[:j] is matched by the parts seen so far.
	reach := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	reach[0] = true
	for _, pt := range p.parts {
		clear(next)
		any := false
		switch pt.star {
		case 0:
			for j := 0; j+len(pt.lit) <= len(name); j++ {
				if reach[j] && name[j:j+len(pt.lit)] == pt.lit {
					next[j+len(pt.lit)] = true
					any = true
				}
			}
		case 1:
			// From each reachable position, every position up to the
			// next '/' (not past it). A position already reached was
			// reached by a scan that went on to that '/': stop there.
			for j := 0; j <= len(name); j++ {
				if !reach[j] {
					continue
				}
				any = true
				for k := j; k <= len(name) && !(k > j && next[k]); k++ {
					next[k] = true
					if k < len(name) && name[k] == '/' {
						break
					}
				}
			}
		case 2:
			// Everything from the first reachable position on.
			for j := 0; j <= len(name); j++ {
				if reach[j] {
					for k := j; k <= len(name); k++ {
						next[k] = true
					}
					any = true
					break
				}
			}
		}
		if !any {
			return false
		}
		reach, next = next, reach
	}
	return reach[len(name)]
}
