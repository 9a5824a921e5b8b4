package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"

	"github.com/distribution/reference"
)

// Endpoint is one place a registry's API may be reached.
type Endpoint struct {
	// URL is "scheme://host[:port]", with a path only for a mirror configured with one; the
	// API is under URL's path + "/v2/".
	URL *url.URL
	// Mirror marks a Docker Hub mirror.
	Mirror bool
	// Insecure marks an endpoint of an insecure registry: TLS is not verified, or there is
	// none (plain HTTP).
	Insecure bool
	// Official marks Docker Hub itself (not a mirror of it).
	Official bool
	// AllowNondistributableArtifacts says non-distributable (foreign) layers may be pushed
	// here (Options.AllowNondistributableArtifacts). Mirrors never receive pushes.
	AllowNondistributableArtifacts bool
	// TLSConfig is the TLS configuration of an HTTPS endpoint (its certificates directory,
	// no verification when insecure), filled in by LookupPullEndpoints and
	// LookupPushEndpoints; nil for plain HTTP, and from PullEndpoints and PushEndpoints.
	TLSConfig *tls.Config
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
	ana := c.AllowsNondistributable(ctx, registry)
	if IsDockerHub(registry) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: DefaultRegistryHost}, Official: true, AllowNondistributableArtifacts: ana}}
	}
	host := strings.ToLower(registry)
	if !c.IsInsecure(ctx, host) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: host}, AllowNondistributableArtifacts: ana}}
	}
	return []Endpoint{
		{URL: &url.URL{Scheme: "https", Host: host}, Insecure: true, AllowNondistributableArtifacts: ana},
		{URL: &url.URL{Scheme: "http", Host: host}, Insecure: true, AllowNondistributableArtifacts: ana},
	}
}

// SearchEndpoints returns where the v1 search API of registry is tried: Docker Hub's index
// host for Docker Hub, otherwise as for a push.
func (c *Config) SearchEndpoints(ctx context.Context, registry string) []Endpoint {
	if IsDockerHub(registry) {
		return []Endpoint{{URL: &url.URL{Scheme: "https", Host: IndexHostname}, Official: true}}
	}
	return c.PushEndpoints(ctx, registry)
}

// LookupPullEndpoints is PullEndpoints with each HTTPS endpoint's TLS configuration: what
// the daemon's LookupPullEndpoints gives. The registry name is validated first
// (ValidateIndexName); a certificates directory that cannot be read is an error.
func (c *Config) LookupPullEndpoints(ctx context.Context, registry string) ([]Endpoint, error) {
	name, err := ValidateIndexName(registry)
	if err != nil {
		return nil, err
	}
	return c.withTLS(c.PullEndpoints(ctx, name))
}

// LookupPushEndpoints is PushEndpoints with each HTTPS endpoint's TLS configuration.
func (c *Config) LookupPushEndpoints(ctx context.Context, registry string) ([]Endpoint, error) {
	name, err := ValidateIndexName(registry)
	if err != nil {
		return nil, err
	}
	return c.withTLS(c.PushEndpoints(ctx, name))
}

func (c *Config) withTLS(eps []Endpoint) ([]Endpoint, error) {
	for i := range eps {
		if eps[i].URL.Scheme != "https" {
			continue
		}
		cfg, err := c.TLSConfig(eps[i].URL.Host)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", eps[i].URL, err)
		}
		eps[i].TLSConfig = cfg
	}
	return eps, nil
}

// IndexInfo describes a registry (an "index" in the daemon's words) as the configuration
// sees it.
type IndexInfo struct {
	// Name is the registry's name in references: "docker.io", "registry.example:5000".
	Name string `json:"Name"`
	// Mirrors are the configured mirrors, for Docker Hub only.
	Mirrors []string `json:"Mirrors"`
	// Secure is false for an insecure registry (no TLS verification, HTTP allowed).
	Secure bool `json:"Secure"`
	// Official is true for Docker Hub.
	Official bool `json:"Official"`
}

// ResolveIndexInfo returns what the configuration says of the registry name ("host[:port]",
// "docker.io"; "index.docker.io" is Docker Hub too), after validating it.
func (c *Config) ResolveIndexInfo(ctx context.Context, name string) (*IndexInfo, error) {
	name, err := ValidateIndexName(name)
	if err != nil {
		return nil, err
	}
	if IsDockerHub(name) {
		return &IndexInfo{Name: DefaultDomain, Mirrors: c.Mirrors(), Secure: true, Official: true}, nil
	}
	if name == "" || strings.Contains(name, "://") {
		return nil, fmt.Errorf("invalid index name %q: give host[:port]", name)
	}
	if err := validateHostPort(name); err != nil {
		return nil, fmt.Errorf("invalid index name %q: %w", name, err)
	}
	name = strings.ToLower(name)
	return &IndexInfo{Name: name, Mirrors: []string{}, Secure: !c.IsInsecure(ctx, name)}, nil
}

// RepositoryInfo is a repository name broken down as the daemon's ResolveRepository does.
type RepositoryInfo struct {
	// Name is the normalised name without tag or digest: "docker.io/library/ubuntu".
	Name string
	// Path is the name on the registry: "library/ubuntu".
	Path string
	// Index is the registry the repository lives on.
	Index *IndexInfo
	// Official is true for Docker Hub's official images (library/...).
	Official bool
}

// ResolveRepository parses name ("ubuntu", "registry.example:5000/team/app:v1"; a tag or
// digest is dropped) and returns the repository with its registry's information.
func (c *Config) ResolveRepository(ctx context.Context, name string) (*RepositoryInfo, error) {
	if strings.Contains(name, "://") {
		return nil, fmt.Errorf("invalid repository name %q: it may not have a scheme", name)
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("invalid repository name %q: %w", name, err)
	}
	named = reference.TrimNamed(named)
	index, err := c.ResolveIndexInfo(ctx, reference.Domain(named))
	if err != nil {
		return nil, err
	}
	info := &RepositoryInfo{Name: named.Name(), Path: reference.Path(named), Index: index}
	if index.Official {
		info.Official = !strings.Contains(reference.FamiliarName(named), "/")
	}
	return info, nil
}
