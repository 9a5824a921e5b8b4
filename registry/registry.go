// Package registry serves the OCI distribution API and the Docker Registry
// HTTP API V2.
//
// One request takes one path: the route is parsed once (routes.go), a
// mirror request's name is rewritten to the name it is served under, the
// caller is authorised once on that name (the Authorize hook), the
// Resolver names the Repository that serves it (hosted, a cache or a
// virtual registry), and the handler of the route family answers from the
// Repository's content. Only this package writes HTTP; Handler, the
// outermost layer, writes the API version header and one access-log line
// per request.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// DefaultMaxManifestSize is the manifest size limit when none is set.
const DefaultMaxManifestSize = mediatype.MaxManifestSize

// Options tune the registry.
type Options struct {
	// MaxManifestSize is the largest manifest accepted, in bytes.
	MaxManifestSize int64
	// RequireLayers makes image manifests fail unless every distributable
	// layer is in the repository. By default only the config blob must be:
	// sparse manifests (some layers or platforms absent) are accepted, as
	// the distribution spec allows.
	RequireLayers bool
	// DeleteReferenced allows deleting a manifest that an index in the
	// same repository lists. By default such a delete is refused: it
	// would leave the index (and its tags) unpullable.
	DeleteReferenced bool
	// Resolver finds the repository that serves a name; by default every
	// name is hosted (Hosted).
	Resolver Resolver
	// Logger receives errors.
	Logger *slog.Logger
	// Authorize, when set, is called for every routed request before its
	// handler, with the route of the name that will be served; it writes
	// the response and returns false to refuse it.
	Authorize func(w http.ResponseWriter, r *http.Request, rt Route) bool
	// MayPull, when set, reports whether the caller of r may pull from the
	// repository name. The catalog and search list only such repositories.
	MayPull func(r *http.Request, name string) bool
	// MayMount, when set, reports whether the caller of r may read the
	// blobs of the stored repository name to mount them into another: a
	// token must grant pull on it itself, not only its account. A
	// cross-repository mount links blobs only from such repositories
	// (otherwise it opens an upload session, as for an unknown blob).
	// Without it, MayPull decides.
	MayMount func(r *http.Request, name string) bool
	// Reload, when set, reloads the configuration for POST ReloadPath
	// (the server's SIGHUP). An error says why the new configuration
	// was refused; the running one stays.
	Reload func(ctx context.Context) error
	// Notifier, when set, hears of every push, pull, delete and mount
	// (notifications).
	Notifier Notifier
	// Audit, when set, records every write and its outcome.
	Audit *audit.Logger
}

// Registry is the HTTP handler of the registry API.
type Registry struct {
	blobs    *storage.Store
	meta     metadata.ReadWriter
	resolver Resolver
	opts     Options
	log      *slog.Logger
	// routes maps route kinds and methods to handlers (see routeTable).
	routes map[int]map[string]handlerFunc
}

// New returns a registry over blobs and meta (the stored content, which
// writes go to and stored blobs are served from) that asks opts.Resolver
// which repository serves each name.
func New(blobs *storage.Store, meta metadata.ReadWriter, opts Options) *Registry {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Resolver == nil {
		opts.Resolver = Hosted{Meta: meta}
	}
	reg := &Registry{blobs: blobs, meta: meta, resolver: opts.Resolver, opts: opts, log: opts.Logger}
	reg.routes = reg.routeTable()
	return reg
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt Route) error

// ServeHTTP routes a request.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := ParseRoute(r.Method, r.URL.Path)
	if !ok {
		writeError(w, r, reg.log, errf(ErrNotFound, "no route for %s %s", r.Method, r.URL.Path))
		return
	}
	routed(r.Context(), rt)
	h, allowed := reg.handler(rt.Kind, r.Method)
	if h == nil {
		w.Header().Set("Allow", allowed)
		writeError(w, r, reg.log, errf(ErrUnsupported, "%s is not allowed here; allowed: %s", r.Method, allowed))
		return
	}
	if rt.named() && !ValidName(rt.Name) {
		writeError(w, r, reg.log, &Error{Code: ErrNameInvalid, Message: fmt.Sprintf("invalid repository name %q", rt.Name), Detail: map[string]string{"name": rt.Name}})
		return
	}
	if rt.named() {
		if ns := r.URL.Query().Get("ns"); ns != "" {
			// containerd's mirror request for a repository of host ns:
			// from here on the route names what will be served, so
			// access is decided on that name, never on the one the
			// client wrote.
			prefix, ok, err := reg.resolver.Mirror(ns)
			if err != nil {
				writeError(w, r, reg.log, err)
				return
			}
			if ok {
				name := prefix + rt.Name
				if !ValidName(name) {
					writeError(w, r, reg.log, &Error{Code: ErrNameInvalid,
						Message: fmt.Sprintf("%s would be served as %s, which is not a valid repository name", rt.Name, name),
						Detail:  map[string]string{"name": rt.Name}})
					return
				}
				rt.Name = name
			}
		}
	}
	if reg.opts.Authorize != nil && !reg.opts.Authorize(w, r, rt) {
		return
	}
	authorized(r, rt)
	if err := h(w, r, rt); err != nil {
		writeError(w, r, reg.log, err)
	}
}

// resolve returns the repository serving rt's name.
func (reg *Registry) resolve(rt Route) (Repository, error) {
	return reg.resolver.Resolve(rt.Name)
}

// target returns the stored repository that writes of rt go to.
func (reg *Registry) target(rt Route) (*Target, error) {
	repo, err := reg.resolve(rt)
	if err != nil {
		return nil, err
	}
	t, err := repo.Target(rt.Access)
	if err != nil {
		return nil, err
	}
	if !ValidName(t.Name) {
		return nil, &Error{Code: ErrNameInvalid, Message: fmt.Sprintf("%s would be stored as %s, which is not a valid repository name", rt.Name, t.Name),
			Detail: map[string]string{"name": rt.Name}}
	}
	return t, nil
}

// handler returns the handler for a route kind and method, or nil and the
// methods that are allowed. The table is built once, in New.
func (reg *Registry) handler(kind int, method string) (handlerFunc, string) {
	table := reg.routes[kind]
	if h, ok := table[method]; ok {
		return h, ""
	}
	allowed := ""
	for _, k := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if _, ok := table[k]; ok {
			if allowed != "" {
				allowed += ", "
			}
			allowed += k
		}
	}
	return nil, allowed
}

// routeTable maps each route kind and method to its handler.
func (reg *Registry) routeTable() map[int]map[string]handlerFunc {
	return map[int]map[string]handlerFunc{
		KindBase:        {"GET": reg.base, "HEAD": reg.base},
		KindCatalog:     {"GET": reg.catalog, "HEAD": reg.catalog},
		KindTags:        {"GET": reg.tags, "HEAD": reg.tags},
		KindManifest:    {"GET": reg.getManifest, "HEAD": reg.getManifest, "PUT": reg.putManifest, "DELETE": reg.deleteManifest},
		KindBlob:        {"GET": reg.getBlob, "HEAD": reg.getBlob, "DELETE": reg.deleteBlob},
		KindUploadStart: {"POST": reg.startUpload},
		KindUpload:      {"GET": reg.uploadStatus, "PATCH": reg.patchUpload, "PUT": reg.finishUpload, "DELETE": reg.cancelUpload},
		KindReferrers:   {"GET": reg.referrers, "HEAD": reg.referrers},
		KindPingV1:      {"GET": reg.pingV1, "HEAD": reg.pingV1},
		KindSearchV1:    {"GET": reg.searchV1},
		KindHealth:      {"GET": reg.health, "HEAD": reg.health},
		KindReload:      {"POST": reg.reload},
	}
}

func (reg *Registry) base(w http.ResponseWriter, r *http.Request, _ Route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

// health serves the connectors' health report.
func (reg *Registry) health(w http.ResponseWriter, r *http.Request, _ Route) error {
	var report any = struct {
		Connectors []struct{} `json:"connectors"`
	}{[]struct{}{}}
	if hr, ok := reg.resolver.(HealthReporter); ok {
		report = hr.Health()
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, "application/json", report)
}

// reload applies a new configuration at an operator's request.
func (reg *Registry) reload(w http.ResponseWriter, r *http.Request, _ Route) error {
	if reg.opts.Reload == nil {
		return errf(ErrUnsupported, "this server cannot reload its configuration")
	}
	if err := reg.opts.Reload(r.Context()); err != nil {
		return &Error{Code: ErrConfigInvalid, Message: "the configuration was not reloaded: " + err.Error()}
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, "application/json", struct {
		Reloaded bool `json:"reloaded"`
	}{true})
}

// metaErr maps metadata categories to wire errors.
func metaErr(err error, notFound Code, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, metadata.ErrRepositoryNotFound):
		return &Error{Code: ErrNameUnknown, Message: fmt.Sprintf("repository %q not known to registry", name), Detail: map[string]string{"name": name}}
	case errors.Is(err, metadata.ErrNotFound):
		return errc(notFound)
	}
	return err
}

func setContentLength(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
}
