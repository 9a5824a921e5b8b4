package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

// Prefix is the path the UI is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every answer of the UI: scripts and
// styles only from berth's own files, never inline; no framing; forms
// post only to berth.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// BlobOpener opens blobs as a pull of a repository gets them
// (registry.Registry.OpenBlob).
type BlobOpener interface {
	OpenBlob(ctx context.Context, name string, d digest.Digest) (io.ReadCloser, int64, error)
}

// Connectors describes the configured registries and their upstreams
// (connector.Connector).
type Connectors interface {
	Registries() []connector.RegistryInfo
	Status() []connector.Status
	Owner(name string) (registryName, typ string)
	StoredNames(name string) []string
}

// WebhookDelivery is one delivery of a webhook, as the operations page
// lists it.
type WebhookDelivery struct {
	Webhook    string
	Event      string
	Repository string
	Status     string // "delivered", "failed", "pending", or an HTTP status
	Attempts   int
	At         time.Time
	Error      string
}

// Options are what the UI reads from and who decides access.
type Options struct {
	// Resolver names the repository that serves each name, and lists
	// and searches them.
	Resolver registry.Resolver
	// Meta is the metadata Reader; a metadata.Browser adds tag details
	// and storage usage.
	Meta metadata.Reader
	// Blobs opens blobs (image configs) through the registry.
	Blobs BlobOpener
	// API is the registry's handler inside the Gate (the registry
	// itself): deletes are sent to it as the signed-in person.
	API http.Handler
	// Gate authenticates people and decides what they may do; nil when
	// auth.mode is none (everything is open).
	Gate *auth.Gate
	// SessionKey signs session cookies and CSRF tokens (at least KeySize
	// bytes).
	SessionKey []byte
	// Connectors, when set, describes the configured registries.
	Connectors Connectors
	// GCRuns, when set, returns the last garbage collections
	// (gc.Scheduler.Recent); GCInterval is their schedule.
	GCRuns     func() []gc.RunSummary
	GCInterval time.Duration
	// LastGC, when set, returns when the last complete collection
	// finished, as the database records it.
	LastGC func(ctx context.Context) (time.Time, error)
	// WebhookDeliveries, when set, lists the last n webhook deliveries,
	// newest first; the operations page shows them.
	WebhookDeliveries func(ctx context.Context, n int) ([]WebhookDelivery, error)
	// Logger receives failures.
	Logger *slog.Logger
	// Now is the clock of sessions (default time.Now).
	Now func() time.Time
}

// UI is the web UI's http.Handler, for paths under Prefix.
type UI struct {
	opts     Options
	log      *slog.Logger
	sessions *sessions
	pages    map[string]*template.Template
	static   map[string]asset
	browser  metadata.Browser // nil if Meta is not one
	usage    *usageMemo
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// asset is an embedded file with its content type and version.
type asset struct {
	body        []byte
	contentType string
	version     string
}

// New returns the UI.
func New(opts Options) (*UI, error) {
	if opts.Resolver == nil || opts.Meta == nil || opts.Blobs == nil || opts.API == nil {
		return nil, errors.New("ui: Resolver, Meta, Blobs and API are required")
	}
	if len(opts.SessionKey) < KeySize {
		return nil, fmt.Errorf("ui: a session key of at least %d bytes is required", KeySize)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &UI{opts: opts, log: opts.Logger, sessions: &sessions{key: opts.SessionKey, now: opts.Now}, static: map[string]asset{}}
	u.browser, _ = opts.Meta.(metadata.Browser)
	u.usage = &usageMemo{ttl: time.Minute, now: opts.Now}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := "application/octet-stream"
		switch path.Ext(p) {
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		u.static[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: ct, version: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.pages, err = u.parseTemplates(); err != nil {
		return nil, err
	}
	return u, nil
}

// Mount returns a handler that serves the UI under Prefix (and sends a
// browser asking for "/" there) and everything else to next. Paths are
// compared as they came: the registry's own routing sees its requests
// unchanged.
func Mount(u *UI, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, Prefix):
			registry.SetFamily(r.Context(), registry.FamilyUI)
			u.ServeHTTP(w, r)
		case p == "/ui" || (p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead)):
			registry.SetFamily(r.Context(), registry.FamilyUI)
			http.Redirect(w, r, Prefix, http.StatusFound)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// maxForm bounds the body of a form.
const maxForm = 16 << 10

// ServeHTTP serves the pages under Prefix.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	rest := strings.TrimPrefix(r.URL.Path, Prefix)
	if name, ok := strings.CutPrefix(rest, "static/"); ok {
		u.serveStatic(w, r, name)
		return
	}
	h.Set("Cache-Control", "no-store")
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	rq := u.begin(w, r)
	switch {
	case rest == "" && isRead(r):
		u.repositories(rq)
	case rest == "registries" && isRead(r):
		u.registries(rq)
	case rest == "ops" && isRead(r):
		u.operations(rq)
	case rest == "login":
		u.login(rq)
	case rest == "logout" && r.Method == http.MethodPost:
		u.logout(rq)
	case rest == "delete":
		u.delete(rq)
	case rest == "r/" && isRead(r):
		// The "open a repository" form.
		name := r.URL.Query().Get("name")
		if !registry.ValidName(name) {
			u.fail(rq, http.StatusBadRequest, "Invalid repository name", fmt.Sprintf("%q is not a repository name.", name))
			return
		}
		http.Redirect(w, r, repoURL(name), http.StatusSeeOther)
	case strings.HasPrefix(rest, "r/") && isRead(r):
		u.repository(rq, strings.TrimPrefix(rest, "r/"))
	case strings.HasPrefix(rest, "m/") && isRead(r):
		u.manifest(rq, strings.TrimPrefix(rest, "m/"))
	default:
		u.fail(rq, http.StatusNotFound, "Not found", "There is no page at this address.")
	}
}

func isRead(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := u.static[name]
	if !ok || !isRead(r) {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// req is one request to a page with who asks.
type req struct {
	w    http.ResponseWriter
	r    *http.Request
	sess *session
	id   auth.Identity
	// signedIn reports an identity that proved itself (a session, or
	// credentials the Gate accepted).
	signedIn bool
}

// begin finds the caller: a session cookie, else credentials the Gate
// accepts (a client certificate, Basic, a token), else anonymous. A
// visitor without a valid session gets a new anonymous one.
func (u *UI) begin(w http.ResponseWriter, r *http.Request) *req {
	rq := &req{w: w, r: r}
	if c, err := r.Cookie(SessionCookie); err == nil {
		rq.sess = u.sessions.decode(c.Value)
	}
	if rq.sess != nil && rq.sess.User != "" {
		fp, ok := "", u.opts.Gate != nil
		if ok {
			fp, ok = u.opts.Gate.Fingerprint(rq.sess.User)
		}
		if ok && auth.SameFingerprint(fp, rq.sess.Fingerprint) {
			rq.id = auth.Identity{Name: rq.sess.User, Method: auth.MethodBasic}
			rq.signedIn = true
		} else {
			rq.sess = nil // the password changed or the user is gone
		}
	}
	if rq.sess == nil {
		rq.sess = u.sessions.fresh("", "")
		u.sessions.set(w, r, rq.sess)
	}
	if !rq.signedIn && u.opts.Gate != nil && (r.Header.Get("Authorization") != "" || (r.TLS != nil && len(r.TLS.PeerCertificates) > 0)) {
		if id, err := u.opts.Gate.Authenticate(r); err == nil && !id.Anonymous() {
			rq.id, rq.signedIn = id, true
		}
	}
	if rq.id.Name != "" {
		registry.SetUser(r.Context(), rq.id.Name)
	}
	return rq
}

// mayPull reports whether the caller may see repository name.
func (u *UI) mayPull(rq *req, name string) bool {
	return u.opts.Gate == nil || u.opts.Gate.Allowed(rq.id, auth.TypeRepository, name, auth.ActionPull)
}

// mayDelete reports whether the caller may delete in repository name.
func (u *UI) mayDelete(rq *req, name string) bool {
	return u.opts.Gate == nil || u.opts.Gate.Allowed(rq.id, auth.TypeRepository, name, auth.ActionDelete)
}

// mayList reports whether the caller may list repositories (the
// catalog right, as for the API's catalog and search).
func (u *UI) mayList(rq *req) bool {
	return u.opts.Gate == nil || u.opts.Gate.Allowed(rq.id, auth.TypeRegistry, auth.CatalogName, auth.ActionAll)
}

// administers reports whether the caller may see the operations page.
func (u *UI) administers(rq *req) bool {
	return u.opts.Gate == nil || u.opts.Gate.Administers(rq.id)
}

// page is what every page's layout needs.
type page struct {
	Title    string
	Nav      string // which navigation entry is current
	User     string
	Open     bool // auth.mode none
	Admin    bool
	CanLogin bool
	CSRF     string
	Next     string // where signing in returns to
	CSS, JS  string // asset URLs
	Host     string // the registry's address, for pull commands
	Data     any
}

// render writes page tmpl with data.
func (u *UI) render(rq *req, status int, tmpl, title, nav string, data any) {
	t, ok := u.pages[tmpl]
	if !ok {
		panic("ui: no template " + tmpl)
	}
	p := page{
		Title: title, Nav: nav, User: rq.id.Name, Open: u.opts.Gate == nil,
		Admin:    u.administers(rq),
		CanLogin: u.opts.Gate != nil && u.opts.Gate.PasswordLogin(),
		CSRF:     u.sessions.csrf(rq.sess), Next: rq.r.URL.RequestURI(),
		CSS:  Prefix + "static/app.css?v=" + u.static["app.css"].version,
		JS:   Prefix + "static/app.js?v=" + u.static["app.js"].version,
		Host: hostOf(rq.r), Data: data,
	}
	var buf bytes.Buffer
	name := "layout"
	if rq.r.URL.Query().Get("fragment") == "results" && t.Lookup("results") != nil {
		name = "results"
	}
	if err := t.ExecuteTemplate(&buf, name, p); err != nil {
		u.log.Error("ui: render", "template", tmpl, "err", err)
		http.Error(rq.w, "internal error", http.StatusInternalServerError)
		return
	}
	rq.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rq.w.WriteHeader(status)
	if rq.r.Method != http.MethodHead {
		_, _ = rq.w.Write(buf.Bytes())
	}
}

// message is the data of the message page.
type message struct {
	Heading, Text string
	SignIn        bool // offer to sign in
}

// fail answers with a message page.
func (u *UI) fail(rq *req, status int, heading, text string) {
	u.render(rq, status, "message", heading, "", message{Heading: heading, Text: text})
}

// refuse answers a caller who may not see something: the same answer
// whether or not it exists, so that names the caller may not read do not
// leak. An anonymous caller is offered to sign in.
func (u *UI) refuse(rq *req, what string) {
	m := message{Heading: "Not allowed", Text: "You may not see " + what + "."}
	status := http.StatusForbidden
	if !rq.signedIn {
		m.Text += " Sign in to see what your account may read."
		m.SignIn = u.opts.Gate != nil && u.opts.Gate.PasswordLogin()
		status = http.StatusUnauthorized
	}
	u.render(rq, status, "message", m.Heading, "", m)
}

// contentError answers a failure to read content: an *registry.Error
// (an upstream's failure named by the cache, a name nobody serves) is
// shown as it is, "not found" as such, anything else as an internal
// error (logged).
func (u *UI) contentError(rq *req, what string, err error) {
	var re *registry.Error
	switch {
	case errors.Is(err, metadata.ErrNotFound), errors.Is(err, metadata.ErrRepositoryNotFound):
		u.fail(rq, http.StatusNotFound, "Not found", what+" is not in this registry.")
	case errors.As(err, &re):
		msg := re.Message
		if msg == "" {
			msg = re.Code.Message
		}
		u.fail(rq, re.Code.Status, what+": "+re.Code.Name, msg)
	case errors.Is(err, context.Canceled):
	default:
		u.log.Error("ui: read", "what", what, "err", err)
		u.fail(rq, http.StatusInternalServerError, "Internal error", "berth could not read "+what+"; the log has the details.")
	}
}

// hostOf is the registry's address as the browser reached it, for pull
// commands: the request's Host, when it is a plain host[:port].
func hostOf(r *http.Request) string {
	h := r.Host
	if h == "" || len(h) > 255 || strings.ContainsAny(h, " \"'<>\\/@") {
		return "REGISTRY"
	}
	return h
}

// repoURL is the page of repository name.
func repoURL(name string) string { return Prefix + "r/" + name }

// manifestURL is the page of a manifest of name by tag or digest.
func manifestURL(name, ref string) string { return Prefix + "m/" + name + "@" + ref }

// query builds a query string from pairs, leaving out empty values.
func query(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
