package gcs

import (
	"errors"
	"net/http"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
)

// httpStatus is the HTTP status of the response that caused err, or 0.
func httpStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// isNotFound reports a missing object.
func isNotFound(err error) bool {
	return errors.Is(err, storage.ErrObjectNotExist) || httpStatus(err) == http.StatusNotFound
}
