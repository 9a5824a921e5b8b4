// Package metrics builds berth's Prometheus collectors and serves them,
// with the Go profiler, on the debug listener. It is the only package that
// imports the Prometheus client: the others report through small
// interfaces (registry.Metrics, connector.Metrics, auth.Metrics,
// gc.Metrics, notifications.Metrics) that *Metrics implements.
//
// Labels carry only bounded values: route families, methods, status
// codes, configured registry and endpoint names. Repository names (which
// clients choose) are a label of the request counter only when
// Options.RepositoryLabels is set.
//
// What is counted from the metadata store (repositories, manifests,
// blobs, stored bytes, pending notifications) is read when Prometheus
// scrapes, at most once per StatsInterval, never by walking storage.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

const namespace = "berth"

// Build describes the running binary, for berth_build_info.
type Build struct {
	Version, Commit, GoVersion string
}

// UpstreamState is the health of one cache's upstream.
type UpstreamState struct {
	Registry string
	// State is up, down or unknown (not probed yet).
	State string
	// RateLimit, when set, is the pull limit the upstream last announced.
	RateLimit *RateLimit
}

// RateLimit is what an upstream said of its rate limit: Remaining of
// Limit requests (Limit 0: not announced).
type RateLimit struct {
	Remaining, Limit float64
}

// Options configure the collectors.
type Options struct {
	Build Build
	// RepositoryLabels adds the repository to the request counter. Every
	// repository then makes series of its own: for debugging only.
	RepositoryLabels bool
	// Stats, when set, counts what metadata holds.
	Stats metadata.Stater
	// Queue, when set, counts pending notifications; Endpoints are the
	// configured endpoints, reported even when none is pending.
	Queue     metadata.EventQueue
	Endpoints []string
	// Uploads, when set, counts the uploads in flight.
	Uploads *registry.Uploads
	// Upstreams, when set, reports the health of the caches' upstreams.
	Upstreams func() []UpstreamState
	// StatsInterval bounds how often Stats and Queue are asked (default
	// 30s): a scrape in between gets the last answer.
	StatsInterval time.Duration
	// Logger receives failures of those queries.
	Logger *slog.Logger
}

// Metrics holds berth's collectors and implements the packages' hooks.
type Metrics struct {
	reg      *prometheus.Registry
	repoLbls bool

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	cacheLookups  *prometheus.CounterVec
	upDuration    *prometheus.HistogramVec
	upErrors      *prometheus.CounterVec
	upBytes       *prometheus.CounterVec
	upRateLimit   *prometheus.GaugeVec
	auth          *prometheus.CounterVec
	gcRuns        *prometheus.CounterVec
	gcDuration    prometheus.Histogram
	gcFreed       prometheus.Counter
	gcRemoved     *prometheus.CounterVec
	gcLast        prometheus.Gauge
	notifyOK      *prometheus.CounterVec
	notifyFailed  *prometheus.CounterVec
	notifyDropped prometheus.Counter
}

// New returns the collectors, registered in a registry of their own with
// the Go runtime's and the process's.
func New(opts Options) *Metrics {
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, repoLbls: opts.RepositoryLabels}
	f := factory{reg}

	reqLabels := []string{"route", "method", "code"}
	if opts.RepositoryLabels {
		reqLabels = append(reqLabels, "repository")
	}
	m.requests = f.counterVec("http_requests_total", "Requests answered, by route family, method and status code.", reqLabels...)
	m.duration = f.histogramVec("http_request_duration_seconds", "Time from a request's arrival to the end of its answer, by route family and method.",
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}, "route", "method")
	m.bytesIn = f.counterVec("http_request_bytes_total", "Request body bytes read, by route family.", "route")
	m.bytesOut = f.counterVec("http_response_bytes_total", "Response body bytes written, by route family.", "route")

	m.cacheLookups = f.counterVec("cache_requests_total", "Content requests of caches, by registry, kind (manifest, blob) and result (hit: served from what was stored; miss: fetched from the upstream).", "registry", "kind", "result")
	m.upDuration = f.histogramVec("upstream_request_duration_seconds", "Time upstreams took to answer a request, by cache registry.",
		[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "registry")
	m.upErrors = f.counterVec("upstream_errors_total", "Upstream requests that failed, by cache registry and reason (unreachable, server_error, rate_limited).", "registry", "reason")
	m.upBytes = f.counterVec("upstream_bytes_total", "Bytes read from upstreams, by cache registry.", "registry")

	m.auth = f.counterVec("auth_attempts_total", "Credential checks, by method (basic, token, refresh) and result (success, failure).", "method", "result")

	m.gcRuns = f.counterVec("gc_runs_total", "Garbage collections, by result (ok, failed, skipped: another held the lock).", "result")
	m.gcDuration = f.histogram("gc_duration_seconds", "Time garbage collections took.", prometheus.ExponentialBuckets(0.1, 4, 10))
	m.gcFreed = f.counter("gc_freed_bytes_total", "Blob bytes garbage collection deleted from storage.")
	m.gcRemoved = f.counterVec("gc_removed_total", "What garbage collection removed, by kind (tag, manifest, link, blob).", "kind")
	m.gcLast = f.gauge("gc_last_success_timestamp_seconds", "When the last complete garbage collection of this process finished (Unix time).")

	m.notifyOK = f.counterVec("notifications_delivered_total", "Events endpoints took, by endpoint.", "endpoint")
	m.notifyFailed = f.counterVec("notifications_failures_total", "Events whose delivery failed (each attempt), by endpoint.", "endpoint")
	m.notifyDropped = f.counter("notifications_dropped_total", "Events dropped: pull events the queue did not keep up with, and the oldest events of a failing endpoint beyond its maxPending.")

	build := f.gaugeVec("build_info", "The running binary: version, commit and Go version, as labels of a constant 1.", "version", "commit", "goversion")
	build.WithLabelValues(opts.Build.Version, opts.Build.Commit, opts.Build.GoVersion).Set(1)

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Uploads != nil {
		u := opts.Uploads
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "uploads_in_flight",
			Help: "Requests writing into uploads now."}, func() float64 { return float64(u.Len()) }))
	}
	if opts.Upstreams != nil {
		m.WatchUpstreams(opts.Upstreams)
	}
	if opts.Stats != nil || opts.Queue != nil {
		reg.MustRegister(newStoreCollector(opts))
	}
	return m
}

// factory creates collectors in the berth namespace and registers them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// WatchUpstreams reports the health and rate limits of the caches'
// upstreams, asked when Prometheus scrapes. Call it at most once; states
// may read whatever set of caches is current.
func (m *Metrics) WatchUpstreams(states func() []UpstreamState) {
	m.reg.MustRegister(&upstreamCollector{states: states,
		up: prometheus.NewDesc(namespace+"_upstream_up",
			"Whether a cache's upstream answers (1) or not (0), by cache registry; absent until first probed.", []string{"registry"}, nil),
		remaining: prometheus.NewDesc(namespace+"_upstream_ratelimit_remaining",
			"What an upstream last said is left of its rate limit (Docker Hub's ratelimit-remaining header), by cache registry.", []string{"registry"}, nil),
		limit: prometheus.NewDesc(namespace+"_upstream_ratelimit_limit",
			"The rate limit an upstream last announced (Docker Hub's ratelimit-limit header), by cache registry.", []string{"registry"}, nil),
	})
}

// Registry returns the Prometheus registry, for tests and callers that
// add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the debug listener: /metrics (the Prometheus text
// format) and /debug/pprof/ (the Go profiler).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// knownMethods are the method label's values; any other method is
// "other", so a client cannot make series up.
var knownMethods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
}

// codes caches the code label of common statuses.
var codes sync.Map

func code(status int) string {
	if v, ok := codes.Load(status); ok {
		return v.(string)
	}
	s := strconv.Itoa(status)
	if status >= 100 && status < 600 {
		codes.Store(status, s)
	}
	return s
}

// Request implements registry.Metrics.
func (m *Metrics) Request(s registry.RequestStats) {
	method, ok := knownMethods[s.Method]
	if !ok {
		method = "other"
	}
	if m.repoLbls {
		m.requests.WithLabelValues(s.Family, method, code(s.Status), s.Repository).Inc()
	} else {
		m.requests.WithLabelValues(s.Family, method, code(s.Status)).Inc()
	}
	m.duration.WithLabelValues(s.Family, method).Observe(s.Duration.Seconds())
	if s.BytesIn > 0 {
		m.bytesIn.WithLabelValues(s.Family).Add(float64(s.BytesIn))
	}
	if s.BytesOut > 0 {
		m.bytesOut.WithLabelValues(s.Family).Add(float64(s.BytesOut))
	}
}

// CacheLookup implements connector.Metrics.
func (m *Metrics) CacheLookup(registry, kind string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cacheLookups.WithLabelValues(registry, kind, result).Inc()
}

// UpstreamRequest implements connector.Metrics.
func (m *Metrics) UpstreamRequest(registry string, d time.Duration, failure string) {
	m.upDuration.WithLabelValues(registry).Observe(d.Seconds())
	if failure != "" {
		m.upErrors.WithLabelValues(registry, failure).Inc()
	}
}

// UpstreamBytes implements connector.Metrics.
func (m *Metrics) UpstreamBytes(registry string, n int64) {
	m.upBytes.WithLabelValues(registry).Add(float64(n))
}

// Authentication implements auth.Metrics.
func (m *Metrics) Authentication(method string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.auth.WithLabelValues(method, result).Inc()
}

// Collected implements gc.Metrics.
func (m *Metrics) Collected(rep *gc.Report, err error) {
	switch {
	case rep == nil && err != nil:
		result := "failed"
		if isLocked(err) {
			result = "skipped"
		}
		m.gcRuns.WithLabelValues(result).Inc()
		return
	case rep == nil:
		return
	}
	m.gcDuration.Observe(rep.Finished.Sub(rep.Started).Seconds())
	m.gcFreed.Add(float64(rep.BytesFreed()))
	m.gcRemoved.WithLabelValues("tag").Add(float64(len(rep.Tags)))
	m.gcRemoved.WithLabelValues("manifest").Add(float64(len(rep.Manifests)))
	m.gcRemoved.WithLabelValues("link").Add(float64(len(rep.Links)))
	m.gcRemoved.WithLabelValues("blob").Add(float64(len(rep.Blobs)))
	if err != nil {
		m.gcRuns.WithLabelValues("failed").Inc()
		return
	}
	m.gcRuns.WithLabelValues("ok").Inc()
	m.gcLast.Set(float64(rep.Finished.Unix()))
}

// Delivered implements notifications.Metrics.
func (m *Metrics) Delivered(endpoint string, events int) {
	m.notifyOK.WithLabelValues(endpoint).Add(float64(events))
}

// Failed implements notifications.Metrics.
func (m *Metrics) Failed(endpoint string, events int) {
	m.notifyFailed.WithLabelValues(endpoint).Add(float64(events))
}

// Dropped implements notifications.Metrics.
func (m *Metrics) Dropped(events int) { m.notifyDropped.Add(float64(events)) }

// isLocked reports a collection skipped because another held the lock.
func isLocked(err error) bool { return errors.Is(err, gc.ErrLocked) }

// upstreamCollector reports the upstreams' health and rate limits when
// scraped.
type upstreamCollector struct {
	states               func() []UpstreamState
	up, remaining, limit *prometheus.Desc
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.remaining
	ch <- c.limit
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.states() {
		if rl := s.RateLimit; rl != nil {
			ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, rl.Remaining, s.Registry)
			if rl.Limit > 0 {
				ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, rl.Limit, s.Registry)
			}
		}
		v := 0.0
		switch s.State {
		case "up":
			v = 1
		case "down":
		default:
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, v, s.Registry)
	}
}

// storeCollector reports what metadata counts, asked at most once per
// interval.
type storeCollector struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	at      time.Time
	stats   *metadata.Stats
	pending map[string]int64

	repos, manifests, tags, blobs, bytes, queue *prometheus.Desc
}

func newStoreCollector(opts Options) *storeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &storeCollector{
		opts:      opts,
		log:       opts.Logger,
		repos:     d("repositories", "Repositories in the metadata store."),
		manifests: d("manifests", "Manifests in the metadata store (one in two repositories counts twice)."),
		tags:      d("tags", "Tags in the metadata store."),
		blobs:     d("blobs", "Distinct blobs some repository links."),
		bytes:     d("storage_bytes", "Bytes of the blobs some repository links, each blob once: what storage holds for them."),
		queue:     d("notifications_pending", "Events waiting for delivery, by endpoint.", "endpoint"),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.repos, c.manifests, c.tags, c.blobs, c.bytes, c.queue} {
		ch <- d
	}
}

// storeQueryTimeout bounds the queries of one scrape.
const storeQueryTimeout = 5 * time.Second

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= c.opts.StatsInterval {
		ctx, cancel := context.WithTimeout(context.Background(), storeQueryTimeout)
		if c.opts.Stats != nil {
			st, err := c.opts.Stats.Stats(ctx)
			if err != nil {
				c.log.Warn("metrics: counting the metadata store", "err", err)
			} else {
				c.stats = &st
			}
		}
		if c.opts.Queue != nil {
			p, err := c.opts.Queue.PendingEvents(ctx)
			if err != nil {
				c.log.Warn("metrics: counting pending notifications", "err", err)
			} else {
				for _, name := range c.opts.Endpoints {
					p[name] += 0
				}
				c.pending = p
			}
		}
		cancel()
		c.at = time.Now()
	}
	if st := c.stats; st != nil {
		g := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
		}
		g(c.repos, st.Repositories)
		g(c.manifests, st.Manifests)
		g(c.tags, st.Tags)
		g(c.blobs, st.Blobs)
		g(c.bytes, st.BlobBytes)
	}
	for name, n := range c.pending {
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), name)
	}
}
