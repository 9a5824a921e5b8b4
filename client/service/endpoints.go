package service

import (
	"context"
	"net/url"
	"strings"
)

// Endpoint is one place a registry's API may be reached.
type Endpoint struct {
	// URL is "scheme://host[:port]", without a path.
	URL *url.URL
	// Mirror marks a Docker Hub mirror.
	Mirror bool
	// Insecure marks an endpoint of an insecure registry: TLS is not verified, or there is
	// none (plain HTTP).
	Insecure bool
}

// Host returns the endpoint's "host[:port]".
func (e Endpoint) Host() string { return e.URL.Host }

// String returns the endpoint URL.
func (e Endpoint) String() string { return e.URL.String() }

// IsDockerHub reports whether registry names Docker Hub.
func IsDockerHub(registry string) bool {
	switch strings.ToLower(registry) {
	case DefaultDomain, IndexHostname, DefaultRegistryHost:
		return true
	}
	return false
}

// PullEndpoints returns the endpoints to try, in order, to pull from registry ("host[:port]"
// as in a reference; "docker.io" for Docker Hub): for Docker Hub the mirrors first, then
// Docker Hub itself; for others HTTPS, followed by plain HTTP only for an insecure registry.
func (c *Config) PullEndpoints(ctx context.Context, registry string) []Endpoint {
	var eps []Endpoint
	if IsDockerHub(registry) {
		for _, m := range c.mirrors {
			u := *m
			eps = append(eps, Endpoint{URL: &u, Mirror: true, Insecure: u.Scheme == "http" || c.IsInsecure(ctx, u.Host)})
		}
	}
	return append(eps, c.PushEndpoints(ctx, registry)...)
}

// PushEndpoints returns the endpoints to try, in order, to push to registry: never a mirror;
// HTTPS, then plain HTTP only for an insecure registry.
func (c *Config) PushEndpoints(ctx context.Context, registry string) []Endpoint {
	if IsDockerHub(registry) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: DefaultRegistryHost}}}
	}
	host := strings.ToLower(registry)
	if !c.IsInsecure(ctx, host) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: host}}}
	}
	return []Endpoint{
		{URL: &url.URL{Scheme: "https", Host: host}, Insecure: true},
		{URL: &url.URL{Scheme: "http", Host: host}, Insecure: true},
	}
}

// SearchEndpoints returns where the v1 search API of registry is tried: Docker Hub's index
// host for Docker Hub, otherwise as for a push.
func (c *Config) SearchEndpoints(ctx context.Context, registry string) []Endpoint {
	if IsDockerHub(registry) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: IndexHostname}}}
	}
	return c.PushEndpoints(ctx, registry)
}
