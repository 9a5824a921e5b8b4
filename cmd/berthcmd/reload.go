package berthcmd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"

	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// generation is what a reload replaces: the registries (the connector),
// the authentication and rules (the gate) and the registry over them,
// built from one configuration over the one stored content.
type generation struct {
	handler http.Handler
	conn    *connector.Connector
	// inflight counts the requests it serves, so it is closed only when
	// the last of them finished.
	inflight sync.WaitGroup
}

// tryLocker is a metadata store that offers advisory locks by key, so
// that a cache's sync runs on one replica at a time.
type tryLocker interface {
	TryLock(ctx context.Context, key string) (release func(), ok bool, err error)
}

// newGeneration builds the request path of cfg: gate → registry →
// connector.
func newGeneration(cfg config.Config, log *slog.Logger, meta metadata.Store, content metadata.ReadWriter, blobs *storage.Store, sched *gc.Scheduler, ops *operations, reload func(context.Context) error) (*generation, error) {
	gate, err := newGate(cfg, log, ops)
	if err != nil {
		return nil, err
	}
	copts := ops.connectorOptions(connector.Options{Logger: log, MaxManifestSize: cfg.Manifests.MaxSize})
	if l, ok := meta.(tryLocker); ok {
		copts.TryLock = l.TryLock
	}
	// Connectors name the repository that serves each name: hosted, a
	// cache or a virtual registry. With none configured every name is
	// hosted.
	conn, err := connector.New(cfg.Registries, content, blobs, copts)
	if err != nil {
		return nil, fmt.Errorf("registries: %w", err)
	}
	opts := ops.registryOptions(registry.Options{
		MaxManifestSize:  cfg.Manifests.MaxSize,
		RequireLayers:    cfg.Manifests.RequireLayers,
		DeleteReferenced: cfg.Manifests.DeleteReferenced,
		Resolver:         conn,
		Logger:           log,
		Reload:           reload,
	})
	if gate != nil {
		opts.Authorize, opts.MayPull, opts.MayMount = gate.Authorize, gate.MayPull, gate.MayMount
	}
	// The one request path: the gate (authentication, the token service)
	// → the registry (route, authorise once, resolve, answer). The web UI
	// sits beside the gate.
	reg := registry.New(blobs, content, opts)
	var h http.Handler = reg
	if gate != nil {
		h = gate.Wrap(h)
	}
	if cfg.UI.Enabled {
		if h, err = mountUI(cfg, log, h, reg, meta, conn, gate, sched, ops); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return &generation{handler: h, conn: conn}, nil
}

// liveHandler serves every request with the current generation and
// swaps in a new one on a reload: requests in flight finish on the one
// they started on, which is closed after the last of them.
type liveHandler struct {
	log *slog.Logger

	mu  sync.RWMutex // guards cur against a swap between choosing and counting
	cur *generation

	reloading sync.Mutex // one reload at a time
	cfg       config.Config
	build     func(config.Config) (*generation, error)
	load      func() (config.Config, error)
	retiring  sync.WaitGroup
}

// start sets the first generation, built from cfg; load reads the
// configuration again for a reload (nil: reloads are refused).
func (l *liveHandler) start(cfg config.Config, g *generation, build func(config.Config) (*generation, error), load func() (config.Config, error)) {
	l.cfg, l.cur, l.build, l.load = cfg, g, build, load
}

func (l *liveHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.RLock()
	g := l.cur
	g.inflight.Add(1)
	l.mu.RUnlock()
	defer g.inflight.Done()
	g.handler.ServeHTTP(w, r)
}

// restartOnly are the sections a reload cannot change: they are read
// once, at start.
func restartOnly(old, cur config.Config) []string {
	var changed []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"addr", old.Addr, cur.Addr}, {"data", old.Data, cur.Data}, {"storage", old.Storage, cur.Storage},
		{"metadata", old.Metadata, cur.Metadata}, {"tls", old.TLS, cur.TLS}, {"server", old.Server, cur.Server},
		{"log", old.Log, cur.Log}, {"gc", old.GC, cur.GC}, {"uploads", old.Uploads, cur.Uploads},
		{"notifications", old.Notifications, cur.Notifications}, {"debug", old.Debug, cur.Debug}, {"tracing", old.Tracing, cur.Tracing},
		{"manifests.cacheBytes", old.Manifests.CacheBytes, cur.Manifests.CacheBytes},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// reload reads the configuration again and, if it is valid, swaps in a
// generation built from it. An invalid configuration is refused and
// logged, and the running one stays.
func (l *liveHandler) reload(context.Context) error {
	l.reloading.Lock()
	defer l.reloading.Unlock()
	if l.load == nil {
		return fmt.Errorf("no configuration to reload")
	}
	cfg, err := l.load()
	if err == nil {
		var g *generation
		if g, err = l.build(cfg); err == nil {
			if changed := restartOnly(l.cfg, cfg); len(changed) > 0 {
				l.log.Warn("reload: these settings take effect only after a restart", "sections", changed)
			}
			l.mu.Lock()
			old := l.cur
			l.cur = g
			l.mu.Unlock()
			l.cfg = cfg
			l.retire(old)
			l.log.Info("configuration reloaded", "registries", len(cfg.Registries), "rules", len(cfg.Auth.Rules), "groups", len(cfg.Auth.Groups))
			return nil
		}
	}
	l.log.Error("reload refused: the running configuration stays", "err", err)
	return err
}

// retire closes g once the requests it serves have finished.
func (l *liveHandler) retire(g *generation) {
	l.retiring.Add(1)
	go func() {
		defer l.retiring.Done()
		g.inflight.Wait()
		_ = g.conn.Close()
	}()
}

// connector returns the current generation's connector.
func (l *liveHandler) connector() *connector.Connector {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cur.conn
}

// close closes the current generation and waits for retiring ones.
func (l *liveHandler) close() {
	l.mu.Lock()
	g := l.cur
	l.mu.Unlock()
	l.retire(g)
	l.retiring.Wait()
}
