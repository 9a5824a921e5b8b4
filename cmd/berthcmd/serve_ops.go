package berthcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/internal/metrics"
	"github.com/berthhq/berth/internal/probe"
	"github.com/berthhq/berth/internal/tracing"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/notifications"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
)

// operations holds what serve adds for running berth in production:
// metrics and the debug listener, probes, notifications, the audit log,
// tracing, and the tracker of uploads a drain may have to cut.
type operations struct {
	cfg   config.Config
	log   *slog.Logger
	build buildInfo

	audit    *audit.Logger
	tracing  *tracing.Tracing
	metrics  *metrics.Metrics
	notifier *notifications.Notifier
	probes   *probe.Handler
	uploads  *registry.Uploads
}

// newOperations sets up what needs no store yet: the audit log and
// tracing.
func newOperations(ctx context.Context, cfg config.Config, log *slog.Logger, build buildInfo) (*operations, error) {
	o := &operations{cfg: cfg, log: log, build: build, uploads: registry.NewUploads()}
	if cfg.Log.Audit {
		o.audit = audit.New(log)
	}
	if tracing.Enabled(cfg.Tracing.Enabled, nil) {
		t, err := tracing.Setup(ctx, build.Version)
		if err != nil {
			return nil, err
		}
		o.tracing = t
		log.Info("tracing: exporting spans over OTLP (the OTEL_* variables configure the exporter)")
	}
	return o, nil
}

// driver wraps drv in tracing spans when tracing is on.
func (o *operations) driver(drv driver.Driver) driver.Driver {
	if o.tracing == nil {
		return drv
	}
	return o.tracing.Driver(drv)
}

// attach sets up what needs the stores: notifications (the store must
// keep a queue), metrics over the store's counts, and the probes.
func (o *operations) attach(meta metadata.Store, blobs *storage.Store) error {
	queue, _ := meta.(metadata.EventQueue)
	notify := len(o.cfg.Notifications.Endpoints) > 0
	if notify && queue == nil {
		return fmt.Errorf("notifications: metadata store %s cannot queue events; remove notifications.endpoints or use sqlite or postgres", o.cfg.Metadata.Driver)
	}
	if o.cfg.Debug.Addr != "" {
		stats, _ := meta.(metadata.Stater)
		opts := metrics.Options{
			Build:            metrics.Build{Version: o.build.Version, Commit: o.build.Commit, GoVersion: o.build.GoVersion},
			RepositoryLabels: o.cfg.Debug.RepositoryLabels,
			Stats:            stats,
			Uploads:          o.uploads,
			Logger:           o.log,
		}
		if notify {
			opts.Queue = queue
			for _, e := range o.cfg.Notifications.Endpoints {
				opts.Endpoints = append(opts.Endpoints, e.Name)
			}
		}
		o.metrics = metrics.New(opts)
	}
	if notify {
		nopts := notifications.Options{Addr: o.cfg.Addr, Logger: o.log, UserAgent: "berth/" + o.build.Version}
		if o.metrics != nil {
			nopts.Metrics = o.metrics
		}
		n, err := notifications.New(o.cfg.Notifications, queue, nopts)
		if err != nil {
			return err
		}
		o.notifier = n
	}
	o.probes = probe.New([]probe.Check{
		{Name: "storage", Run: func(ctx context.Context) error {
			// A blob nobody stores: the answer "unknown" is the store
			// answering.
			_, err := blobs.Stat(ctx, readinessDigest)
			if errors.Is(err, storage.ErrBlobUnknown) {
				return nil
			}
			return err
		}},
		{Name: "metadata", Run: func(ctx context.Context) error {
			_, err := meta.Repositories(ctx, "", 1)
			return err
		}},
	}, probe.DefaultTimeout, o.log)
	return nil
}

// readinessDigest is the digest the storage check asks for.
var readinessDigest = digest.FromString("berth readiness probe")

// watchUpstreams reports the health and rate limits of the current
// connector's caches (a reload replaces it) to the metrics.
func (o *operations) watchUpstreams(current func() *connector.Connector) {
	if o.metrics == nil {
		return
	}
	o.metrics.WatchUpstreams(func() []metrics.UpstreamState {
		st := current().Status()
		out := make([]metrics.UpstreamState, len(st))
		for i, s := range st {
			out[i] = metrics.UpstreamState{Registry: s.Name, State: s.State}
			if rl := s.RateLimit; rl != nil {
				out[i].RateLimit = &metrics.RateLimit{Remaining: float64(rl.Remaining), Limit: float64(rl.Limit)}
			}
		}
		return out
	})
}

// connectorOptions adds the hooks to the connectors' options.
func (o *operations) connectorOptions(opts connector.Options) connector.Options {
	if o.metrics != nil {
		opts.Metrics = o.metrics
	}
	if o.tracing != nil {
		opts.WrapTransport = o.tracing.Transport
	}
	return opts
}

// registryOptions adds the hooks to the registry's options.
func (o *operations) registryOptions(opts registry.Options) registry.Options {
	if o.notifier != nil {
		opts.Notifier = o.notifier
	}
	opts.Audit = o.audit
	return opts
}

// handlerOptions adds metrics, probes, the upload tracker and tracing to
// the outermost layer's options.
func (o *operations) handlerOptions(opts registry.HandlerOptions) registry.HandlerOptions {
	opts.Uploads = o.uploads
	opts.Probes = o.probes
	if o.metrics != nil {
		opts.Metrics = o.metrics
	}
	if o.tracing != nil {
		opts.Wrap = o.tracing.Handler
	}
	return opts
}

// start runs the debug listener and the notification deliveries until
// stop. The debug listener is bound before start returns, so a port in
// use is an error at start.
func (o *operations) start(ctx context.Context) (stop func(), err error) {
	var stops []func()
	if o.metrics != nil {
		ln, err := net.Listen("tcp", o.cfg.Debug.Addr)
		if err != nil {
			return nil, fmt.Errorf("debug.addr: %w", err)
		}
		if !loopback(o.cfg.Debug.Addr) {
			o.log.Warn("the debug listener (metrics and the profiler, without authentication) is on a non-loopback address; keep it off public networks",
				"addr", ln.Addr().String())
		}
		srv := &http.Server{Handler: o.metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		o.log.Info("debug listener: /metrics and /debug/pprof/", "addr", ln.Addr().String())
		stops = append(stops, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}
	if o.notifier != nil {
		nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			o.notifier.Run(nctx)
			close(done)
		}()
		o.log.Info("notifications: delivering to endpoints", "endpoints", o.notifier.Endpoints())
		stops = append(stops, func() {
			cancel()
			<-done
		})
	}
	return func() {
		// Deliveries first: the debug listener keeps answering until the
		// end.
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		if o.tracing != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := o.tracing.Shutdown(sctx); err != nil {
				o.log.Warn("tracing: sending the last spans", "err", err)
			}
		}
	}, nil
}

// drain shuts srv down: readiness fails at once (a load balancer stops
// sending requests), requests in progress get the drain timeout to end,
// and then the ones left are cut. Uploads cut that way are logged; they
// resume from their Range, and their handlers get a moment to save what
// they received.
func (o *operations) drain(srv *http.Server) error {
	if o.probes != nil {
		o.probes.SetDraining()
	}
	timeout := o.cfg.Server.DrainTimeout
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	cut := o.uploads.List()
	o.log.Warn("drain timeout passed; cutting the requests still in progress", "drainTimeout", timeout, "uploads", len(cut))
	for _, u := range cut {
		o.log.Warn("upload cut by the shutdown; the client resumes it from its Range", "repo", u.Repository, "session", u.Session,
			"user", u.User, "remote", u.Remote, "running", time.Since(u.Since).Round(time.Millisecond))
	}
	_ = srv.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := o.uploads.Wait(wctx); err != nil {
		o.log.Warn("uploads still saving after the cut; they resume from what storage holds", "uploads", o.uploads.Len())
	}
	return nil
}
