package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// PingResult is what GET /v2/ told about a registry endpoint.
type PingResult struct {
	// Challenges are the WWW-Authenticate challenges of a 401 answer; none when the
	// endpoint answered 200 (anonymous access).
	Challenges []Challenge
	// APIVersion is the Docker-Distribution-API-Version header, "registry/2.0" when set.
	APIVersion string
}

// PingResponseError is a ping that reached a server whose answer is not a V2 registry's:
// a status other than 200 or 401, or a 401 without a challenge (an HTML page from a proxy,
// a web server at the address, a registry of another API). It is distinct from a transport
// failure (refused connection, TLS error, timeout), where no answer came at all: an
// endpoint that answered this way is reachable, only not a registry.
type PingResponseError struct {
	// URL is the ping's URL (base/v2/).
	URL string
	// StatusCode is the status of the answer.
	StatusCode int
	// Err is the cause: an *Error describing the answer (status, error body), or a
	// description of what was missing.
	Err error
}

// Error renders "URL is not a V2 registry: cause".
func (e *PingResponseError) Error() string {
	return e.URL + " is not a V2 registry: " + e.Err.Error()
}

// Unwrap returns the cause, so errors.As still finds an *Error for the answer.
func (e *PingResponseError) Unwrap() error { return e.Err }

// IsPingResponseError reports whether err holds a *PingResponseError: a server answered the
// ping, but not as a V2 registry.
func IsPingResponseError(err error) bool {
	var pe *PingResponseError
	return errors.As(err, &pe)
}

// Ping sends GET base/v2/ through rt, once (no retries: a failure is the answer). A 200 or a
// 401 with challenges means a registry answers there. Any other answer is a
// *PingResponseError; a request that got no answer returns the transport's error as it is.
func Ping(ctx context.Context, rt http.RoundTripper, base *url.URL) (PingResult, error) {
	u := base.JoinPath("/v2/")
	req, err := http.NewRequestWithContext(WithoutRetry(ctx), http.MethodGet, u.String(), nil)
	if err != nil {
		return PingResult{}, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return PingResult{}, err
	}
	defer resp.Body.Close()
	res := PingResult{APIVersion: resp.Header.Get("Docker-Distribution-API-Version")}
	switch resp.StatusCode {
	case http.StatusOK:
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		return res, nil
	case http.StatusUnauthorized:
		res.Challenges = ParseChallenges(resp.Header.Values("WWW-Authenticate"))
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		if len(res.Challenges) == 0 {
			return res, &PingResponseError{URL: u.Redacted(), StatusCode: resp.StatusCode,
				Err: fmt.Errorf("GET %s: 401 without a WWW-Authenticate challenge", u.Redacted())}
		}
		return res, nil
	}
	return res, &PingResponseError{URL: u.Redacted(), StatusCode: resp.StatusCode, Err: CheckResponse(resp)}
}
