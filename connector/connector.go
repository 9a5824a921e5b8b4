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
const HealthPath = "/_berth/connectors"

// Options tune a Connector. Authorize and MayPull are the registry's hooks
// (registry.Options): the connector authorizes the requests it answers or
// forwards under another name itself, for the name the client used.
type Options struct {
	// Logger receives upstream fetches, failures and health changes.
	Logger *slog.Logger
	// Authorize, when set, is called before the connector acts on a
	// request; it writes the response and returns false to refuse it.
	Authorize func(w http.ResponseWriter, r *http.Request, rt registry.Route) bool
	// MayPull, when set, filters the catalog and search to what the caller
	// may pull.
	MayPull func(r *http.Request, name string) bool
	// MayMount, when set, decides whether a mount may read from a
	// repository (registry.Options.MayMount).
	MayMount func(r *http.Request, name string) bool
	// MaxManifestSize bounds manifests fetched from upstreams
	// (default registry.DefaultMaxManifestSize).
	MaxManifestSize int64
	// Now is the clock of TTLs (default time.Now).
	Now func() time.Time
}

// Connector is an http.Handler in front of the registry. It sends every
// request to the registry it belongs to (the configured entry with the
// longest matching prefix): hosted names pass through unchanged; cache
// names are filled from their upstream on a miss and then served by the
// registry from the same metadata and storage, under the local name;
// virtual names are rewritten to the member that has the content (reads)
// or to the push target (writes). It also answers the catalog and search
// over all of them, and the health endpoint.
type Connector struct {
	next  http.Handler
	meta  metadata.Store
	blobs *storage.Store
	opts  Options
	log   *slog.Logger

	entries []*entry // longest prefix first
	byName  map[string]*entry
	caches  []*cache
	mirrors map[string]*entry // canonical upstream host → cache entry
	// active is false when only hosted registries are configured: every
	// request passes through.
	active bool

	flights *flights
	ctx     context.Context // cancelled by Close: ends fills and probes
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
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

// New returns a Connector for cfg (validated here too) in front of next,
// the registry serving meta and blobs. It starts a health probe per cache;
// Close stops them.
func New(cfg Config, next http.Handler, meta metadata.Store, blobs *storage.Store, opts Options) (*Connector, error) {
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
	c := &Connector{
		next: next, meta: meta, blobs: blobs, opts: opts, log: opts.Logger,
		byName: map[string]*entry{}, mirrors: map[string]*entry{},
		flights: newFlights(), ctx: ctx, cancel: cancel,
	}
	for _, rc := range cfg {
		e := &entry{name: rc.Name, typ: rc.Type, prefix: rc.Prefix}
		if rc.Type == TypeCache {
			ca, err := newCache(rc)
			if err != nil {
				cancel()
				for _, ca := range c.caches {
					ca.up.close()
				}
				return nil, fmt.Errorf("registry %s: %w", rc.Name, err)
			}
			e.cache = ca
			c.caches = append(c.caches, ca)
			for _, h := range rc.MirrorOf {
				c.mirrors[canonicalHost(h)] = e
			}
		}
		if rc.Type != TypeHosted {
			c.active = true
		}
		c.entries = append(c.entries, e)
		c.byName[e.name] = e
	}
	for _, rc := range cfg {
		e := c.byName[rc.Name]
		for _, m := range rc.Members {
			e.member = append(e.member, c.byName[m])
		}
		if rc.PushTo != "" {
			e.pushTo = c.byName[rc.PushTo]
		}
	}
	sort.SliceStable(c.entries, func(i, j int) bool { return len(c.entries[i].prefix) > len(c.entries[j].prefix) })
	for _, ca := range c.caches {
		c.goAsync(func() { c.probeLoop(ca) })
	}
	return c, nil
}

// Close stops the health probes and upstream fills in progress and waits
// for them.
func (c *Connector) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
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

// ServeHTTP routes a request to its registry.
func (c *Connector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HealthPath {
		c.serveHealth(w, r)
		return
	}
	if !c.active {
		c.next.ServeHTTP(w, r)
		return
	}
	rt, ok := registry.ParseRoute(r.Method, r.URL.Path)
	if !ok {
		c.next.ServeHTTP(w, r)
		return
	}
	switch rt.Kind {
	case registry.KindCatalog:
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			c.serveCatalog(w, r, rt)
			return
		}
	case registry.KindSearchV1:
		if r.Method == http.MethodGet {
			c.serveSearch(w, r, rt)
			return
		}
	}
	if rt.Name == "" || !registry.ValidName(rt.Name) {
		c.next.ServeHTTP(w, r)
		return
	}
	name, e := rt.Name, (*entry)(nil)
	if ns := r.URL.Query().Get("ns"); ns != "" {
		// containerd's mirror request for a repository of host ns.
		e = c.mirrors[canonicalHost(ns)]
		if e == nil {
			c.writeError(w, r, &registry.Error{Code: registry.ErrNameUnknown,
				Message: fmt.Sprintf("berth is no mirror of %s (no cache lists it in mirrorOf)", ns),
				Detail:  map[string]string{"name": rt.Name, "ns": ns}})
			return
		}
		name = e.prefix + name
		if !registry.ValidName(name) {
			c.writeError(w, r, &registry.Error{Code: registry.ErrNameInvalid,
				Message: fmt.Sprintf("%s would be cached as %s, which is not a valid repository name", rt.Name, name),
				Detail:  map[string]string{"name": rt.Name}})
			return
		}
		// From here on the request is the one for the name that is
		// served: access is decided on it, never on the name the client
		// wrote, which the rules may treat differently.
		r, rt = servedAs(r, rt, name)
	} else {
		e = c.owner(name)
	}
	switch {
	case e == nil || e.typ == TypeHosted:
		c.hosted(w, r, rt)
	case e.typ == TypeCache:
		c.serveCache(w, r, rt, e, name)
	default:
		c.serveVirtual(w, r, rt, e, name)
	}
}

// servedAs returns the request and route for repository name in place of
// rt.Name: the path names it and the ns parameter is gone.
func servedAs(r *http.Request, rt registry.Route, name string) (*http.Request, registry.Route) {
	u := *r.URL
	u.Path = "/v2/" + name + strings.TrimPrefix(r.URL.Path, "/v2/"+rt.Name)
	u.RawPath = ""
	q := u.Query()
	q.Del("ns")
	u.RawQuery = q.Encode()
	r2 := r.Clone(r.Context())
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	rt.Name = name
	return r2, rt
}

// hosted passes a request for a hosted name to the registry, which
// authorizes it. A mount from a virtual name is pointed at the member that
// holds the blob.
func (c *Connector) hosted(w http.ResponseWriter, r *http.Request, rt registry.Route) {
	if rt.Kind == registry.KindUploadStart && r.Method == http.MethodPost {
		if r2, ok := c.rewriteMount(r); ok {
			r = r2
		}
	}
	c.next.ServeHTTP(w, r)
}

// authorize runs the Authorize hook for the route the client asked for.
func (c *Connector) authorize(w http.ResponseWriter, r *http.Request, rt registry.Route) bool {
	if c.opts.Authorize == nil {
		return true
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	return c.opts.Authorize(w, r, rt)
}

func (c *Connector) mayPull(r *http.Request, name string) bool {
	return c.opts.MayPull == nil || c.opts.MayPull(r, name)
}

func (c *Connector) mayMount(r *http.Request, name string) bool {
	if c.opts.MayMount != nil {
		return c.opts.MayMount(r, name)
	}
	return c.mayPull(r, name)
}

// forward hands an authorized request to the registry under name (the
// route's own name, or a member's). Location headers of the answer are
// mapped back to the name the client used.
func (c *Connector) forward(w http.ResponseWriter, r *http.Request, rt registry.Route, name string) {
	r2 := r.WithContext(registry.Authorized(r.Context()))
	if name != rt.Name {
		u := *r.URL
		u.Path = "/v2/" + name + strings.TrimPrefix(r.URL.Path, "/v2/"+rt.Name)
		u.RawPath = ""
		r2.URL = &u
		if rt.Access == registry.AccessPush || rt.Access == registry.AccessDelete {
			w = &locationWriter{ResponseWriter: w, from: "/v2/" + name + "/", to: "/v2/" + rt.Name + "/"}
		}
	}
	c.next.ServeHTTP(w, r2)
}

// locationWriter rewrites the Location header of an answer from one
// repository name to another.
type locationWriter struct {
	http.ResponseWriter
	from, to string
	done     bool
}

func (l *locationWriter) fix() {
	if l.done {
		return
	}
	l.done = true
	h := l.ResponseWriter.Header()
	if loc := h.Get("Location"); strings.HasPrefix(loc, l.from) {
		h.Set("Location", l.to+strings.TrimPrefix(loc, l.from))
	}
}

func (l *locationWriter) WriteHeader(code int) {
	l.fix()
	l.ResponseWriter.WriteHeader(code)
}

func (l *locationWriter) Write(p []byte) (int, error) {
	l.fix()
	return l.ResponseWriter.Write(p)
}

func (l *locationWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// writeError sends e in the spec's format.
func (c *Connector) writeError(w http.ResponseWriter, r *http.Request, e *registry.Error) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	registry.WriteError(w, r, e)
}

// fail answers a request that could not be served: err is an
// *upstreamError, a *registry.Error, or a failure of berth itself.
func (c *Connector) fail(w http.ResponseWriter, r *http.Request, err error, notFound registry.Code, what string) {
	c.writeError(w, r, c.wireError(r, err, notFound, what))
}

func (c *Connector) wireError(r *http.Request, err error, notFound registry.Code, what string) *registry.Error {
	var re *registry.Error
	if errors.As(err, &re) {
		return re
	}
	var ue *upstreamError
	if !errors.As(err, &ue) {
		c.log.Error("connector failed", "method", r.Method, "path", r.URL.Path, "err", err)
		return &registry.Error{Code: registry.ErrUnknown}
	}
	detail := map[string]string{"upstream": ue.upstream, "cause": ue.err.Error()}
	switch ue.kind {
	case kindNotFound:
		return &registry.Error{Code: notFound, Message: fmt.Sprintf("%s is unknown to the upstream %s", what, ue.upstream), Detail: detail}
	case kindRateLimited:
		e := &registry.Error{Code: registry.ErrTooManyRequests, Detail: detail,
			Message: fmt.Sprintf("the upstream %s is rate-limiting and %s is not cached", ue.upstream, what)}
		if ue.retryAfter != "" {
			e.Header = http.Header{"Retry-After": {ue.retryAfter}}
		}
		return e
	case kindRefused:
		return &registry.Error{Code: registry.ErrBadGateway, Detail: detail,
			Message: fmt.Sprintf("the upstream %s refused access to %s: %v", ue.upstream, what, ue.err)}
	case kindBad:
		return &registry.Error{Code: registry.ErrBadGateway, Detail: detail,
			Message: fmt.Sprintf("the upstream %s answered wrongly for %s: %v", ue.upstream, what, ue.err)}
	default:
		return &registry.Error{Code: registry.ErrUnavailable, Detail: detail,
			Message: fmt.Sprintf("the upstream %s is unavailable and %s is not cached: %v", ue.upstream, what, ue.err)}
	}
}

// isNotFound reports whether err says the content does not exist.
func isNotFound(err error) bool {
	return kindOf(err) == kindNotFound || errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrRepositoryNotFound)
}
