// Package service holds the client's registry service configuration, as Docker's daemon
// has it: registry mirrors for Docker Hub, insecure registries (host:port or CIDR; loopback
// always), per-host TLS from a certificates directory, and the endpoints a pull or a push
// tries, in order. A Service holds one immutable Config and replaces it atomically, so a
// reload never shows half a configuration to a request in flight.
package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
)

// Docker Hub's names.
const (
	// DefaultDomain is the registry of references without one ("ubuntu").
	DefaultDomain = "docker.io"
	// IndexHostname is Docker Hub's legacy index host, where search is served.
	IndexHostname = "index.docker.io"
	// DefaultRegistryHost is where Docker Hub's registry API is served.
	DefaultRegistryHost = "registry-1.docker.io"
	// IndexServer is Docker Hub's key in config files and credential helpers.
	IndexServer = "https://index.docker.io/v1/"
	// DefaultCertsDir is where per-host certificates are looked up.
	DefaultCertsDir = "/etc/docker/certs.d"
)

// Options is the configuration as a user writes it.
type Options struct {
	// Mirrors are Docker Hub mirrors, "https://mirror.example.com" (a trailing "/" is
	// allowed; a path, query, fragment or user info is not).
	Mirrors []string
	// InsecureRegistries are "host[:port]" names or CIDR ranges ("10.0.0.0/8") reached
	// without TLS verification, and over plain HTTP when HTTPS fails. Loopback addresses are
	// always insecure.
	InsecureRegistries []string
	// CertsDir is the certificates directory (default DefaultCertsDir).
	CertsDir string
	// LookupIP resolves host names for matching insecure CIDRs (default
	// net.DefaultResolver). It is called only when some CIDR other than loopback is
	// configured.
	LookupIP func(ctx context.Context, host string) ([]net.IP, error)
}

// Config is a validated, immutable configuration.
type Config struct {
	mirrors  []*url.URL
	hosts    map[string]bool // insecure host[:port] names
	cidrs    []*net.IPNet    // insecure ranges, loopback first
	certsDir string
	lookupIP func(ctx context.Context, host string) ([]net.IP, error)
}

var loopbackCIDRs = []string{"127.0.0.0/8", "::1/128"}

// NewConfig validates opts. Every problem is reported, joined.
func NewConfig(opts Options) (*Config, error) {
	c := &Config{hosts: map[string]bool{}, certsDir: opts.CertsDir, lookupIP: opts.LookupIP}
	if c.certsDir == "" {
		c.certsDir = DefaultCertsDir
	}
	if c.lookupIP == nil {
		c.lookupIP = func(ctx context.Context, host string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", host)
		}
	}
	for _, s := range loopbackCIDRs {
		_, n, _ := net.ParseCIDR(s)
		c.cidrs = append(c.cidrs, n)
	}
	var errs []error
	seen := map[string]bool{}
	for _, m := range opts.Mirrors {
		u, err := ValidateMirror(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[u.String()] {
			seen[u.String()] = true
			c.mirrors = append(c.mirrors, u)
		}
	}
	for _, r := range opts.InsecureRegistries {
		if err := c.addInsecure(r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// ValidateMirror checks a mirror URL and returns it normalised to "scheme://host".
func ValidateMirror(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("mirror %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("mirror %q: the scheme must be http or https", s)
	case u.Host == "":
		return nil, fmt.Errorf("mirror %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("mirror %q: user info is not allowed (put credentials in the config file)", s)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("mirror %q: a path is not allowed", s)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("mirror %q: a query is not allowed", s)
	case u.Fragment != "":
		return nil, fmt.Errorf("mirror %q: a fragment is not allowed", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}

func (c *Config) addInsecure(r string) error {
	r = strings.TrimSpace(r)
	if strings.Contains(r, "://") {
		return fmt.Errorf("insecure registry %q: give host[:port] or a CIDR, without a scheme", r)
	}
	if _, n, err := net.ParseCIDR(r); err == nil {
		c.cidrs = append(c.cidrs, n)
		return nil
	}
	if r == "" || strings.ContainsAny(r, "/?#@ ") {
		return fmt.Errorf("insecure registry %q: not a host[:port] or a CIDR", r)
	}
	if h, p, err := net.SplitHostPort(r); err == nil && (h == "" || p == "") {
		return fmt.Errorf("insecure registry %q: not a host[:port] or a CIDR", r)
	}
	c.hosts[strings.ToLower(r)] = true
	return nil
}

// Mirrors returns the Docker Hub mirrors, normalised.
func (c *Config) Mirrors() []string {
	out := make([]string, len(c.mirrors))
	for i, m := range c.mirrors {
		out[i] = m.String()
	}
	return out
}

// CertsDir returns the certificates directory.
func (c *Config) CertsDir() string { return c.certsDir }

// IsInsecure reports whether host ("host[:port]") is an insecure registry: listed by name
// (with its port, if it has one, or without), or an address in an insecure range (loopback
// always). A host name is resolved for the match only when a range other than loopback is
// configured; "localhost" counts as loopback without resolving.
func (c *Config) IsInsecure(ctx context.Context, host string) bool {
	host = strings.ToLower(host)
	if c.hosts[host] {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if c.hosts[name] {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	if ip := net.ParseIP(name); ip != nil {
		return c.inRanges(ip)
	}
	if len(c.cidrs) == len(loopbackCIDRs) {
		return false
	}
	ips, err := c.lookupIP(ctx, name)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if c.inRanges(ip) {
			return true
		}
	}
	return false
}

func (c *Config) inRanges(ip net.IP) bool {
	for _, n := range c.cidrs {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Service holds the current Config. It is safe for concurrent use.
type Service struct {
	cfg atomic.Pointer[Config]
}

// New returns a Service with a configuration built from opts.
func New(opts Options) (*Service, error) {
	c, err := NewConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Service{}
	s.cfg.Store(c)
	return s, nil
}

// Config returns the configuration in force. It never changes; a reload replaces it.
func (s *Service) Config() *Config { return s.cfg.Load() }

// Reload validates opts and, only if they are valid, replaces the configuration at once.
func (s *Service) Reload(opts Options) error {
	c, err := NewConfig(opts)
	if err != nil {
		return err
	}
	s.cfg.Store(c)
	return nil
}
