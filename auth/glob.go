package auth

import (
	"fmt"
	"regexp"
	"strings"
)

// glob is a compiled repository pattern: "*" matches any run of characters
// within one path component (never "/"), "**" any run at all, and every
// other character itself. So "public/*" matches "public/app" but neither
// "public/app/dev" nor "publicity/app"; "team/**" matches everything under
// "team/"; "**" matches every repository.
type glob struct {
	src   string
	parts []globPart
}

type globPart struct {
	lit  string // literal text, when star is 0
	star int    // 1 for "*", 2 for "**"
}

// globRE is what a pattern may contain: the characters of repository names,
// "/" and "*".
var globRE = regexp.MustCompile(`^[a-z0-9._/*-]+$`)

func compileGlob(pattern string) (glob, error) {
	if !globRE.MatchString(pattern) {
		return glob{}, fmt.Errorf("repository pattern %q: only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed", pattern)
	}
	if strings.Contains(pattern, "***") {
		return glob{}, fmt.Errorf("repository pattern %q: use '*' or '**'", pattern)
	}
	g := glob{src: pattern}
	for rest := pattern; rest != ""; {
		switch {
		case strings.HasPrefix(rest, "**"):
			g.parts = append(g.parts, globPart{star: 2})
			rest = rest[2:]
		case rest[0] == '*':
			g.parts = append(g.parts, globPart{star: 1})
			rest = rest[1:]
		default:
			i := strings.IndexByte(rest, '*')
			if i < 0 {
				i = len(rest)
			}
			g.parts = append(g.parts, globPart{lit: rest[:i]})
			rest = rest[i:]
		}
	}
	return g, nil
}

// match reports whether name matches. It runs in O(len(parts)·len(name))
// whatever the pattern, by tracking the set of name positions reachable
// after each part.
func (g glob) match(name string) bool {
	// reach[j]: name[:j] is matched by the parts seen so far.
	reach := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	reach[0] = true
	for _, p := range g.parts {
		clear(next)
		any := false
		for j := 0; j <= len(name); j++ {
			if !reach[j] {
				continue
			}
			switch p.star {
			case 0:
				if strings.HasPrefix(name[j:], p.lit) {
					next[j+len(p.lit)] = true
					any = true
				}
			case 1:
				for k := j; k <= len(name); k++ {
					next[k] = true
					any = true
					if k < len(name) && name[k] == '/' {
						break
					}
				}
			case 2:
				for k := j; k <= len(name); k++ {
					next[k] = true
				}
				any = true
			}
		}
		if !any {
			return false
		}
		reach, next = next, reach
	}
	return reach[len(name)]
}
