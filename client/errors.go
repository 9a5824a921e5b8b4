package client

import (
	"errors"

	"github.com/berthhq/berth/client/transport"
)

// Error categories, for errors.Is. A CLI maps them to exit codes; the message of the error
// itself names the operation, the reference and the registry's own words.
var (
	// ErrNotFound: the repository, manifest, tag or blob does not exist (404, *_UNKNOWN).
	ErrNotFound = transport.ErrNotFound
	// ErrUnauthorized: authentication is required or failed (401).
	ErrUnauthorized = transport.ErrUnauthorized
	// ErrDenied: authenticated, but not allowed (403).
	ErrDenied = transport.ErrDenied
	// ErrDigestMismatch: downloaded content does not match its digest (or size). Nothing of
	// it is returned or stored as good.
	ErrDigestMismatch = transport.ErrDigestMismatch
	// ErrUnsupported: the registry does not implement an optional API (search, catalog, ...).
	ErrUnsupported = errors.New("unsupported by the registry")
	// ErrReferenced: a manifest cannot be deleted because an index that is kept (tagged)
	// lists it; deleting it would break that index. The registry refused (409 with
	// MANIFEST_REFERENCED), or the client found the index before asking.
	ErrReferenced = errors.New("manifest referenced by a tagged index")
)

// PingResponseError is a server's answer to a ping that is not a V2 registry's answer.
type PingResponseError = transport.PingResponseError

// IsNotRegistry reports whether err holds a *PingResponseError: the registry's address
// answered, but not as a V2 registry (a web server, a proxy's error page), as opposed to an
// address that could not be reached at all.
func IsNotRegistry(err error) bool { return transport.IsPingResponseError(err) }

// RegistryError is the registry's answer to a request that failed: status, method, URL and
// the registry's error codes. errors.As finds it inside an *Error.
type RegistryError = transport.Error

// Error is the failure of one operation on one reference.
type Error struct {
	// Op is what was done: "pull", "push", "copy", "get manifest", "list tags", ...
	Op string
	// Ref is the reference (or registry) it was done on.
	Ref string
	// Err is the cause; it matches the categories above.
	Err error
}

// Error renders "op ref: cause".
func (e *Error) Error() string {
	if e.Ref == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Ref + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// wrap returns nil for nil, and err (already an *Error for this op and ref) or a new *Error.
func wrap(op, ref string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Op == op && e.Ref == ref {
		return err
	}
	return &Error{Op: op, Ref: ref, Err: err}
}
