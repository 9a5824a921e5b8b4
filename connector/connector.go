package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// HealthPath is where the connectors' health is served as JSON.
const HealthPath = registry.HealthPath

// Options tune a Connector.
type Options struct {
	// Logger receives upstream fetches, failures and health changes.
	Logger *slog.Logger
	// MaxManifestSize bounds manifests fetched from upstreams
	// (default registry.DefaultMaxManifestSize).
	MaxManifestSize int64
	// Now is the clock of TTLs and credential expiry (default time.Now).
	Now func() time.Time
	// TryLock, when set, takes the advisory lock named key shared by
	// every replica (ok false when another holds it), so that a cache's
	// scheduled sync runs on one replica at a time. Without it every
	// process syncs.
	TryLock func(ctx context.Context, key string) (release func(), ok bool, err error)
	// Metrics, when set, counts cache hits and misses and measures
	// upstream requests (metrics.go).
	Metrics Metrics
	// WrapTransport, when set, wraps each upstream client's transport
	// chain (tracing).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Connector is the registry's Resolver when registries are configured: it
// names the Repository that serves each repository name (the configured
// entry with the longest matching prefix: hosted, a cache, or a virtual
// registry), and lists the catalog and search over all of them. It never
// writes HTTP: the registry asks it for content and answers.
type Connector struct {
	env *env

	entries []*entry // longest prefix first
	byName  map[string]*entry
	caches  []*cache
	mirrors map[string]*entry // canonical upstream host → cache entry
	// active is false when only hosted registries are configured: names
	// are served as they are, mirror requests included.
	active bool
}

// env is what the caches share with the connector: the stored content and
// the lifetime of the work they do in the background.
type env struct {
	meta        metadata.ReadWriter
	blobs       *storage.Store
	log         *slog.Logger
	now         func() time.Time
	maxManifest int64
	tryLock     func(ctx context.Context, key string) (func(), bool, error)
	metrics     Metrics
	wrap        func(http.RoundTripper) http.RoundTripper

	ctx    context.Context // cancelled by Close: ends fills and probes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// errClosed is the error of work asked of a closed Connector.
var errClosed = errors.New("connector closed")

// goAsync runs fn in a goroutine that Close waits for, unless the
// Connector is closed.
func (e *env) goAsync(fn func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
	return true
}

// entry is one configured registry.
type entry struct {
	name   string
	typ    string
	prefix string
	cache  *cache   // TypeCache
	member []*entry // TypeVirtual, in order
	pushTo *entry   // TypeVirtual, or nil
}

// New returns a Connector for cfg (validated here too) over meta and
// blobs, the registry's stored content, where caches keep what they fetch
// under their local names. It starts a health probe per cache; Close stops
// them.
func New(cfg Config, meta metadata.ReadWriter, blobs *storage.Store, opts Options) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = registry.DefaultMaxManifestSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{meta: meta, blobs: blobs, log: opts.Logger, now: opts.Now, maxManifest: opts.MaxManifestSize, tryLock: opts.TryLock,
		metrics: opts.Metrics, wrap: opts.WrapTransport, ctx: ctx, cancel: cancel}
	c := &Connector{env: e, byName: map[string]*entry{}, mirrors: map[string]*entry{}}
	for _, rc := range cfg {
		en := &entry{name: rc.Name, typ: rc.Type, prefix: rc.Prefix}
		if rc.Type == TypeCache {
			ca, err := newCache(rc, e)
			if err != nil {
				cancel()
				for _, ca := range c.caches {
					ca.up.close()
				}
				return nil, fmt.Errorf("registry %s: %w", rc.Name, err)
			}
			en.cache = ca
			c.caches = append(c.caches, ca)
			for _, h := range rc.MirrorOf {
				c.mirrors[canonicalHost(h)] = en
			}
		}
		if rc.Type != TypeHosted {
			c.active = true
		}
		c.entries = append(c.entries, en)
		c.byName[en.name] = en
	}
	for _, rc := range cfg {
		en := c.byName[rc.Name]
		for _, m := range rc.Members {
			en.member = append(en.member, c.byName[m])
		}
		if rc.PushTo != "" {
			en.pushTo = c.byName[rc.PushTo]
		}
	}
	sort.SliceStable(c.entries, func(i, j int) bool { return len(c.entries[i].prefix) > len(c.entries[j].prefix) })
	for _, ca := range c.caches {
		e.goAsync(ca.probeLoop)
		if ca.sync != nil {
			e.goAsync(ca.sync.loop)
		}
	}
	return c, nil
}

// Close stops the health probes and upstream fills in progress and waits
// for them.
func (c *Connector) Close() error {
	e := c.env
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	for _, ca := range c.caches {
		ca.up.close()
	}
	return nil
}

// owner returns the registry a repository name belongs to, or nil for the
// implicit hosted registry.
func (c *Connector) owner(name string) *entry {
	for _, e := range c.entries {
		if strings.HasPrefix(name, e.prefix) {
			return e
		}
	}
	return nil
}

// Resolve implements registry.Resolver.
func (c *Connector) Resolve(name string) (registry.Repository, error) {
	e := c.owner(name)
	switch {
	case e == nil || e.typ == TypeHosted:
		return registry.HostedRepository(c.env.meta, name), nil
	case e.typ == TypeCache:
		return e.cache.repository(name), nil
	default:
		return c.virtualRepository(e, name), nil
	}
}

// Mirror implements registry.Resolver: a mirror request for host ns goes
// to the cache whose mirrorOf lists it, under its prefix.
func (c *Connector) Mirror(ns string) (string, bool, error) {
	if !c.active {
		return "", false, nil
	}
	e := c.mirrors[canonicalHost(ns)]
	if e == nil {
		return "", false, &registry.Error{Code: registry.ErrNameUnknown,
			Message: fmt.Sprintf("berth is no mirror of %s (no cache lists it in mirrorOf)", ns),
			Detail:  map[string]string{"ns": ns}}
	}
	return e.prefix, true, nil
}

// wireError turns a failure to get content into the error the registry
// sends: err is an *upstreamError, a *registry.Error, a metadata
// category (answered by the registry with its "unknown" codes), or a
// failure of berth itself. notFound is the code of an upstream's "not
// found", what names the content for messages.
func wireError(err error, notFound registry.Code, what string) error {
	var re *registry.Error
	if err == nil || errors.As(err, &re) {
		return err
	}
	var ue *upstreamError
	if !errors.As(err, &ue) {
		return err
	}
	detail := map[string]string{"upstream": ue.upstream, "cause": ue.err.Error()}
	switch ue.kind {
	case kindNotFound:
		return &registry.Error{Code: notFound, Message: fmt.Sprintf("%s is unknown to the upstream %s", what, ue.upstream), Detail: detail}
	case kindRateLimited:
		e := &registry.Error{Code: registry.ErrTooManyRequests, Detail: detail,
			Message: fmt.Sprintf("the upstream %s is rate-limiting and %s is not cached", ue.upstream, what)}
		if ue.retryAfter != "" {
			e.Header = map[string][]string{"Retry-After": {ue.retryAfter}}
		}
		return e
	case kindRefused:
		return &registry.Error{Code: registry.ErrBadGateway, Detail: detail,
			Message: fmt.Sprintf("the upstream %s refused access to %s: %v", ue.upstream, what, ue.err)}
	case kindBad:
		return &registry.Error{Code: registry.ErrBadGateway, Detail: detail,
			Message: fmt.Sprintf("the upstream %s answered wrongly for %s: %v", ue.upstream, what, ue.err)}
	case kindCredentials:
		return &registry.Error{Code: registry.ErrBadGateway, Detail: detail,
			Message: fmt.Sprintf("berth could not authenticate to the upstream %s, and %s is not cached: %v", ue.upstream, what, ue.err)}
	case kindCanceled:
		return err
	default:
		return &registry.Error{Code: registry.ErrUnavailable, Detail: detail,
			Message: fmt.Sprintf("the upstream %s is unavailable and %s is not cached: %v", ue.upstream, what, ue.err)}
	}
}

// isNotFound reports whether err says the content does not exist.
func isNotFound(err error) bool {
	return kindOf(err) == kindNotFound || errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrRepositoryNotFound)
}

// nameUnknown is the answer for a name no member or upstream may serve.
func nameUnknown(name, format string, args ...any) error {
	return &registry.Error{Code: registry.ErrNameUnknown, Message: fmt.Sprintf(format, args...), Detail: map[string]string{"name": name}}
}
