// Package service holds the client's registry service configuration, as Docker's daemon
// has it: registry mirrors for Docker Hub, insecure registries (host:port or CIDR; loopback
// always), registries that may receive non-distributable (foreign) layers, per-host TLS
// from a certificates directory, how a repository name resolves to its index (registry
// host, official or not, mirrors, secure or not), and the endpoints a pull or a push tries,
// in order. A Service holds one immutable Config and replaces it atomically, so a reload
// never shows half a configuration to a request in flight.
package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/distribution/reference"
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
	// DefaultCertsDir is where per-host certificates are looked up, unless the process runs
	// rootless (see DefaultCertsDirFor).
	DefaultCertsDir = "/etc/docker/certs.d"
)

// DefaultCertsDirFor returns the certificates directory used when Options.CertsDir is
// empty, for a process whose environment getenv reads. As Docker's daemon decides it: inside
// RootlessKit (ROOTLESSKIT_STATE_DIR set) it is $XDG_CONFIG_HOME/docker/certs.d
// (~/.config/docker/certs.d without XDG_CONFIG_HOME), since an unprivileged user cannot
// write /etc; otherwise DefaultCertsDir.
func DefaultCertsDirFor(getenv func(string) string) string {
	if getenv("ROOTLESSKIT_STATE_DIR") != "" {
		home := getenv("XDG_CONFIG_HOME")
		if home == "" && getenv("HOME") != "" {
			home = filepath.Join(getenv("HOME"), ".config")
		}
		if home != "" {
			return filepath.Join(home, "docker", "certs.d")
		}
	}
	return DefaultCertsDir
}

// Options is the configuration as a user writes it.
type Options struct {
	// Mirrors are Docker Hub mirrors, "https://mirror.example.com", possibly with a path
	// ("https://proxy.example/dockerhub": the API is then under /dockerhub/v2/), as the
	// daemon accepts them. A trailing "/" is dropped; a query, fragment or user info is an
	// error.
	Mirrors []string
	// InsecureRegistries are "host[:port]" names or CIDR ranges ("10.0.0.0/8") reached
	// without TLS verification, and over plain HTTP when HTTPS fails. Loopback addresses are
	// always insecure.
	InsecureRegistries []string
	// AllInsecure makes every registry insecure, as if each were listed in
	// InsecureRegistries: a command's --insecure. Docker Hub stays secure.
	AllInsecure bool
	// AllowNondistributableArtifacts are "host[:port]" names or CIDR ranges of registries
	// to which non-distributable (foreign) layers are pushed like any other; to others they
	// are left out, referenced by their URLs (the daemon's
	// allow-nondistributable-artifacts).
	AllowNondistributableArtifacts []string
	// CertsDir is the certificates directory (default DefaultCertsDirFor(os.Getenv)).
	CertsDir string
	// LookupIP resolves host names for matching CIDRs (default net.DefaultResolver). It is
	// called only when some CIDR other than loopback is configured.
	LookupIP func(ctx context.Context, host string) ([]net.IP, error)
}

// Config is a validated, immutable configuration.
type Config struct {
	mirrors     []*url.URL
	hosts       map[string]bool // insecure host[:port] names
	cidrs       []*net.IPNet    // insecure ranges, loopback first
	allInsecure bool
	anaHosts    map[string]bool // allow-nondistributable-artifacts host[:port] names
	anaCIDRs    []*net.IPNet
	certsDir    string
	lookupIP    func(ctx context.Context, host string) ([]net.IP, error)
}

var loopbackCIDRs = []string{"127.0.0.0/8", "::1/128"}

// NewConfig validates opts. Every problem is reported, joined.
func NewConfig(opts Options) (*Config, error) {
	c := &Config{hosts: map[string]bool{}, anaHosts: map[string]bool{}, certsDir: opts.CertsDir,
		lookupIP: opts.LookupIP, allInsecure: opts.AllInsecure}
	if c.certsDir == "" {
		c.certsDir = DefaultCertsDirFor(os.Getenv)
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
		if err := c.addRegistry("insecure registry", r, c.hosts, &c.cidrs); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range opts.AllowNondistributableArtifacts {
		if err := c.addRegistry("allow-nondistributable-artifacts registry", r, c.anaHosts, &c.anaCIDRs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// ValidateMirror checks a mirror URL and returns it normalised: scheme and host in lower
// case, the path (if any) without a trailing "/".
func ValidateMirror(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if scheme, _, ok := strings.Cut(s, "://"); !ok || scheme == "" {
		// url.Parse would take "host:5000" for a scheme and an opaque path.
		return nil, fmt.Errorf("mirror %q: the scheme must be http or https", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("mirror %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("mirror %q: the scheme must be http or https", s)
	case u.Host == "":
		return nil, fmt.Errorf("mirror %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("mirror %q: user info is not allowed (put credentials in the config file)", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("mirror %q: a query is not allowed", s)
	case u.Fragment != "":
		return nil, fmt.Errorf("mirror %q: a fragment is not allowed", s)
	}
	path := strings.TrimSuffix(u.Path, "/")
	if path != "" {
		for _, seg := range strings.Split(path[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("mirror %q: the path may not have empty, \".\" or \"..\" segments", s)
			}
		}
	}
	if err := validateHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("mirror %q: %w", s, err)
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host), Path: path}, nil
}

// ValidateIndexName checks an index (registry) name as the daemon validates its
// configuration, and returns it normalised: Docker Hub's legacy "index.docker.io" is
// "docker.io"; a name may not begin or end with a hyphen.
func ValidateIndexName(name string) (string, error) {
	name = normalizeIndexName(name)
	if strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return "", fmt.Errorf("invalid index name %q: it may not begin or end with a hyphen", name)
	}
	return name, nil
}

func normalizeIndexName(name string) string {
	if strings.EqualFold(name, IndexHostname) {
		return DefaultDomain
	}
	return name
}

var hostPortRegexp = regexp.MustCompile(`^(?:` + reference.DomainRegexp.String() + `)$`)

// validateHostPort checks "host[:port]" with the reference grammar's domain rule (which
// takes IPv6 addresses in brackets) and a port that fits 16 bits.
func validateHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, ""
	}
	if !hostPortRegexp.MatchString(s) && net.ParseIP(host) == nil {
		return fmt.Errorf("invalid host %q", host)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("invalid port %q", port)
		}
	}
	return nil
}

// addRegistry adds r, a host[:port] or a CIDR, to hosts or cidrs.
func (c *Config) addRegistry(what, r string, hosts map[string]bool, cidrs *[]*net.IPNet) error {
	r = strings.TrimSpace(r)
	if strings.Contains(r, "://") {
		return fmt.Errorf("%s %q: give host[:port] or a CIDR, without a scheme", what, r)
	}
	if _, n, err := net.ParseCIDR(r); err == nil {
		*cidrs = append(*cidrs, n)
		return nil
	}
	name, err := ValidateIndexName(r)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, r, err)
	}
	if name == "" || strings.ContainsAny(name, "/?#@ ") {
		return fmt.Errorf("%s %q: not a host[:port] or a CIDR", what, r)
	}
	if h, p, err := net.SplitHostPort(name); err == nil && (h == "" || p == "") {
		return fmt.Errorf("%s %q: not a host[:port] or a CIDR", what, r)
	}
	if err := validateHostPort(name); err != nil {
		return fmt.Errorf("%s %q: %w", what, r, err)
	}
	hosts[strings.ToLower(name)] = true
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
// always), or any registry but Docker Hub with AllInsecure. A host name is resolved for
// the match only when a range other than loopback is configured; "localhost" counts as
// loopback without resolving.
func (c *Config) IsInsecure(ctx context.Context, host string) bool {
	host = strings.ToLower(host)
	if c.allInsecure && !IsDockerHub(host) {
		return true
	}
	if c.hosts[host] {
		return true
	}
	name := hostName(host)
	if c.hosts[name] {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	return c.inRanges(ctx, name, c.cidrs, len(loopbackCIDRs))
}

// AllowsNondistributable reports whether non-distributable (foreign) layers may be pushed
// to host ("host[:port]"): listed by name, or an address in a listed range.
func (c *Config) AllowsNondistributable(ctx context.Context, host string) bool {
	host = strings.ToLower(normalizeIndexName(host))
	if c.anaHosts[host] {
		return true
	}
	return c.inRanges(ctx, hostName(host), c.anaCIDRs, 0)
}

// hostName returns the host of "host[:port]", without IPv6 brackets.
func hostName(host string) string {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
}

// inRanges reports whether name (an address, or a host name resolved for the purpose) is
// in one of cidrs. Names are resolved only when there are more than builtin ranges.
func (c *Config) inRanges(ctx context.Context, name string, cidrs []*net.IPNet, builtin int) bool {
	if ip := net.ParseIP(name); ip != nil {
		return contains(cidrs, ip)
	}
	if len(cidrs) == builtin {
		return false
	}
	ips, err := c.lookupIP(ctx, name)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if contains(cidrs, ip) {
			return true
		}
	}
	return false
}

func contains(cidrs []*net.IPNet, ip net.IP) bool {
	for _, n := range cidrs {
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

// ResolveRepository is Config().ResolveRepository.
func (s *Service) ResolveRepository(ctx context.Context, name string) (*RepositoryInfo, error) {
	return s.Config().ResolveRepository(ctx, name)
}

// ResolveIndexInfo is Config().ResolveIndexInfo.
func (s *Service) ResolveIndexInfo(ctx context.Context, name string) (*IndexInfo, error) {
	return s.Config().ResolveIndexInfo(ctx, name)
}

// LookupPullEndpoints is Config().LookupPullEndpoints.
func (s *Service) LookupPullEndpoints(ctx context.Context, registry string) ([]Endpoint, error) {
	return s.Config().LookupPullEndpoints(ctx, registry)
}

// LookupPushEndpoints is Config().LookupPushEndpoints.
func (s *Service) LookupPushEndpoints(ctx context.Context, registry string) ([]Endpoint, error) {
	return s.Config().LookupPushEndpoints(ctx, registry)
}
