package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/client/transport"
	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/mediatype"
)

// userAgent identifies berth to upstreams.
const userAgent = "berth-connector/1"

// manifestAccept is the Accept header of manifest requests: every type
// berth stores, so that indexes are cached as they are.
var manifestAccept = mediatype.ManifestAccept

// Limits on what an upstream may make berth read.
const (
	maxListBody  = 16 << 20
	maxListPages = 1000
	maxListNames = 100000
)

// errKind sorts upstream failures by what berth does about them.
type errKind int

const (
	// kindUnavailable: unreachable, timed out, or a 5xx: serve from the
	// cache, and the upstream counts as down.
	kindUnavailable errKind = iota + 1
	// kindNotFound: the upstream does not have it.
	kindNotFound
	// kindRateLimited: 429; the upstream is up but refuses for a while.
	kindRateLimited
	// kindRefused: 401 or 403, even with the configured credentials.
	kindRefused
	// kindBad: an answer berth cannot use (wrong digest, invalid manifest,
	// unexpected status).
	kindBad
	// kindCanceled: berth gave up (shutting down); nothing to learn.
	kindCanceled
	// kindCredentials: the provider could not obtain credentials (its
	// token service refused, answered wrongly or could not be reached).
	kindCredentials
)

// upstreamError is a failure to get something from an upstream.
type upstreamError struct {
	kind     errKind
	upstream string // the upstream's base URL
	// retryAfter is the Retry-After of a 429, passed on to clients.
	retryAfter string
	err        error
}

func (e *upstreamError) Error() string { return "upstream " + e.upstream + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// kindOf returns the kind of an upstream error, or 0.
func kindOf(err error) errKind {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.kind
	}
	return 0
}

// upstream speaks the distribution API to one registry through the client
// library's transport chain: user agent → auth (Basic, or Bearer tokens
// from the realm the registry names, cached per scope) → retries (which
// honour Retry-After) → HTTP. Every method classifies failures into an
// *upstreamError.
type upstream struct {
	base    *url.URL
	name    string // base URL as configured, for messages
	timeout time.Duration
	hc      *http.Client
	// probe sends health probes: no auth, no retries.
	probe http.RoundTripper
	auth  *transport.Auth
	http  *http.Transport
	// down reports whether the upstream is known to be down: requests
	// are then sent once, without retries.
	down func() bool
	// provider adds what the upstream needs beyond the distribution API.
	provider     provider.Provider
	providerName string
}

func newUpstream(ctx context.Context, registryName string, cfg Upstream, now func() time.Time, log *slog.Logger) (*upstream, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil {
		return nil, err
	}
	if canonicalHost(base.Host) == "docker.io" {
		base.Host = dockerHubAPI
	}
	base.Path = ""
	timeout := DefaultTimeout
	if cfg.Timeout > 0 {
		timeout = cfg.Timeout
	}
	tlsConfig, err := upstreamTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	ht := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	u := &upstream{
		base:         base,
		name:         base.String(),
		timeout:      timeout,
		probe:        transport.NewUserAgent(ht, userAgent),
		http:         ht,
		providerName: providerName(cfg.Provider),
	}
	// The provider's own requests (token exchanges, search) share the
	// upstream's TLS settings, but neither its auth nor its retries.
	providerClient := &http.Client{Transport: transport.NewUserAgent(ht, userAgent), Timeout: 4 * timeout}
	pf, ok := provider.Lookup(cfg.Provider)
	if !ok {
		return nil, fmt.Errorf("upstream.provider %q: no such provider", cfg.Provider)
	}
	penv := provider.Env{
		Registry: registryName, URL: &url.URL{Scheme: base.Scheme, Host: base.Host}, Settings: cfg.settings(),
		HTTPClient: providerClient, TLS: tlsConfig, Now: now, Log: log,
		Catalog: func(ctx context.Context) ([]string, error) { return u.list(ctx, "/v2/_catalog", "repositories") },
	}
	if pf.Check != nil {
		if err := pf.Check(penv); err != nil {
			return nil, fmt.Errorf("upstream (provider %s): %w", u.providerName, err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	prov, err := pf.New(pctx, penv)
	if err != nil {
		return nil, fmt.Errorf("upstream (provider %s): %w", u.providerName, err)
	}
	u.provider = prov
	var inner http.RoundTripper = ht
	if obs, ok := prov.(provider.Observer); ok {
		inner = observing{next: ht, host: base.Host, obs: obs}
	}
	// Few, quick retries: a client waits, and a cache has stale content to
	// fall back on. A longer Retry-After is passed on instead of waited for.
	retry := transport.NewRetry(inner, transport.RetryOptions{
		Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: 2 * time.Second,
	})
	u.auth = transport.NewAuth(retry, transport.AuthOptions{
		Host: base.Host,
		Credentials: func(ctx context.Context, _ string) (transport.Credentials, error) {
			return prov.Credentials(ctx, transport.CredentialScopes(ctx))
		},
		TokenTransport: transport.NewUserAgent(retry, userAgent),
		ClientID:       "berth",
		Now:            now,
	})
	u.hc = &http.Client{Transport: transport.NewUserAgent(u.auth, userAgent)}
	return u, nil
}

// upstreamTLS builds the TLS configuration of an upstream connection: the
// system's roots and CAFile's, a client certificate, or no verification.
func upstreamTLS(c UpstreamTLS) (*tls.Config, error) {
	if c == (UpstreamTLS{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // an operator's explicit choice, for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream.tls.caFile %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.certFile and keyFile: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// observing shows a provider every answer of its upstream host.
type observing struct {
	next http.RoundTripper
	host string
	obs  provider.Observer
}

func (o observing) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err == nil && req.URL.Host == o.host {
		o.obs.Observe(resp)
	}
	return resp, err
}

func (u *upstream) close() { u.http.CloseIdleConnections() }

// invalidate tells the provider that its credentials were refused, and
// drops the tokens obtained with them: the next request starts afresh.
// It reports whether the provider may now give other credentials.
func (u *upstream) invalidate() bool {
	renewed := false
	if inv, ok := u.provider.(provider.Invalidator); ok {
		renewed = inv.Invalidate()
	}
	if renewed {
		u.auth.ForgetTokens()
	}
	return renewed
}

func (u *upstream) url(path string, q url.Values) string {
	v := *u.base
	v.Path = path
	v.RawQuery = q.Encode()
	return v.String()
}

// fail wraps err (a transport error or an *transport.Error for an answer)
// into an *upstreamError of the right kind.
func (u *upstream) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ue *upstreamError
	if errors.As(err, &ue) {
		return err
	}
	e := &upstreamError{upstream: u.name, err: err}
	var te *transport.Error
	switch {
	case errors.Is(err, transport.ErrCredentials) && !(errors.Is(err, context.Canceled) && ctx.Err() != nil):
		e.kind = kindCredentials
	case errors.Is(err, transport.ErrBadToken):
		e.kind = kindBad
	case errors.As(err, &te):
		switch {
		case errors.Is(te, transport.ErrNotFound):
			e.kind = kindNotFound
		case te.StatusCode == http.StatusTooManyRequests:
			e.kind = kindRateLimited
		case errors.Is(te, transport.ErrUnauthorized), errors.Is(te, transport.ErrDenied):
			e.kind = kindRefused
			if te.StatusCode == http.StatusUnauthorized {
				_ = u.invalidate()
			}
		case te.StatusCode >= 500, te.StatusCode == http.StatusRequestTimeout:
			e.kind = kindUnavailable
		default:
			e.kind = kindBad
		}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		e.kind = kindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		e.kind = kindUnavailable
		e.err = fmt.Errorf("no answer within %v: %w", u.timeout, err)
	case errors.Is(err, transport.ErrDigestMismatch):
		e.kind = kindBad
	default:
		// Refused or reset connections, DNS failures, timeouts, TLS errors:
		// the upstream cannot be reached.
		e.kind = kindUnavailable
		if errors.Is(err, syscall.ECONNREFUSED) {
			e.err = fmt.Errorf("connection refused: %w", err)
		}
	}
	return e
}

// do sends a request; an answer other than want is an error.
func (u *upstream) do(ctx context.Context, method, path string, q url.Values, hdr http.Header, want int) (*http.Response, error) {
	if u.down != nil && u.down() {
		ctx = transport.WithoutRetry(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.url(path, q), nil)
	if err != nil {
		return nil, u.fail(ctx, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := u.hc.Do(req)
	var te *transport.Error
	refused := (err == nil && resp.StatusCode == http.StatusUnauthorized) ||
		(errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized) // by the token service
	if refused && want != http.StatusUnauthorized && u.invalidate() {
		// Credentials the provider still thought good were refused (a
		// rotated key, a revoked token): once more with new ones.
		if err == nil {
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		}
		resp, err = u.hc.Do(req.Clone(ctx))
	}
	if err != nil {
		return nil, u.fail(ctx, err)
	}
	if err := transport.CheckResponse(resp, want); err != nil {
		e := u.fail(ctx, err).(*upstreamError)
		if e.kind == kindRateLimited {
			e.retryAfter = resp.Header.Get("Retry-After")
		}
		return nil, e
	}
	return resp, nil
}

// fetchedManifest is a manifest as an upstream served it, verified.
type fetchedManifest struct {
	digest      digest.Digest
	contentType string
	body        []byte
}

// getManifest fetches name's manifest ref and verifies it: against ref if
// it is a digest, else against the Docker-Content-Digest the upstream
// announced, else it is taken as the sha256 of the body.
func (u *upstream) getManifest(ctx context.Context, name, ref string, max int64) (*fetchedManifest, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	resp, err := u.do(ctx, http.MethodGet, "/v2/"+name+"/manifests/"+ref, nil, http.Header{"Accept": {manifestAccept}}, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > max {
		return nil, u.bad("manifest %s:%s has %d bytes, more than the limit of %d", name, ref, resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, u.fail(ctx, fmt.Errorf("reading manifest %s:%s: %w", name, ref, err))
	}
	if int64(len(body)) > max {
		return nil, u.bad("manifest %s:%s is larger than the limit of %d bytes", name, ref, max)
	}
	want := digest.Digest("")
	if strings.Contains(ref, ":") {
		want = digest.Digest(ref)
	} else if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		want = digest.Digest(h)
	}
	if want == "" {
		want = digest.SHA256.FromBytes(body)
	}
	if err := want.Validate(); err != nil {
		return nil, u.bad("manifest %s:%s: invalid digest %q: %v", name, ref, want, err)
	}
	if got := want.Algorithm().FromBytes(body); got != want {
		return nil, u.bad("manifest %s:%s has digest %s, not %s as announced", name, ref, got, want)
	}
	return &fetchedManifest{digest: want, contentType: resp.Header.Get("Content-Type"), body: body}, nil
}

// headManifest returns the digest the upstream has for name:ref, or "" if
// it does not announce one.
func (u *upstream) headManifest(ctx context.Context, name, ref string) (digest.Digest, error) {
	ctx, cancel := context.WithTimeout(transport.WithoutRetry(ctx), u.timeout)
	defer cancel()
	resp, err := u.do(ctx, http.MethodHead, "/v2/"+name+"/manifests/"+ref, nil, http.Header{"Accept": {manifestAccept}}, http.StatusOK)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	h := resp.Header.Get("Docker-Content-Digest")
	if h == "" {
		return "", nil
	}
	d, err := digest.Parse(h)
	if err != nil {
		return "", u.bad("HEAD %s:%s announced an invalid digest %q", name, ref, h)
	}
	return d, nil
}

// headBlob returns the size of blob d of name.
func (u *upstream) headBlob(ctx context.Context, name string, d digest.Digest) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	resp, err := u.do(ctx, http.MethodHead, "/v2/"+name+"/blobs/"+d.String(), nil, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// getBlob opens blob d of name. The body is read under a stall timer: no
// byte for the upstream's timeout aborts it. The caller closes it.
func (u *upstream) getBlob(ctx context.Context, name string, d digest.Digest) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := u.do(ctx, http.MethodGet, "/v2/"+name+"/blobs/"+d.String(), nil, nil, http.StatusOK)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = newStallReader(resp.Body, u.timeout, cancel)
	return resp, nil
}

// stallReader cancels a request when its body sends nothing for a while.
type stallReader struct {
	rc      io.ReadCloser
	timeout time.Duration
	timer   *time.Timer
	cancel  context.CancelFunc
	once    sync.Once
	stalled atomic.Bool
}

func newStallReader(rc io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *stallReader {
	s := &stallReader{rc: rc, timeout: timeout, cancel: cancel}
	s.timer = time.AfterFunc(timeout, func() {
		s.stalled.Store(true)
		cancel()
	})
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 {
		s.timer.Reset(s.timeout)
	}
	if err != nil && err != io.EOF && s.stalled.Load() {
		err = fmt.Errorf("the upstream sent nothing for %v: %w", s.timeout, err)
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.once.Do(func() {
		s.timer.Stop()
		s.cancel()
	})
	return s.rc.Close()
}

// list reads a paginated listing (tags or catalog) to its end, up to the
// limits on pages and names.
func (u *upstream) list(ctx context.Context, path, field string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*u.timeout)
	defer cancel()
	next := u.url(path, url.Values{"n": {"1000"}})
	var all []string
	for page := 0; next != ""; page++ {
		if page >= maxListPages || len(all) >= maxListNames {
			break
		}
		resp, err := u.doURL(ctx, next)
		if err != nil {
			return nil, err
		}
		var body map[string]json.RawMessage
		err = json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return nil, u.bad("decoding %s: %v", path, err)
		}
		var names []string
		if raw, ok := body[field]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &names); err != nil {
				return nil, u.bad("decoding %s: %v", path, err)
			}
		}
		all = append(all, names...)
		nu, err := transport.NextLink(resp)
		if err != nil || nu == nil || nu.Host != u.base.Host || nu.Scheme != u.base.Scheme {
			break
		}
		next = nu.String()
	}
	return all, nil
}

// doURL GETs an absolute URL on the upstream (a Link's target).
func (u *upstream) doURL(ctx context.Context, target string) (*http.Response, error) {
	if u.down != nil && u.down() {
		ctx = transport.WithoutRetry(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, u.fail(ctx, err)
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		return nil, u.fail(ctx, err)
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return nil, u.fail(ctx, err)
	}
	return resp, nil
}

// ping probes GET /v2/: 200 or a 401 with a challenge means the upstream
// answers. The challenges found prime the auth transport.
func (u *upstream) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	res, err := transport.Ping(ctx, u.probe, u.base)
	if err != nil {
		return u.fail(ctx, err)
	}
	if len(res.Challenges) > 0 {
		u.auth.SetChallenges(res.Challenges)
	}
	return nil
}

// checkCredentials asks the provider for credentials, as a request would.
func (u *upstream) checkCredentials(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	if _, err := u.provider.Credentials(ctx, nil); err != nil {
		return u.fail(ctx, fmt.Errorf("credentials for %s: %w", u.base.Host, &credentialsFailure{err}))
	}
	return nil
}

// credentialsFailure marks a provider's error as transport.ErrCredentials,
// as the transport does for the requests it authorizes.
type credentialsFailure struct{ err error }

func (e *credentialsFailure) Error() string   { return e.err.Error() }
func (e *credentialsFailure) Unwrap() []error { return []error{transport.ErrCredentials, e.err} }

func (u *upstream) bad(format string, args ...any) error {
	return &upstreamError{kind: kindBad, upstream: u.name, err: fmt.Errorf(format, args...)}
}
