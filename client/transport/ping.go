package transport

import (
	"context"
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

// Ping sends GET base/v2/ through rt, once (no retries: a failure is the answer). A 200 or a
// 401 with challenges means a registry answers there; anything else is an error.
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
			return res, fmt.Errorf("GET %s: 401 without a WWW-Authenticate challenge", u.Redacted())
		}
		return res, nil
	}
	return res, CheckResponse(resp)
}
