package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error categories. Every error this module returns for a registry's answer matches at most
// one of them with errors.Is, so a caller (a CLI choosing an exit code) needs no status codes.
var (
	// ErrNotFound: the registry answered 404, or an error code ending in _UNKNOWN
	// (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, ...).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the registry (or its token service) answered 401: no credentials, or
	// wrong ones.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDenied: the registry answered 403: the credentials are valid but lack the access.
	ErrDenied = errors.New("denied")
	// ErrDigestMismatch: content did not hash to the digest it was fetched by or announced
	// with. Nothing of it is returned or stored as good.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrCredentials: the credential source (a helper program, a cloud provider's token
	// exchange) failed, so the request could not be authorized.
	ErrCredentials = errors.New("no credentials")
	// ErrBadToken: a token service answered 200 with something that is no token.
	ErrBadToken = errors.New("malformed token answer")
)

// ErrorDetail is one entry of a registry's error body, {"errors":[{"code","message","detail"}]}.
type ErrorDetail struct {
	Code    string          `json:"code"`
	Message string          `json:"message,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// String renders the entry as "CODE: message".
func (d ErrorDetail) String() string {
	switch {
	case d.Code == "":
		return d.Message
	case d.Message == "":
		return d.Code
	}
	return d.Code + ": " + d.Message
}

// Error is an HTTP answer that the operation did not expect.
type Error struct {
	// Method and URL of the request; the URL carries no query, since upload locations may
	// hold opaque state.
	Method string
	URL    string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Errors is the registry's error body, when it sent one.
	Errors []ErrorDetail
	// Body is the start of a body that was no error document (an HTML page from a proxy).
	Body string
}

// Error renders the request, the status and the registry's error codes and messages.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	if len(e.Errors) == 0 && e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Is matches the error categories: ErrNotFound, ErrUnauthorized and ErrDenied.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		if e.StatusCode == http.StatusNotFound {
			return true
		}
		return e.hasCode(func(c string) bool { return strings.HasSuffix(c, "_UNKNOWN") })
	case ErrUnauthorized:
		// A token service refuses bad credentials the OAuth2 way (RFC 6749:
		// 400 with error "invalid_grant"): a wrong password all the same.
		return e.StatusCode == http.StatusUnauthorized ||
			e.hasCode(func(c string) bool { return c == "UNAUTHORIZED" }) ||
			(e.StatusCode == http.StatusBadRequest && e.hasDetail("invalid_grant"))
	case ErrDenied:
		return e.StatusCode == http.StatusForbidden ||
			e.hasCode(func(c string) bool { return c == "DENIED" })
	}
	return false
}

func (e *Error) hasCode(match func(string) bool) bool {
	for _, d := range e.Errors {
		if match(d.Code) {
			return true
		}
	}
	return false
}

func (e *Error) hasDetail(v string) bool {
	for _, d := range e.Errors {
		if d.Code == v || d.Message == v {
			return true
		}
	}
	return false
}

// HasCode reports whether the registry's error body holds the given code.
func (e *Error) HasCode(code string) bool {
	return e.hasCode(func(c string) bool { return c == code })
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// CheckResponse returns nil if resp has one of the wanted statuses. Otherwise it reads (a
// bounded part of) the body, closes it, and returns an *Error describing the answer.
func CheckResponse(resp *http.Response, want ...int) error {
	for _, s := range want {
		if resp.StatusCode == s {
			return nil
		}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return NewError(resp, data)
}

// NewError builds the *Error for resp whose body (already read) is body.
func NewError(resp *http.Response, body []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		if req.URL != nil {
			u := *req.URL
			u.RawQuery, u.Fragment, u.User = "", "", nil
			e.URL = u.String()
		}
	}
	var doc struct {
		Errors []ErrorDetail `json:"errors"`
		// Some token services answer {"details": "..."} or {"error": "..."}.
		Details string `json:"details"`
		Err     string `json:"error"`
	}
	if err := json.Unmarshal(body, &doc); err == nil {
		e.Errors = doc.Errors
		if len(e.Errors) == 0 {
			if msg := firstNonEmpty(doc.Details, doc.Err); msg != "" {
				e.Errors = []ErrorDetail{{Message: msg}}
			}
		}
	}
	if len(e.Errors) == 0 && resp.Request != nil && resp.Request.Method != http.MethodHead {
		s := strings.TrimSpace(string(body))
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		e.Body = s
	}
	return e
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
