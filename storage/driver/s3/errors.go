package s3

import (
	"errors"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// errorCode is the S3 error code of err ("NoSuchKey", "SlowDown", ...), or
// "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of the response that caused err, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isNotFound reports a missing key. A HEAD answer has no body, so its 404
// carries no code; the bucket's existence is checked by New, so a 404
// there means the key.
func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket", "NoSuchUpload":
		return false
	}
	return httpStatus(err) == http.StatusNotFound
}

// isNoSuchUpload reports a multipart upload that was completed or aborted.
func isNoSuchUpload(err error) bool { return errorCode(err) == "NoSuchUpload" }
