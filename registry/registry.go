// Package registry serves the OCI distribution API and the Docker Registry
// HTTP API V2 over a blob store and a metadata store.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// DefaultMaxManifestSize is the manifest size limit when none is set.
const DefaultMaxManifestSize = 4 << 20

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
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long (0: no limit). A slow but moving body is not affected.
	BodyIdleTimeout time.Duration
	// Logger receives the access log and errors.
	Logger *slog.Logger
	// Authorize, when set, is called for every routed request before its
	// handler; it writes the response and returns false to refuse it.
	Authorize func(w http.ResponseWriter, r *http.Request, rt Route) bool
	// MayPull, when set, reports whether the caller of r may pull from the
	// repository name. The catalog and search list only such repositories.
	MayPull func(r *http.Request, name string) bool
	// MayMount, when set, reports whether the caller of r may read the
	// blobs of repository name to mount them into another: a token must
	// grant pull on name itself, not only its account. A cross-repository
	// mount links blobs only from such repositories (otherwise it opens
	// an upload session, as for an unknown blob). Without it, MayPull
	// decides.
	MayMount func(r *http.Request, name string) bool
}

// Registry is the HTTP handler of the registry API.
type Registry struct {
	blobs *storage.Store
	meta  metadata.Store
	opts  Options
	log   *slog.Logger
	// routes maps route kinds and methods to handlers (see routeTable).
	routes map[int]map[string]handlerFunc
}

// New returns a registry serving blobs from blobs and everything else from
// meta.
func New(blobs *storage.Store, meta metadata.Store, opts Options) *Registry {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	reg := &Registry{blobs: blobs, meta: meta, opts: opts, log: opts.Logger}
	reg.routes = reg.routeTable()
	return reg
}

type authorizedKey struct{}

// Authorized returns a context whose requests the registry serves without
// calling the Authorize hook. It is for a handler in front of the registry
// (a connector) that has authorized a request under the name the client
// used and forwards it under another name, which the hook must not judge.
func Authorized(ctx context.Context) context.Context {
	return context.WithValue(ctx, authorizedKey{}, true)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt Route) error

// statusWriter records the status and size of a response for the access
// log. It forwards ReadFrom so that blob responses keep using sendfile.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(s.ResponseWriter, r)
	}
	s.bytes += n
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ServeHTTP routes a request.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	reg.serve(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	level := slog.LevelInfo
	if sw.status >= 500 {
		level = slog.LevelError
	}
	if !reg.log.Enabled(r.Context(), level) {
		return
	}
	reg.log.Log(r.Context(), level, "request",
		"method", r.Method, "path", r.URL.Path, "status", sw.status,
		"bytes", sw.bytes, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
}

func (reg *Registry) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	defer reg.limitBody(w, r)()
	rt, ok := ParseRoute(r.Method, r.URL.Path)
	if !ok {
		writeError(w, r, reg.log, errf(ErrNotFound, "no route for %s %s", r.Method, r.URL.Path))
		return
	}
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
	if reg.opts.Authorize != nil && r.Context().Value(authorizedKey{}) == nil && !reg.opts.Authorize(w, r, rt) {
		return
	}
	if err := h(w, r, rt); err != nil {
		writeError(w, r, reg.log, err)
	}
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
