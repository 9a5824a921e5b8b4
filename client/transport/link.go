package transport

import (
	"net/http"
	"net/url"
	"strings"
)

// Link is one link of a Link header (RFC 8288): a target and its parameters.
type Link struct {
	// Target is the URI reference between the angle brackets, not yet resolved.
	Target string
	// Params by lower-case name, e.g. "rel".
	Params map[string]string
}

// ParseLinks parses the values of Link headers: `<target>; rel="next", <other>; rel=prev`.
// Malformed links are skipped.
func ParseLinks(values []string) []Link {
	var out []Link
	for _, v := range values {
		l := &headerLexer{s: v}
		for {
			l.skipSeparators()
			if l.eof() {
				break
			}
			if l.peek() != '<' {
				l.skipElement()
				continue
			}
			end := strings.IndexByte(l.s[l.i:], '>')
			if end < 0 {
				break
			}
			link := Link{Target: strings.TrimSpace(l.s[l.i+1 : l.i+end]), Params: map[string]string{}}
			l.i += end + 1
			// A URI reference holds no '<' (RFC 3986): such a link is malformed.
			ok := !strings.Contains(link.Target, "<")
			for {
				l.skipSpace()
				if l.eof() || l.peek() == ',' {
					break
				}
				if l.peek() != ';' {
					ok = false
					l.skipElement()
					break
				}
				l.i++
				l.skipSpace()
				name := l.token()
				if name == "" {
					ok = false
					l.skipElement()
					break
				}
				l.skipSpace()
				val := ""
				if l.peek() == '=' {
					l.i++
					l.skipSpace()
					if l.peek() == '"' {
						v, closed := l.quoted()
						if !closed {
							ok = false
							break
						}
						val = v
					} else {
						val = l.token()
					}
				}
				link.Params[strings.ToLower(name)] = val
			}
			if ok {
				out = append(out, link)
			}
		}
	}
	return out
}

// NextLink returns the target of the first rel="next" link of resp's Link headers, resolved
// against the request URL, or nil if there is none.
func NextLink(resp *http.Response) (*url.URL, error) {
	for _, l := range ParseLinks(resp.Header.Values("Link")) {
		for _, rel := range strings.Fields(l.Params["rel"]) {
			if strings.EqualFold(rel, "next") {
				u, err := url.Parse(l.Target)
				if err != nil {
					return nil, err
				}
				if resp.Request != nil && resp.Request.URL != nil {
					u = resp.Request.URL.ResolveReference(u)
				}
				return u, nil
			}
		}
	}
	return nil, nil
}
