package connector

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/registry"
)

// Registry types.
const (
	// TypeHosted holds content pushed to berth.
	TypeHosted = "hosted"
	// TypeCache is a pull-through cache of an upstream registry.
	TypeCache = "cache"
	// TypeVirtual reads from an ordered list of members and pushes to one.
	TypeVirtual = "virtual"
)

// Defaults of a cache registry.
const (
	DefaultTagTTL        = 5 * time.Minute
	DefaultNotFoundTTL   = 30 * time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultProbeInterval = 30 * time.Second
	DefaultCatalogTTL    = 5 * time.Minute
)

// Config is the `registries:` section: every repository name belongs to the
// entry with the longest matching prefix, and to an implicit hosted
// registry when none matches.
type Config []Registry

// Registry is one entry of Config.
type Registry struct {
	// Name identifies the registry in members, pushTo, logs and the health
	// endpoint.
	Name string `yaml:"name"`
	// Type is hosted, cache or virtual.
	Type string `yaml:"type"`
	// Prefix is the start of the repository names the registry serves,
	// ending in "/" ("hub/"), or "" for the root (mirror mode for a cache).
	// A missing trailing "/" is added.
	Prefix string `yaml:"prefix"`

	// Upstream is the registry a cache fetches from.
	Upstream Upstream `yaml:"upstream"`
	// Allow and Deny are globs on upstream repository names ("library/*",
	// "bitnami/**"; '*' stays within a path component, '**' crosses them).
	// A name is served if it matches an Allow glob (or Allow is empty) and
	// no Deny glob.
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	// TagTTL is how long a cached tag is served before it is revalidated
	// with a HEAD to the upstream (unset: DefaultTagTTL; 0 revalidates on
	// every pull).
	TagTTL *time.Duration `yaml:"tagTTL"`
	// NotFoundTTL is how long the upstream's "not found" is remembered
	// (unset: DefaultNotFoundTTL; 0 does not remember it).
	NotFoundTTL *time.Duration `yaml:"notFoundTTL"`
	// ProbeInterval is the time between health probes (0:
	// DefaultProbeInterval).
	ProbeInterval time.Duration `yaml:"probeInterval"`
	// CatalogTTL is how long the upstream's catalog is kept for catalog
	// and search answers (unset: DefaultCatalogTTL; 0 leaves it out).
	CatalogTTL *time.Duration `yaml:"catalogTTL"`
	// MirrorOf lists the upstream hosts ("docker.io", "ghcr.io") whose
	// mirror requests (containerd's ?ns=HOST) this cache answers.
	MirrorOf []string `yaml:"mirrorOf"`

	// Prefetch is none (default) or layers: with layers, every layer of
	// a manifest fetched from the upstream (each platform of an index
	// that PrefetchPlatforms keeps) is fetched in the background.
	Prefetch string `yaml:"prefetch"`
	// PrefetchPlatforms keeps only these platforms of an index when
	// prefetching (os/arch[/variant]; default all).
	PrefetchPlatforms []string `yaml:"prefetchPlatforms"`
	// PrefetchConcurrency bounds the blobs fetched at once in the
	// background (default DefaultPrefetchConcurrency).
	PrefetchConcurrency int `yaml:"prefetchConcurrency"`
	// Sync lists repositories and tags mirrored every SyncInterval.
	Sync []SyncRule `yaml:"sync"`
	// SyncInterval is the time between syncs (0: DefaultSyncInterval).
	SyncInterval time.Duration `yaml:"syncInterval"`

	// Members are the names of the hosted and cache registries a virtual
	// one reads from, in order.
	Members []string `yaml:"members"`
	// PushTo names the hosted member that receives pushes; without it the
	// virtual registry is read-only.
	PushTo string `yaml:"pushTo"`
}

// Upstream is where a cache fetches from and how.
type Upstream struct {
	// URL is the upstream registry's base URL, http(s)://HOST[:PORT].
	URL string `yaml:"url"`
	// RemotePrefix is put before every upstream repository name: local
	// PREFIX/x is upstream REMOTEPREFIX/x.
	RemotePrefix string `yaml:"remotePrefix"`
	// SingleNamePrefix is put before upstream names of one path
	// component only (after RemotePrefix): Docker Hub serves "alpine" as
	// "library/alpine". Default "library/" for Docker Hub, else "".
	SingleNamePrefix string `yaml:"singleNamePrefix"`
	// Username and Password (or PasswordFile, a file holding it) are the
	// upstream credentials, used for Basic challenges and to obtain Bearer
	// tokens; without them access is anonymous.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"passwordFile"`
	// Timeout bounds connecting, waiting for an answer and a stall while
	// reading one (0: DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Provider names what the upstream needs beyond the distribution API
	// (package connector/provider): generic (the default), dockerhub,
	// ecr, acr, gar, ghcr, gitlab, or one a custom build registered.
	Provider string `yaml:"provider"`
	// CredentialHelper names a Docker credential helper
	// (docker-credential-NAME, e.g. ecr-login) that gives the upstream
	// host's credentials, instead of Username and Password.
	CredentialHelper string `yaml:"credentialHelper"`
	// TLS configures the connection to the upstream.
	TLS UpstreamTLS `yaml:"tls"`
	// The sections of the built-in providers.
	DockerHub provider.DockerHubConfig `yaml:"dockerhub"`
	ECR       provider.ECRConfig       `yaml:"ecr"`
	ACR       provider.ACRConfig       `yaml:"acr"`
	GAR       provider.GARConfig       `yaml:"gar"`
	// Options are the settings of a provider a custom build registered.
	Options map[string]string `yaml:"options"`
}

// UpstreamTLS is the TLS configuration of an upstream connection.
type UpstreamTLS struct {
	// CAFile holds PEM certificates trusted besides the system's, for the
	// upstream and its provider's endpoints.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate and its key, for
	// upstreams that ask for one.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// InsecureSkipVerify accepts any certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// Prefetch modes of a cache.
const (
	// PrefetchNone fetches blobs only when a client asks for them.
	PrefetchNone = "none"
	// PrefetchLayers fetches every layer of a pulled manifest in the
	// background.
	PrefetchLayers = "layers"
)

// SyncRule is one entry of a cache's sync list: the tags of a repository
// mirrored on the sync interval.
type SyncRule struct {
	// Repository is the upstream repository's name, as the cache maps it
	// (library/alpine, or alpine under Docker Hub's single-name prefix).
	Repository string `yaml:"repository"`
	// Tags is a glob on tag names ("3.*"; default every tag).
	Tags string `yaml:"tags"`
	// Platforms keeps only these platforms of an index (os/arch[/variant];
	// default all of them).
	Platforms []string `yaml:"platforms"`
}

// Defaults of prefetching and sync.
const (
	DefaultPrefetchConcurrency = 4
	DefaultSyncInterval        = 6 * time.Hour
)

// ResolveFiles makes relative file paths relative to dir, the directory
// of the config file that named them.
func (c Config) ResolveFiles(dir string) {
	for i := range c {
		u := &c[i].Upstream
		for _, p := range []*string{&u.PasswordFile, &u.TLS.CAFile, &u.TLS.CertFile, &u.TLS.KeyFile,
			&u.ECR.SecretAccessKeyFile, &u.ACR.ClientSecretFile, &u.GAR.CredentialsFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
}

var registryNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Docker Hub's host names: references name docker.io, the API lives on
// registry-1.docker.io.
var dockerHubHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// dockerHubAPI is where Docker Hub serves the registry API.
const dockerHubAPI = "registry-1.docker.io"

// Validate checks c and fills in defaults (trailing slashes of prefixes,
// Docker Hub's single-name prefix). It reports every problem at once, each
// naming the entry ("registries[1] (hub): ...").
func (c Config) Validate() error {
	var errs []error
	names := map[string]int{}
	prefixes := map[string]string{}
	mirrors := map[string]string{}
	for i := range c {
		r := &c[i]
		label := fmt.Sprintf("registries[%d]", i)
		if r.Name != "" {
			label += " (" + r.Name + ")"
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", label, fmt.Sprintf(format, args...)))
		}
		switch {
		case r.Name == "":
			bad("name: required")
		case !registryNameRE.MatchString(r.Name):
			bad("name %q: want lower-case letters, digits, '.', '_' or '-'", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				bad("name %q: already used by registries[%d]", r.Name, j)
			}
			names[r.Name] = i
		}
		if r.Prefix != "" && !strings.HasSuffix(r.Prefix, "/") {
			r.Prefix += "/"
		}
		if r.Prefix != "" && !registry.ValidName(strings.TrimSuffix(r.Prefix, "/")) {
			bad("prefix %q: want repository path components ending in /, such as hub/, or \"\" for the root", r.Prefix)
		}
		if other, dup := prefixes[r.Prefix]; dup {
			bad("prefix %q: already used by registry %s", r.Prefix, other)
		}
		prefixes[r.Prefix] = r.Name
		switch r.Type {
		case TypeHosted:
			if r.isCacheConfigured() || len(r.Members) > 0 || r.PushTo != "" {
				bad("a hosted registry takes only name and prefix")
			}
		case TypeCache:
			r.validateCache(bad)
			for _, h := range r.MirrorOf {
				h = canonicalHost(h)
				if other, dup := mirrors[h]; dup {
					bad("mirrorOf %q: registry %s mirrors it already", h, other)
				}
				mirrors[h] = r.Name
			}
			if len(r.Members) > 0 || r.PushTo != "" {
				bad("members and pushTo are for virtual registries")
			}
		case TypeVirtual:
			if r.isCacheConfigured() {
				bad("upstream, allow, deny, TTLs and mirrorOf (and prefetch and sync) are for cache registries")
			}
			if len(r.Members) == 0 {
				bad("members: a virtual registry needs at least one member")
			}
		case "":
			bad("type: required (hosted, cache or virtual)")
		default:
			bad("type %q: want hosted, cache or virtual", r.Type)
		}
	}
	// Members refer to other entries: checked once all names are known.
	for i := range c {
		r := &c[i]
		if r.Type != TypeVirtual {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("registries[%d] (%s): %s", i, r.Name, fmt.Sprintf(format, args...)))
		}
		seen := map[string]bool{}
		for _, m := range r.Members {
			j, ok := names[m]
			switch {
			case !ok:
				bad("member %q: no registry has that name", m)
			case seen[m]:
				bad("member %q: listed twice", m)
			case c[j].Type == TypeVirtual:
				bad("member %q: is virtual; members must be hosted or cache registries", m)
			}
			seen[m] = true
		}
		if r.PushTo != "" {
			j, ok := names[r.PushTo]
			switch {
			case !seen[r.PushTo]:
				bad("pushTo %q: must be one of the members", r.PushTo)
			case ok && c[j].Type != TypeHosted:
				bad("pushTo %q: must be a hosted registry (a cache cannot be pushed to)", r.PushTo)
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Registry) isCacheConfigured() bool {
	return !reflect.ValueOf(r.Upstream).IsZero() || r.Prefetch != "" || len(r.PrefetchPlatforms) > 0 ||
		r.PrefetchConcurrency != 0 || len(r.Sync) > 0 || r.SyncInterval != 0 || len(r.Allow) > 0 || len(r.Deny) > 0 || r.TagTTL != nil ||
		r.NotFoundTTL != nil || r.ProbeInterval != 0 || r.CatalogTTL != nil || len(r.MirrorOf) > 0
}

func (r *Registry) validateCache(bad func(string, ...any)) {
	u := &r.Upstream
	pf, ok := provider.Lookup(u.Provider)
	if !ok {
		bad("upstream.provider %q: no such provider (known: %s)", u.Provider, strings.Join(provider.Names(), ", "))
	} else if pf.Defaults != nil {
		u.URL, u.SingleNamePrefix = pf.Defaults(u.URL, u.SingleNamePrefix)
	}
	if u.URL == "" {
		bad("upstream.url: required for a cache, e.g. https://registry-1.docker.io")
	} else if pu, err := url.Parse(u.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		bad("upstream.url %q: want http(s)://HOST[:PORT]", u.URL)
	} else if pu.User != nil {
		bad("upstream.url %q: put credentials in upstream.username and upstream.password, not in the URL", u.URL)
	} else if (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" || pu.Fragment != "" {
		bad("upstream.url %q: want no path, query or fragment (the registry API lives at /v2/)", u.URL)
	} else if u.SingleNamePrefix == "" && dockerHubHosts[pu.Hostname()] {
		u.SingleNamePrefix = "library/"
	}
	for _, p := range []struct{ key, val string }{{"remotePrefix", u.RemotePrefix}, {"singleNamePrefix", u.SingleNamePrefix}} {
		if p.val != "" && (!strings.HasSuffix(p.val, "/") || !registry.ValidName(strings.TrimSuffix(p.val, "/"))) {
			bad("upstream.%s %q: want repository path components ending in /, such as library/", p.key, p.val)
		}
	}
	if u.Password != "" && u.PasswordFile != "" {
		bad("upstream: set password or passwordFile, not both")
	}
	if pu, err := url.Parse(u.URL); ok && err == nil && pu.Host != "" && pf.Check != nil {
		if err := pf.Check(provider.Env{Registry: r.Name, URL: &url.URL{Scheme: pu.Scheme, Host: pu.Host}, Settings: u.settings()}); err != nil {
			for _, e := range splitJoined(err) {
				bad("upstream (provider %s): %v", providerName(u.Provider), e)
			}
		}
	}
	if (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
		bad("upstream.tls: set certFile and keyFile together")
	}
	switch r.Prefetch {
	case "", PrefetchNone, PrefetchLayers:
	default:
		bad("prefetch %q: want none or layers", r.Prefetch)
	}
	if len(r.PrefetchPlatforms) > 0 && r.Prefetch != PrefetchLayers {
		bad("prefetchPlatforms: applies with prefetch: layers")
	}
	for _, p := range r.PrefetchPlatforms {
		if _, err := parsePlatform(p); err != nil {
			bad("prefetchPlatforms: %v", err)
		}
	}
	if r.PrefetchConcurrency < 0 || r.PrefetchConcurrency > 64 {
		bad("prefetchConcurrency %d: want 1 to 64 (0 for the default, %d)", r.PrefetchConcurrency, DefaultPrefetchConcurrency)
	}
	for i, s := range r.Sync {
		if s.Repository == "" || !registry.ValidName(s.Repository) {
			bad("sync[%d].repository %q: want a repository name as the cache maps it (library/alpine)", i, s.Repository)
		} else if _, allowed := r.remoteOf(s.Repository); !allowed {
			bad("sync[%d].repository %q: the allow and deny lists exclude it", i, s.Repository)
		}
		if s.Tags != "" {
			if _, err := glob.Compile(s.Tags); err != nil {
				bad("sync[%d].tags: %v", i, err)
			}
		}
		for _, p := range s.Platforms {
			if _, err := parsePlatform(p); err != nil {
				bad("sync[%d].platforms: %v", i, err)
			}
		}
	}
	if r.SyncInterval != 0 && r.SyncInterval < time.Minute {
		bad("syncInterval %v: want at least 1m (0s for the default, %v)", r.SyncInterval, DefaultSyncInterval)
	}
	if (u.Password != "" || u.PasswordFile != "") && u.Username == "" {
		bad("upstream.username: required with a password")
	}
	if u.Timeout != 0 && (u.Timeout < time.Second || u.Timeout > time.Hour) {
		bad("upstream.timeout %v: want from 1s to 1h (0s for the default, %v)", u.Timeout, DefaultTimeout)
	}
	for _, l := range []struct {
		key   string
		globs []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		for _, g := range l.globs {
			if _, err := glob.Compile(g); err != nil {
				bad("%s: %v", l.key, err)
			}
		}
	}
	for _, f := range []struct {
		key string
		v   *time.Duration
	}{{"tagTTL", r.TagTTL}, {"notFoundTTL", r.NotFoundTTL}, {"catalogTTL", r.CatalogTTL}} {
		if f.v != nil && *f.v < 0 {
			bad("%s %v: must not be negative", f.key, *f.v)
		}
	}
	if r.ProbeInterval != 0 && r.ProbeInterval < time.Second {
		bad("probeInterval %v: want at least 1s (0s for the default, %v)", r.ProbeInterval, DefaultProbeInterval)
	}
	for _, h := range r.MirrorOf {
		if !validHost(h) {
			bad("mirrorOf %q: want a registry host such as docker.io or ghcr.io", h)
		}
	}
}

// settings returns what the upstream's provider reads.
func (u *Upstream) settings() provider.Settings {
	return provider.Settings{
		Username: u.Username, Password: u.Password, PasswordFile: u.PasswordFile, CredentialHelper: u.CredentialHelper,
		DockerHub: u.DockerHub, ECR: u.ECR, ACR: u.ACR, GAR: u.GAR, Options: u.Options,
	}
}

// providerName is the name of a configured provider.
func providerName(p string) string {
	if p == "" {
		return provider.Generic
	}
	return p
}

// splitJoined returns the errors an errors.Join made, or err alone.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// remoteOf maps a sync repository, as the cache's clients name it under
// its prefix, to the upstream's name, and reports whether allow and deny
// let it through.
func (r *Registry) remoteOf(rest string) (string, bool) {
	name := r.Upstream.RemotePrefix
	if r.Upstream.SingleNamePrefix != "" && !strings.Contains(rest, "/") {
		name += r.Upstream.SingleNamePrefix
	}
	name += rest
	ok := len(r.Allow) == 0
	for _, a := range r.Allow {
		if g, err := glob.Compile(a); err == nil && g.Match(name) {
			ok = true
		}
	}
	for _, d := range r.Deny {
		if g, err := glob.Compile(d); err == nil && g.Match(name) {
			return name, false
		}
	}
	return name, ok
}

// validHost reports whether h is "host[:port]".
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/?#@ ") {
		return false
	}
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if port == "" {
			return false
		}
		host = hh
	}
	return host != ""
}

// canonicalHost maps Docker Hub's names to one and lower-cases the rest.
func canonicalHost(h string) string {
	h = strings.ToLower(h)
	if dockerHubHosts[h] {
		return "docker.io"
	}
	return h
}

// orDefault is *p, or def when p is unset.
func orDefault(p *time.Duration, def time.Duration) time.Duration {
	if p == nil {
		return def
	}
	return *p
}
