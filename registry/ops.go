package registry

import (
	"context"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage"
)

// Route families: the values of the route label of request metrics, one
// per route kind and a few for what the registry does not route. The set
// is fixed, so metrics keep a bounded number of series whatever clients
// send.
const (
	FamilyBase      = "base"
	FamilyCatalog   = "catalog"
	FamilyTags      = "tags"
	FamilyManifest  = "manifest"
	FamilyBlob      = "blob"
	FamilyUpload    = "upload"
	FamilyReferrers = "referrers"
	FamilyPing      = "ping"
	FamilySearch    = "search"
	FamilyHealth    = "health"
	// FamilyToken is the token service.
	FamilyToken = "token"
	// FamilyProbe is /healthz and /readyz.
	FamilyProbe = "probe"
	// FamilyReload is POST ReloadPath.
	FamilyReload = "reload"
	// FamilyUI is the web UI (package ui).
	FamilyUI = "ui"
	// FamilyOther is every request no route matched.
	FamilyOther = "other"
)

// Family returns the route family of a route kind (ParseRoute's Kind).
func Family(kind int) string {
	switch kind {
	case KindBase:
		return FamilyBase
	case KindCatalog:
		return FamilyCatalog
	case KindTags:
		return FamilyTags
	case KindManifest:
		return FamilyManifest
	case KindBlob:
		return FamilyBlob
	case KindUploadStart, KindUpload:
		return FamilyUpload
	case KindReferrers:
		return FamilyReferrers
	case KindPingV1:
		return FamilyPing
	case KindSearchV1:
		return FamilySearch
	case KindHealth:
		return FamilyHealth
	case KindReload:
		return FamilyReload
	}
	return FamilyOther
}

// Families lists every route family, for metrics that create their series
// up front.
func Families() []string {
	return []string{FamilyBase, FamilyCatalog, FamilyTags, FamilyManifest, FamilyBlob, FamilyUpload, FamilyReferrers,
		FamilyPing, FamilySearch, FamilyHealth, FamilyToken, FamilyProbe, FamilyReload, FamilyUI, FamilyOther}
}

// RequestStats is what Handler measured of one request.
type RequestStats struct {
	// Family is the route family (Family).
	Family string
	Method string
	Status int
	// Duration runs from the request's arrival to the end of its answer.
	Duration time.Duration
	// BytesIn counts the body bytes read, BytesOut those written.
	BytesIn, BytesOut int64
	// Repository is the name the request addressed, or "". Metrics leave
	// it out unless told to keep it (its values are unbounded).
	Repository string
}

// Metrics receives what Handler measures. It is called on every request,
// so it must be quick and safe for concurrent use. Package
// internal/metrics implements it with Prometheus collectors.
type Metrics interface {
	Request(s RequestStats)
}

// SetFamily records the route family of a request for the access log and
// the metrics, for handlers Handler wraps that the registry does not route
// (the token service).
func SetFamily(ctx context.Context, family string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.family = family
	}
}

// User returns the user the request of ctx authenticated as, or "".
func User(ctx context.Context) string {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.user
	}
	return ""
}

// routed records the route of a request that the registry serves, for
// the access log and the metrics.
func routed(ctx context.Context, rt Route) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.family = Family(rt.Kind)
		info.repo = rt.Name
	}
}

// authorized registers an authorised request that writes into an upload
// with the tracker of Handler.
func authorized(r *http.Request, rt Route) {
	info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo)
	if ok {
		info.repo = rt.Name // the name served, after a mirror's rewrite
	}
	if ok && info.uploads != nil && writesUpload(r, rt) {
		info.uploads.add(info, rt, r)
	}
}

// writesUpload reports whether a request writes data into an upload: a
// PATCH or PUT of a session, or a POST with a whole blob (?digest=).
func writesUpload(r *http.Request, rt Route) bool {
	switch {
	case rt.Kind == KindUpload:
		return r.Method == http.MethodPatch || r.Method == http.MethodPut
	case rt.Kind == KindUploadStart:
		return r.URL.Query().Get("digest") != ""
	}
	return false
}

// Uploads tracks the requests writing into uploads, for the uploads in
// flight metric and for a shutdown whose drain timeout passed: it names
// the uploads it cuts, and waits for their handlers to save what they
// received (an upload cut that way resumes from its Range).
type Uploads struct {
	mu sync.Mutex
	m  map[*requestInfo]UploadInProgress
	wg sync.WaitGroup
}

// UploadInProgress is a request writing into an upload.
type UploadInProgress struct {
	Repository string
	// Session is the upload's id, "" for a whole blob sent with its POST.
	Session string
	User    string
	Remote  string
	Since   time.Time
}

// NewUploads returns an empty tracker.
func NewUploads() *Uploads { return &Uploads{m: map[*requestInfo]UploadInProgress{}} }

func (u *Uploads) add(info *requestInfo, rt Route, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[info]; ok {
		return
	}
	session := ""
	if rt.Kind == KindUpload {
		session = rt.Ref
	}
	u.m[info] = UploadInProgress{Repository: rt.Name, Session: session, User: info.user, Remote: r.RemoteAddr, Since: time.Now()}
	u.wg.Add(1)
}

func (u *Uploads) done(info *requestInfo) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[info]; ok {
		delete(u.m, info)
		u.wg.Done()
	}
}

// Len returns how many requests are writing into uploads.
func (u *Uploads) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// List returns the uploads in progress, oldest first.
func (u *Uploads) List() []UploadInProgress {
	u.mu.Lock()
	out := make([]UploadInProgress, 0, len(u.m))
	for _, v := range u.m {
		out = append(out, v)
	}
	u.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// Wait waits until no request writes into an upload, or ctx ends.
func (u *Uploads) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		u.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Probe paths, answered by HandlerOptions.Probes before authentication.
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
)

// Action is what a request did to a repository: what notifications report
// and the audit log records.
type Action struct {
	// Kind is push, pull, delete or mount.
	Kind string
	// Repository is the name the client addressed.
	Repository string
	Digest     digest.Digest
	MediaType  string
	Size       int64
	// Tag is the tag a manifest was pushed, pulled or deleted by.
	Tag string
	// From is the repository a mount linked the blob from.
	From string
}

// Kinds of Action.
const (
	ActionPush   = "push"
	ActionPull   = "pull"
	ActionDelete = "delete"
	ActionMount  = "mount"
)

// Notifier turns what requests do into notifications. Package
// notifications implements it.
type Notifier interface {
	// Prepare returns ctx (r's, or one Prepare returned) with the events
	// of a, for the write that does a to queue in its transaction
	// (metadata.WithEvents).
	Prepare(ctx context.Context, r *http.Request, a Action) context.Context
	// Pulled reports content a GET served; its events are queued on
	// their own, as a pull changes nothing stored.
	Pulled(r *http.Request, a Action)
}

// countBody counts the bytes read from a request body.
type countBody struct {
	io.ReadCloser
	n int64
}

func (b *countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// abortCountBody is a countBody over a body that can be stopped
// (storage.Aborter), which it still can be.
type abortCountBody struct {
	countBody
	a storage.Aborter
}

func (b *abortCountBody) Abort() { b.a.Abort() }

// countRequestBody wraps r's body to count what is read, keeping its
// Abort; it returns the counter, nil for a request without a body.
func countRequestBody(r *http.Request) *countBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if a, ok := r.Body.(storage.Aborter); ok {
		b := &abortCountBody{countBody: countBody{ReadCloser: r.Body}, a: a}
		r.Body = b
		return &b.countBody
	}
	b := &countBody{ReadCloser: r.Body}
	r.Body = b
	return b
}
