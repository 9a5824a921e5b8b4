package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage/driver"
)

// Code is one entry of the error table: the code string the distribution
// spec defines, the HTTP status it is always sent with, and the default
// message. Handlers never write error responses as literals; they return
// an *Error built from a Code, and writeError turns it into the wire format.
type Code struct {
	Name    string
	Status  int
	Message string
}

// The error table. Each code is tied to one status; where the spec uses one
// code name with different statuses, there are two entries.
var (
	ErrBlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	ErrBlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	ErrBlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	ErrDigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	ErrManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a blob unknown to the repository"}
	ErrManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	ErrManifestTooLarge    = Code{"MANIFEST_INVALID", http.StatusRequestEntityTooLarge, "manifest exceeds the size limit"}
	ErrManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	ErrManifestReferenced  = Code{"MANIFEST_REFERENCED", http.StatusConflict, "manifest is listed by an index in the repository"}
	ErrNameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	ErrNameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	ErrSizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	ErrTagInvalid          = Code{"TAG_INVALID", http.StatusBadRequest, "invalid tag"}
	ErrRangeInvalid        = Code{"BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable, "content range does not follow the data received so far"}
	ErrBodyTimeout         = Code{"BLOB_UPLOAD_INVALID", http.StatusRequestTimeout, "the request body stalled"}
	ErrRangeUnsatisfiable  = Code{"RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable, "requested range not satisfiable"}
	ErrPaginationInvalid   = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}
	ErrUnauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required"}
	ErrDenied              = Code{"DENIED", http.StatusForbidden, "requested access to the resource is denied"}
	ErrUnsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"}
	ErrNotFound            = Code{"NOT_FOUND", http.StatusNotFound, "no such endpoint"}
	ErrTooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests"}
	ErrUnknown             = Code{"UNKNOWN", http.StatusInternalServerError, "unknown error"}
	ErrUnavailable         = Code{"UNAVAILABLE", http.StatusServiceUnavailable, "service unavailable"}
	ErrBadGateway          = Code{"UNAVAILABLE", http.StatusBadGateway, "the upstream registry answered wrongly"}
	ErrNoSpace             = Code{"UNAVAILABLE", http.StatusInsufficientStorage, "the registry is out of storage space"}
	ErrConfigInvalid       = Code{"CONFIG_INVALID", http.StatusUnprocessableEntity, "the new configuration is invalid; the running one stays"}
)

// Error is an error destined for a client: a code from the table, an
// optional message replacing the code's default, and optional detail.
type Error struct {
	Code    Code
	Message string
	Detail  any
	// Header holds extra response headers (e.g. Range on a 416).
	Header http.Header
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Message
	}
	return e.Code.Name + ": " + msg
}

// errf builds an *Error with a formatted message.
func errf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// errc builds an *Error with the code's default message.
func errc(c Code) *Error { return &Error{Code: c} }

// noSpaceError names which store ran out of space, or returns nil when err
// is not about space.
func noSpaceError(err error) *Error {
	var where string
	switch {
	case errors.Is(err, driver.ErrNoSpace):
		where = "blob storage"
	case errors.Is(err, metadata.ErrNoSpace):
		where = "metadata database"
	default:
		return nil
	}
	return errf(ErrNoSpace, "the registry's %s has no space left; nothing was stored and a failed upload was discarded to free its space: try again once space is freed", where)
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// WriteError sends e in the spec's format, for code outside this package
// that answers for the registry (an Authorize hook, a token service).
func WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	writeError(w, r, slog.Default(), e)
}

// writeError sends err in the spec's format. Errors that are not *Error are
// failures of berth itself: they are logged and sent as UNKNOWN without
// their text, which may name internal paths.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = noSpaceError(err)
		if e == nil {
			e = errc(ErrUnknown)
		}
	}
	msg := e.Message
	if msg == "" {
		msg = e.Code.Message
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body, _ := json.Marshal(struct {
		Errors []wireError `json:"errors"`
	}{[]wireError{{Code: e.Code.Name, Message: msg, Detail: e.Detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Code.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
