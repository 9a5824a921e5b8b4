package connector

import (
	"io"
	"net/http"
	"time"
)

// Metrics receives what caches do; internal/metrics implements it with
// Prometheus collectors. registry is the cache's configured name, so the
// label values are bounded by the configuration.
type Metrics interface {
	// CacheLookup counts a request for content of kind (manifest or
	// blob) that a cache answered from what it had stored (hit) or by
	// fetching it from its upstream (miss). Concurrent requests that
	// share one fetch count as one miss.
	CacheLookup(registry, kind string, hit bool)
	// UpstreamRequest reports one request to an upstream: how long it
	// took to answer, and what failed ("" when it answered below 500 and
	// not 429: a 404 is an answer; otherwise unreachable, rate_limited,
	// server_error).
	UpstreamRequest(registry string, d time.Duration, failure string)
	// UpstreamBytes counts the bytes of answers read from an upstream.
	UpstreamBytes(registry string, n int64)
}

// Rate limits an upstream announces reach the metrics through Status
// (its provider's hints), read when they are scraped.

// Kinds of content for Metrics.CacheLookup.
const (
	kindManifestMetric = "manifest"
	kindBlobMetric     = "blob"
)

// lookup counts a hit or a miss of ca.
func (ca *cache) lookup(kind string, hit bool) {
	if m := ca.env.metrics; m != nil {
		m.CacheLookup(ca.name, kind, hit)
	}
}

// instrument puts the metrics (and the wrapper of Options.WrapTransport)
// between ca's upstream client and its transport chain.
func (ca *cache) instrument() {
	if w := ca.env.wrap; w != nil {
		ca.up.hc.Transport = w(ca.up.hc.Transport)
	}
	if m := ca.env.metrics; m != nil {
		ca.up.hc.Transport = &meteredTransport{next: ca.up.hc.Transport, name: ca.name, m: m}
	}
}

// meteredTransport measures the requests of one cache to its upstream.
type meteredTransport struct {
	next http.RoundTripper
	name string
	m    Metrics
}

func (t *meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	failure := ""
	switch {
	case err != nil:
		failure = "unreachable"
	case resp.StatusCode == http.StatusTooManyRequests:
		failure = "rate_limited"
	case resp.StatusCode >= 500:
		failure = "server_error"
	}
	t.m.UpstreamRequest(t.name, time.Since(start), failure)
	if err != nil {
		return nil, err
	}
	resp.Body = &meteredBody{ReadCloser: resp.Body, name: t.name, m: t.m}
	return resp, nil
}

// meteredBody counts the bytes read of an upstream's answer.
type meteredBody struct {
	io.ReadCloser
	name string
	m    Metrics
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.m.UpstreamBytes(b.name, int64(n))
	}
	return n, err
}
