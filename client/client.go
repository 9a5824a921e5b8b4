package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/service"
	"github.com/berthhq/berth/client/transport"
)

// DefaultUserAgent is sent when no other is configured.
const DefaultUserAgent = "berth-client/1"

// DefaultChunkSize is the size above which blobs are uploaded in chunks, and the size of
// each chunk.
const DefaultChunkSize = 16 << 20

// Client speaks the distribution API to registries. It is safe for concurrent use, and
// meant to be long-lived: it keeps per-registry endpoints, challenges and tokens.
type Client struct {
	svc         *service.Service
	creds       transport.CredentialFunc
	userAgent   string
	headers     http.Header
	retry       transport.RetryOptions
	base        *http.Transport
	chunkSize   int64
	concurrency int

	mu    sync.Mutex
	state *state
}

// Option configures a Client.
type Option func(*Client) error

// WithService sets the registry service configuration (mirrors, insecure registries,
// certificates directory). Default: service.New(service.Options{}).
func WithService(s *service.Service) Option {
	return func(c *Client) error {
		if s == nil {
			return errors.New("nil service")
		}
		c.svc = s
		return nil
	}
}

// WithCredentials sets where credentials come from. Default: the Docker config file
// (credentials.NewConfigFile("").Get). nil means anonymous.
func WithCredentials(f transport.CredentialFunc) Option {
	return func(c *Client) error {
		c.creds = f
		return nil
	}
}

// WithUserAgent sets the User-Agent of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.userAgent = ua
		return nil
	}
}

// WithHeaders sets headers sent with every request beside the User-Agent, as the Docker
// daemon sends its "meta headers" (X-Meta-...). A request's own headers win; Authorization,
// Host and User-Agent cannot be set this way.
func WithHeaders(h http.Header) Option {
	return func(c *Client) error {
		c.headers = h.Clone()
		return nil
	}
}

// WithRetry sets how requests are retried.
func WithRetry(o transport.RetryOptions) Option {
	return func(c *Client) error {
		c.retry = o
		return nil
	}
}

// WithBaseTransport sets the template of the per-host transports (proxy, dialer, timeouts).
// Its TLS configuration is replaced per host. Default: http.DefaultTransport's settings.
func WithBaseTransport(t *http.Transport) Option {
	return func(c *Client) error {
		c.base = t
		return nil
	}
}

// WithChunkSize sets the upload chunk size: blobs larger than n bytes (or of unknown size)
// are uploaded in chunks of n bytes, which survive a broken connection. 0 uploads every
// blob in one request. Default DefaultChunkSize.
func WithChunkSize(n int64) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("negative chunk size %d", n)
		}
		c.chunkSize = n
		return nil
	}
}

// WithConcurrency sets how many blobs a copy, pull or push moves at once (default 3).
func WithConcurrency(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("concurrency %d: must be at least 1", n)
		}
		c.concurrency = n
		return nil
	}
}

// New returns a Client.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		creds:       credentials.NewConfigFile("").Get,
		userAgent:   DefaultUserAgent,
		chunkSize:   DefaultChunkSize,
		concurrency: 3,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.svc == nil {
		s, err := service.New(service.Options{})
		if err != nil {
			return nil, err
		}
		c.svc = s
	}
	return c, nil
}

// Service returns the client's service configuration holder; Reload on it applies to the
// next operation.
func (c *Client) Service() *service.Service { return c.svc }

// state is what the client built for one service configuration: transports, and the
// registries' endpoints and auth. A reloaded configuration gets a fresh state.
type state struct {
	cfg  *service.Config
	tls  *transport.HostTLS
	base http.RoundTripper // user agent → retry → per-host TLS: pings and tokens

	mu        sync.Mutex
	auths     map[string]*transport.Auth // by "scheme://host"
	endpoints map[string]*endpoint       // pinged, by "scheme://host"
	skip      map[string]bool            // own endpoints passed over for a later one
}

func (c *Client) current() *state {
	cfg := c.svc.Config()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != nil && c.state.cfg == cfg {
		return c.state
	}
	if c.state != nil {
		c.state.tls.CloseIdleConnections()
	}
	tls := transport.NewHostTLS(c.base, cfg.TLSConfig)
	c.state = &state{
		cfg:       cfg,
		tls:       tls,
		base:      c.outer(transport.NewRetry(tls, c.retry)),
		auths:     map[string]*transport.Auth{},
		endpoints: map[string]*endpoint{},
		skip:      map[string]bool{},
	}
	return c.state
}

// outer wraps rt in the transports every request goes through first: user agent and
// extra headers.
func (c *Client) outer(rt http.RoundTripper) http.RoundTripper {
	return transport.NewUserAgent(transport.NewHeaders(rt, c.headers), c.userAgent)
}

// endpointKey names an endpoint in the state's maps: scheme, host and (for a mirror with
// one) path.
func endpointKey(u *url.URL) string {
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/")
}

// endpoint is one reachable endpoint of a registry with its client: user agent → auth →
// retry → per-host TLS.
type endpoint struct {
	service.Endpoint
	registry string
	hc       *http.Client
	auth     *transport.Auth
}

// url returns the endpoint URL of an API path ("/v2/..."), under the endpoint's own path
// (a mirror's).
func (e *endpoint) url(path string, query url.Values) string {
	u := *e.URL
	u.Path = strings.TrimSuffix(e.URL.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return u.String()
}

type purpose int

const (
	forPull purpose = iota
	forPush
	forSearch
)

// candidates returns where registry may be reached for the purpose, in order: mirrors
// (pull from Docker Hub only), then the registry's own endpoints (HTTPS, and HTTP after it
// for an insecure registry).
func candidates(ctx context.Context, st *state, registry string, p purpose) []service.Endpoint {
	switch p {
	case forPull:
		return st.cfg.PullEndpoints(ctx, registry)
	case forSearch:
		return st.cfg.SearchEndpoints(ctx, registry)
	}
	return st.cfg.PushEndpoints(ctx, registry)
}

// pinged returns the client of an endpoint, pinging it (GET /v2/) on first use to learn
// its challenges. Only successes are remembered, so an endpoint that was down is tried
// again by the next operation; an own endpoint that failed while a later one answered (HTTPS
// of an HTTP-only insecure registry) is remembered as skipped.
func (c *Client) pinged(ctx context.Context, st *state, cand service.Endpoint, registry string, p purpose) (*endpoint, error) {
	key := endpointKey(cand.URL)
	st.mu.Lock()
	ep, ok := st.endpoints[key]
	dead := st.skip[key]
	st.mu.Unlock()
	if ok {
		return ep, nil
	}
	if dead {
		return nil, errSkipped
	}
	var chs []transport.Challenge
	if p != forSearch {
		res, err := transport.Ping(ctx, st.base, cand.URL)
		if err != nil {
			return nil, err
		}
		chs = res.Challenges
	}
	ep = c.endpointFor(st, cand, registry, chs)
	st.mu.Lock()
	st.endpoints[key] = ep
	st.mu.Unlock()
	return ep, nil
}

var errSkipped = errors.New("skipped: another endpoint of the registry answers")

// do runs op on the endpoints of registry in order until one succeeds. An endpoint that
// does not answer a ping is passed over; a mirror's failure (other than a cancelled context
// or a digest mismatch) moves on to the next endpoint; the registry's own answer is the
// last word. Endpoints are pinged only when reached, so a mirror that serves the content
// keeps every request off the registry behind it.
func (c *Client) do(ctx context.Context, registry string, p purpose, op func(*endpoint) error) error {
	st := c.current()
	var errs []error
	var failedOwn []string
	for _, cand := range candidates(ctx, st, registry, p) {
		ep, err := c.pinged(ctx, st, cand, registry, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, errSkipped) {
				errs = append(errs, fmt.Errorf("%s: %w", cand.URL, err))
			}
			if !cand.Mirror {
				failedOwn = append(failedOwn, endpointKey(cand.URL))
			}
			continue
		}
		if !cand.Mirror && len(failedOwn) > 0 {
			st.mu.Lock()
			for _, k := range failedOwn {
				st.skip[k] = true
			}
			st.mu.Unlock()
		}
		err = op(ep)
		if err == nil {
			return nil
		}
		if !cand.Mirror || ctx.Err() != nil || errors.Is(err, ErrDigestMismatch) {
			return err
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", cand.URL, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("no endpoint for registry %s", registry)
	}
	return fmt.Errorf("registry %s: %w", registry, errors.Join(errs...))
}

// endpoint returns the registry's own first endpoint that answers (never a mirror), for
// operations that must see the registry itself (listings, uploads).
func (c *Client) endpoint(ctx context.Context, registry string) (*endpoint, error) {
	var found *endpoint
	err := c.do(ctx, registry, forPush, func(ep *endpoint) error {
		found = ep
		return nil
	})
	return found, err
}

// endpointFor builds the client of one endpoint; its Auth is shared by every use of the
// same scheme and host, so tokens are cached across operations.
func (c *Client) endpointFor(st *state, ep service.Endpoint, registry string, challenges []transport.Challenge) *endpoint {
	key := endpointKey(ep.URL)
	st.mu.Lock()
	a, ok := st.auths[key]
	if !ok {
		a = transport.NewAuth(transport.NewRetry(st.tls, c.retry), transport.AuthOptions{
			Host:           ep.URL.Host,
			Credentials:    c.creds,
			Challenges:     challenges,
			TokenTransport: st.base,
		})
		st.auths[key] = a
	} else if challenges != nil {
		a.SetChallenges(challenges)
	}
	st.mu.Unlock()
	return &endpoint{
		Endpoint: ep,
		registry: registry,
		auth:     a,
		hc:       &http.Client{Transport: c.outer(a)},
	}
}

// Ping checks that registry ("host[:port]", "docker.io") answers the distribution API, on
// the endpoints a push would use. A server that answers, but not as a V2 registry, gives an
// error holding a *transport.PingResponseError (see IsNotRegistry); one that cannot be
// reached gives the network's error.
func (c *Client) Ping(ctx context.Context, registry string) error {
	_, err := c.endpoint(ctx, registry)
	return wrap("ping", registry, err)
}

// Login checks creds against registry and returns what should be stored for it: creds, or,
// when the registry's token service hands out a refresh token for them, that token as the
// identity token in place of the password. A registry without authentication accepts any
// credentials. Store the result with credentials.ConfigFile.Store.
func (c *Client) Login(ctx context.Context, registry string, creds transport.Credentials) (transport.Credentials, error) {
	st := c.current()
	cands := st.cfg.PushEndpoints(ctx, registry)
	var errs []error
	for _, cand := range cands {
		res, err := transport.Ping(ctx, st.base, cand.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cand.URL, err))
			continue
		}
		out, err := c.login(ctx, st, cand, res.Challenges, creds)
		return out, wrap("login", registry, err)
	}
	return transport.Credentials{}, wrap("login", registry, fmt.Errorf("not reachable: %w", errors.Join(errs...)))
}

func (c *Client) login(ctx context.Context, st *state, ep service.Endpoint, chs []transport.Challenge, creds transport.Credentials) (transport.Credentials, error) {
	if bearer, ok := transport.ChallengeFor(chs, "bearer"); ok {
		tok, err := transport.FetchToken(ctx, st.base, bearer, creds, nil, transport.TokenOptions{OAuthPassword: true})
		if err != nil {
			return transport.Credentials{}, err
		}
		if tok.RefreshToken != "" {
			return transport.Credentials{Username: creds.Username, IdentityToken: tok.RefreshToken}, nil
		}
		return creds, nil
	}
	if _, ok := transport.ChallengeFor(chs, "basic"); ok {
		a := transport.NewAuth(transport.NewRetry(st.tls, c.retry), transport.AuthOptions{
			Host:        ep.URL.Host,
			Credentials: func(context.Context, string) (transport.Credentials, error) { return creds, nil },
			Challenges:  chs,
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.URL.JoinPath("/v2/").String(), nil)
		if err != nil {
			return transport.Credentials{}, err
		}
		resp, err := (&http.Client{Transport: c.outer(a)}).Do(req)
		if err != nil {
			return transport.Credentials{}, err
		}
		if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
			return transport.Credentials{}, err
		}
		resp.Body.Close()
	}
	return creds, nil
}
