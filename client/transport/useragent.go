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

// headers adds fixed headers to requests.
type headers struct {
	inner http.RoundTripper
	h     http.Header
}

// NewHeaders returns a RoundTripper that adds the headers h (the Docker daemon's "meta
// headers": X-Meta-* and the like, sent beside the User-Agent) to every request that does
// not set them itself, then passes it to inner. h is copied; it may not set Authorization,
// Host or User-Agent, which belong to other parts of the chain and are left out.
func NewHeaders(inner http.RoundTripper, h http.Header) http.RoundTripper {
	own := http.Header{}
	for k, vs := range h {
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Authorization", "Host", "User-Agent":
			continue
		}
		own[k] = append([]string(nil), vs...)
	}
	if len(own) == 0 {
		return inner
	}
	return &headers{inner: inner, h: own}
}

func (t *headers) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, vs := range t.h {
		if _, set := r.Header[k]; !set {
			r.Header[k] = append([]string(nil), vs...)
		}
	}
	return t.inner.RoundTrip(r)
}
