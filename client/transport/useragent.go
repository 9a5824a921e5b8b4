package transport

import "net/http"

// userAgent sets the User-Agent header of requests that have none.
type userAgent struct {
	inner http.RoundTripper
	ua    string
}

// NewUserAgent returns a RoundTripper that sets User-Agent to ua on every request that does
// not set one, then passes it to inner.
func NewUserAgent(inner http.RoundTripper, ua string) http.RoundTripper {
	return &userAgent{inner: inner, ua: ua}
}

func (t *userAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ua == "" || req.Header.Get("User-Agent") != "" {
		return t.inner.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.inner.RoundTrip(r)
}
