package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/client/transport"
	"github.com/berthhq/berth/connector/provider"
)

// Health states of an upstream.
const (
	stateUnknown = "unknown" // not probed yet
	stateUp      = "up"
	stateDown    = "down"
)

// health is what berth knows of an upstream's state, from the background
// probe and from every request it sends there.
type health struct {
	mu          sync.Mutex
	state       string
	downSince   time.Time
	lastError   string
	lastErrorAt time.Time
	latency     time.Duration
	lastProbe   time.Time
}

func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == stateDown
}

func (h *health) downSinceString() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downSince.Format(time.RFC3339)
}

// observe records the outcome of a request to the upstream (err is nil or
// an *upstreamError). Only failures to reach it make it down; any answer
// makes it up.
func (ca *cache) observe(err error) {
	ca.record(err, 0, false)
}

// record updates the health of ca and logs changes of state.
func (ca *cache) record(err error, latency time.Duration, probe bool) {
	log := ca.env.log
	now := ca.env.now()
	h := &ca.health
	h.mu.Lock()
	prev, since := h.state, h.downSince
	if probe {
		h.lastProbe = now
		if err == nil {
			h.latency = latency
		}
	}
	kind := kindOf(err)
	switch {
	case kind == kindCanceled:
		h.mu.Unlock()
		return
	case kind == kindUnavailable, kind == kindCredentials, probe && (kind == kindNotFound || kind == kindBad):
		// Requests find the upstream down when they cannot reach it; a
		// probe also when /v2/ does not answer as a registry would.
		if h.state != stateDown {
			h.state, h.downSince = stateDown, now
		}
	default:
		h.state, h.downSince = stateUp, time.Time{}
	}
	if err != nil && (kind != kindNotFound || probe) {
		h.lastError, h.lastErrorAt = redacted(err), now
	}
	state := h.state
	h.mu.Unlock()
	if !probe && (kind == kindRefused || kind == kindBad || kind == kindRateLimited) {
		// The health report shows these redacted; the log keeps the
		// request they came from.
		log.Warn("upstream request failed", "registry", ca.name, "upstream", ca.up.name, "err", err)
	}
	switch {
	case state == prev:
	case state == stateDown:
		log.Warn("upstream down", "registry", ca.name, "upstream", ca.up.name, "err", err)
	case prev == stateDown:
		log.Info("upstream up", "registry", ca.name, "upstream", ca.up.name, "downFor", now.Sub(since).Round(time.Second))
	default:
		log.Info("upstream up", "registry", ca.name, "upstream", ca.up.name, "latency", latency.Round(time.Microsecond))
	}
}

// kindNames describe error kinds in health reports.
var kindNames = map[errKind]string{
	kindUnavailable: "unavailable",
	kindNotFound:    "not found",
	kindRateLimited: "rate-limiting",
	kindRefused:     "refused access",
	kindBad:         "answered wrongly",
	kindCredentials: "no credentials",
}

// redacted describes err for the health report without the request it
// came from: URLs and messages of upstream failures name repositories, and
// the report is for callers who may not read them (the full error is in
// the log). It keeps what tells an operator what is wrong: the kind, the
// HTTP status and error codes, or the network failure.
func redacted(err error) string {
	what := kindNames[kindOf(err)]
	if what == "" {
		what = "failed"
	}
	var te *transport.Error
	var ue *url.Error
	switch {
	case kindOf(err) == kindCredentials:
		// The provider's message names its service and what failed,
		// never a repository (provider.Provider.Credentials).
		return what + ": " + credentialCause(err)
	case errors.As(err, &te):
		codes := make([]string, 0, len(te.Errors))
		for _, d := range te.Errors {
			codes = append(codes, d.Code)
		}
		s := fmt.Sprintf("%s: HTTP %d %s", what, te.StatusCode, http.StatusText(te.StatusCode))
		if len(codes) > 0 {
			s += " (" + strings.Join(codes, ", ") + ")"
		}
		return s
	case errors.Is(err, context.DeadlineExceeded):
		return what + ": no answer in time"
	case errors.Is(err, transport.ErrDigestMismatch):
		return what + ": content does not match its digest"
	case errors.As(err, &ue):
		// The network failure without the URL (dial, DNS, TLS).
		return what + ": " + ue.Err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return what + ": " + ne.Error()
	}
	return what
}

// credentialCause is what a credential failure says, without the request
// that needed the credentials.
func credentialCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	// transport.Auth prefixes "credentials for HOST: ".
	if _, rest, ok := strings.Cut(msg, "credentials for "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			msg = after
		}
	}
	const max = 300
	if len(msg) > max {
		msg = msg[:max] + "..."
	}
	return msg
}

// probeLoop probes ca's upstream now and then every probe interval, until
// Close.
func (ca *cache) probeLoop() {
	t := time.NewTicker(ca.probeInterval)
	defer t.Stop()
	for {
		ca.probe(ca.env.ctx)
		select {
		case <-ca.env.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe checks ca's upstream once.
func (ca *cache) probe(ctx context.Context) {
	start := time.Now()
	err := ca.up.ping(ctx)
	latency := time.Since(start)
	if err == nil {
		// An upstream that answers is no use without credentials: a
		// provider that cannot get them shows in the report too.
		err = ca.up.checkCredentials(ctx)
	}
	ca.record(err, latency, true)
}

// Status is the health of one cache's upstream, as the health endpoint
// reports it.
type Status struct {
	Name      string     `json:"name"`
	Upstream  string     `json:"upstream"`
	State     string     `json:"state"`
	DownSince *time.Time `json:"downSince,omitempty"`
	LastError string     `json:"lastError,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
	LatencyMs   float64    `json:"latencyMs"`
	LastProbe   *time.Time `json:"lastProbe,omitempty"`
	// Provider names the upstream's provider.
	Provider string `json:"provider"`
	// RateLimit is the pull limit the upstream last announced (Docker
	// Hub's ratelimit-limit and ratelimit-remaining headers).
	RateLimit *provider.RateLimit `json:"rateLimit,omitempty"`
	// Prefetch is the background fetching of layers, with prefetch:
	// layers or a sync list.
	Prefetch *PrefetchStatus `json:"prefetch,omitempty"`
	// Sync is the scheduled sync, with a sync list.
	Sync *SyncStatus `json:"sync,omitempty"`
}

// Status returns the health of every cache, in configuration order.
func (c *Connector) Status() []Status {
	out := make([]Status, 0, len(c.caches))
	for _, ca := range c.caches {
		h := &ca.health
		h.mu.Lock()
		s := Status{Name: ca.name, Upstream: ca.up.name, State: h.state, LastError: h.lastError,
			LatencyMs: float64(h.latency.Microseconds()) / 1000}
		if !h.downSince.IsZero() {
			t := h.downSince
			s.DownSince = &t
		}
		if !h.lastErrorAt.IsZero() {
			t := h.lastErrorAt
			s.LastErrorAt = &t
		}
		if !h.lastProbe.IsZero() {
			t := h.lastProbe
			s.LastProbe = &t
		}
		h.mu.Unlock()
		s.Provider = ca.up.providerName
		if hi, ok := ca.up.provider.(provider.Hinter); ok {
			s.RateLimit = hi.Hints().RateLimit
		}
		if ca.prefetcher != nil {
			ps := ca.prefetcher.status()
			s.Prefetch = &ps
		}
		if ca.sync != nil {
			ss := ca.sync.snapshot()
			s.Sync = &ss
		}
		out = append(out, s)
	}
	return out
}

// RateLimits returns, by cache name, the pull limits the upstreams last
// announced (for metrics); caches whose upstream announced none are
// left out.
func (c *Connector) RateLimits() map[string]provider.RateLimit {
	out := map[string]provider.RateLimit{}
	for _, ca := range c.caches {
		if hi, ok := ca.up.provider.(provider.Hinter); ok {
			if rl := hi.Hints().RateLimit; rl != nil {
				out[ca.name] = *rl
			}
		}
	}
	return out
}

// Health implements registry.HealthReporter: {"connectors": [Status...]}.
func (c *Connector) Health() any {
	return struct {
		Connectors []Status `json:"connectors"`
	}{c.Status()}
}
