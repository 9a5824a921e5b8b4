package auth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxAuthorizationLength bounds the Authorization header parsed: tokens
// with large access lists fit, anything bigger is refused unread.
const maxAuthorizationLength = 16 << 10

// Authorization schemes, lower case.
const (
	schemeBasic  = "basic"
	schemeBearer = "bearer"
)

// ParseAuthorization splits an Authorization header into its scheme (in
// lower case) and credentials. It fails on an empty or oversized header or
// one without credentials.
func ParseAuthorization(h string) (scheme, credentials string, err error) {
	if len(h) > maxAuthorizationLength {
		return "", "", fmt.Errorf("%w: Authorization header longer than %d bytes", ErrInvalidCredentials, maxAuthorizationLength)
	}
	scheme, credentials, ok := strings.Cut(strings.TrimSpace(h), " ")
	credentials = strings.TrimSpace(credentials)
	if !ok || scheme == "" || credentials == "" {
		return "", "", fmt.Errorf("%w: malformed Authorization header", ErrInvalidCredentials)
	}
	return strings.ToLower(scheme), credentials, nil
}

// ParseBasic decodes Basic credentials into user and password. The user
// must be non-empty and both must be valid UTF-8 without control
// characters in the user name.
func ParseBasic(credentials string) (user, password string, err error) {
	b, err := base64.StdEncoding.DecodeString(credentials)
	if err != nil {
		return "", "", fmt.Errorf("%w: Basic credentials are not base64", ErrInvalidCredentials)
	}
	user, password, ok := strings.Cut(string(b), ":")
	if !ok || user == "" || !utf8.ValidString(user) || !utf8.ValidString(password) {
		return "", "", fmt.Errorf("%w: malformed Basic credentials", ErrInvalidCredentials)
	}
	for _, c := range user {
		if c < ' ' || c == 0x7f {
			return "", "", fmt.Errorf("%w: malformed Basic credentials", ErrInvalidCredentials)
		}
	}
	return user, password, nil
}

// quote writes s as an HTTP quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		if c < ' ' || c == 0x7f {
			continue
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

// bearerChallenge formats a Bearer challenge with its parameters in the
// order clients expect: realm, service, scope, then error.
func bearerChallenge(realm, service, scope, errCode string) string {
	s := "Bearer realm=" + quote(realm) + ",service=" + quote(service)
	if scope != "" {
		s += ",scope=" + quote(scope)
	}
	if errCode != "" {
		s += ",error=" + quote(errCode)
	}
	return s
}

// basicChallenge formats a Basic challenge.
func basicChallenge(realm string) string { return "Basic realm=" + quote(realm) }
