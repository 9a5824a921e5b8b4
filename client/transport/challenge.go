package transport

import (
	"sort"
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate header (RFC 7235).
type Challenge struct {
	// Scheme in lower case: "basic" or "bearer" for registries.
	Scheme string
	// Params by lower-case name: realm, service, scope, error, ...
	Params map[string]string
	// Token68 is the scheme's single token68 argument, for schemes that use one instead of
	// parameters.
	Token68 string
}

// ParseChallenges parses the values of WWW-Authenticate headers. One value may hold several
// challenges separated by commas; parameter values may be tokens or quoted strings with
// backslash escapes. Malformed parts are skipped, never guessed at.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		out = append(out, parseChallengeValue(v)...)
	}
	return out
}

// ChallengeFor returns the first challenge with the given scheme (case-insensitive).
func ChallengeFor(chs []Challenge, scheme string) (Challenge, bool) {
	scheme = strings.ToLower(scheme)
	for _, c := range chs {
		if c.Scheme == scheme {
			return c, true
		}
	}
	return Challenge{}, false
}

// String renders the challenge as a header value that ParseChallenges reads back.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteByte(' ')
		b.WriteString(c.Token68)
		return b.String()
	}
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		v := c.Params[k]
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// headerLexer walks one header value.
type headerLexer struct {
	s string
	i int
}

func (l *headerLexer) eof() bool { return l.i >= len(l.s) }

func (l *headerLexer) peek() byte {
	if l.eof() {
		return 0
	}
	return l.s[l.i]
}

func (l *headerLexer) skipSpace() {
	for !l.eof() && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}

// skipSeparators skips spaces and commas (empty list elements are allowed by RFC 7230).
func (l *headerLexer) skipSeparators() {
	for !l.eof() && (l.s[l.i] == ' ' || l.s[l.i] == '\t' || l.s[l.i] == ',') {
		l.i++
	}
}

// token reads an RFC 7230 token.
func (l *headerLexer) token() string {
	start := l.i
	for !l.eof() && isTokenChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

// quoted reads a quoted string starting at the opening quote; ok is false if it is not
// terminated.
func (l *headerLexer) quoted() (string, bool) {
	l.i++ // opening quote
	var b strings.Builder
	for !l.eof() {
		c := l.s[l.i]
		switch c {
		case '"':
			l.i++
			return b.String(), true
		case '\\':
			if l.i+1 < len(l.s) {
				b.WriteByte(l.s[l.i+1])
				l.i += 2
				continue
			}
			l.i++
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return b.String(), false
}

// skipElement skips to the next comma outside quotes, for recovering from malformed input.
func (l *headerLexer) skipElement() {
	for !l.eof() && l.s[l.i] != ',' {
		if l.s[l.i] == '"' {
			l.quoted()
			continue
		}
		l.i++
	}
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-._~+/", c) >= 0
}

// parseChallengeValue parses one header value: challenge *( "," challenge ), where each
// challenge is a scheme followed by a token68 or by comma-separated name=value parameters.
// A parameter name is told from the next challenge's scheme by the "=" after it.
func parseChallengeValue(s string) []Challenge {
	l := &headerLexer{s: s}
	var out []Challenge
	l.skipSeparators()
	for !l.eof() {
		scheme := l.token()
		if scheme == "" {
			l.skipElement()
			l.skipSeparators()
			continue
		}
		ch := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		l.skipSpace()
		if t, ok := l.token68(); ok {
			ch.Token68 = t
			out = append(out, ch)
			l.skipSeparators()
			continue
		}
		// Parameters until the next scheme (a token not followed by "=") or the end.
		for {
			l.skipSeparators()
			if l.eof() {
				break
			}
			save := l.i
			name := l.token()
			l.skipSpace()
			if name == "" {
				l.skipElement()
				continue
			}
			if l.peek() != '=' {
				l.i = save // the next challenge's scheme
				break
			}
			l.i++ // '='
			l.skipSpace()
			var val string
			if l.peek() == '"' {
				v, ok := l.quoted()
				if !ok {
					l.skipElement()
					continue
				}
				val = v
			} else {
				val = l.token()
			}
			l.skipSpace()
			if !l.eof() && l.peek() != ',' {
				// Garbage after the value: drop this parameter.
				l.skipElement()
				continue
			}
			ch.Params[strings.ToLower(name)] = val
		}
		out = append(out, ch)
	}
	return out
}

// token68 reads a token68 argument if one stands at the cursor: token68 characters, then
// optional "=" padding, then the end or a comma. Otherwise the cursor is not moved.
func (l *headerLexer) token68() (string, bool) {
	start := l.i
	j := l.i
	for j < len(l.s) && isToken68Char(l.s[j]) {
		j++
	}
	if j == start {
		return "", false
	}
	k := j
	for k < len(l.s) && l.s[k] == '=' {
		k++
	}
	end := k
	for end < len(l.s) && (l.s[end] == ' ' || l.s[end] == '\t') {
		end++
	}
	if end < len(l.s) && l.s[end] != ',' {
		return "", false
	}
	if k == j {
		// Without padding a lone token is ambiguous with the next challenge's scheme
		// ("Basic, Bearer realm=..."), and a token followed by "=" and a value is a
		// parameter; only a lone token at the very end is a token68.
		if end < len(l.s) {
			return "", false
		}
	}
	l.i = end
	return l.s[start:k], true
}
