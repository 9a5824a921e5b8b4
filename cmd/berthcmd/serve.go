package berthcmd

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/internal/builtin"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
)

func newServeCmd() *cobra.Command {
	var addr, data, cfgFile string
	var insecureOpen bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the registry",
		Long: `Start the registry. With no configuration it listens on 127.0.0.1:5000 and
keeps its data under ./berth-data. Settings come from the defaults, then the
config file (--config or BERTH_CONFIG), then BERTH_* environment variables,
then flags.

Without authentication (auth.mode none, the default) berth listens only on
loopback addresses; --insecure-open lets it serve an open registry anywhere.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cfgFile, addr, data)
			if err != nil {
				return usageError{err}
			}
			if cfg.OpenWithoutAuth() && !insecureOpen && !loopback(cfg.Addr) {
				return usageError{fmt.Errorf("refusing to serve without authentication on %s, which is not a loopback address: "+
					"set auth.mode to basic or token (see the Authentication section of the README), "+
					"or pass --insecure-open to serve an open registry", cfg.Addr)}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP and POST /_berth/reload read the configuration
			// again, the same way.
			load := func() (config.Config, error) {
				cfg, err := loadConfig(cmd, cfgFile, addr, data)
				if err == nil && cfg.OpenWithoutAuth() && !insecureOpen && !loopback(cfg.Addr) {
					err = fmt.Errorf("refusing to serve without authentication on %s, which is not a loopback address", cfg.Addr)
				}
				return cfg, err
			}
			return serve(ctx, cfg, load)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address HOST:PORT (default 127.0.0.1:5000)")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default ./berth-data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML config file")
	cmd.Flags().BoolVar(&insecureOpen, "insecure-open", false, "serve without authentication on a non-loopback address")
	return cmd
}

// loopback reports whether addr listens only on loopback interfaces. An
// empty host listens on all of them; a name counts only if every address
// it resolves to is a loopback one.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// loadConfig layers defaults, file, environment and flags. The sections
// of the registered drivers and stores are part of it, so the built-in ones
// are registered first (if NewRoot has not done it yet).
func loadConfig(cmd *cobra.Command, cfgFile, addr, data string) (config.Config, error) {
	builtin.Register()
	cfg := config.Default()
	if cfgFile == "" {
		cfgFile = os.Getenv("BERTH_CONFIG")
	}
	if cfgFile != "" {
		if err := cfg.LoadFile(cfgFile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(os.Environ(), "BERTH_CONFIG"); err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("addr") {
		cfg.Addr = addr
	}
	if cmd.Flags().Changed("data") {
		cfg.Data = data
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// storageConnectTimeout bounds how long berth waits for an object store at
// start.
const storageConnectTimeout = 30 * time.Second

// openDriver opens the registered storage driver cfg names.
func openDriver(cfg config.Config) (driver.Driver, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storageConnectTimeout)
	defer cancel()
	return cfg.OpenStorage(ctx)
}

// metadataConnectTimeout bounds how long berth waits for a database server
// at start, so an unreachable one is an error rather than a hang.
const metadataConnectTimeout = 30 * time.Second

// openMetadata opens the registered metadata store cfg names; it brings
// the schema up to date.
func openMetadata(cfg config.Config) (metadata.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), metadataConnectTimeout)
	defer cancel()
	return cfg.OpenMetadata(ctx)
}

func serve(ctx context.Context, cfg config.Config, load func() (config.Config, error)) error {
	log := newLogger(cfg)
	info := readBuildInfo()
	log.Info("berth starting", "version", info.Version, "commit", info.Commit, "go", info.GoVersion, "platform", info.Platform)
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ops, err := newOperations(ctx, cfg, log, info)
	if err != nil {
		return err
	}
	drv, err := openDriver(cfg)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	drv = ops.driver(drv)
	meta, err := openMetadata(cfg)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	defer meta.Close()
	blobs := storage.New(drv)
	if err := ops.attach(meta, blobs); err != nil {
		return err
	}
	// The registry and the connectors read and write through the guarded
	// role of the store: every blob link checks, under garbage
	// collection's lock, that the bytes are still stored (gc.Guard).
	// Garbage collection gets the store itself.
	content := gc.Guard(meta, blobs)
	if n, ok := meta.(metadata.Notifier); ok && cfg.Manifests.CacheBytes > 0 {
		// Manifests by tag and digest from memory, dropped on every change
		// any writer (this process, garbage collection, another replica)
		// makes to the repository.
		mc := metadata.NewCache(content, n, int(cfg.Manifests.CacheBytes))
		defer mc.Close()
		content = mc
	}
	// Garbage collection's schedule is read once, at start.
	var sched *gc.Scheduler
	if interval := cfg.GC.Interval; interval > 0 {
		gcOpts, err := cfg.GC.Options(cfg.Retention)
		if err != nil {
			return err
		}
		gcOpts.Log, gcOpts.Audit = log, ops.audit
		if ops.metrics != nil {
			gcOpts.Metrics = ops.metrics
		}
		sched = gc.NewScheduler(meta, blobs, interval, gcOpts)
	}
	// The registries, rules, groups and users are a generation, built
	// from the configuration and swapped whole on a reload.
	live := &liveHandler{log: log}
	build := func(cfg config.Config) (*generation, error) {
		return newGeneration(cfg, log, meta, content, blobs, sched, ops, live.reload)
	}
	first, err := build(cfg)
	if err != nil {
		return err
	}
	live.start(cfg, first, build, load)
	defer live.close()
	ops.watchUpstreams(live.connector)
	// The one request path: Handler (API version header, access log, body
	// timeout) → the current generation.
	handler := registry.Handler(live, ops.handlerOptions(registry.HandlerOptions{Logger: log, BodyIdleTimeout: cfg.Server.BodyIdleTimeout}))
	var tlsConfig *tls.Config
	if cfg.TLSEnabled() {
		tlsConfig, err = auth.NewTLSConfig(auth.TLSOptions{
			CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key,
			ClientCA: cfg.TLS.ClientCA, ClientAuth: cfg.TLS.ClientAuth,
			Log: log,
		})
		if err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go purgeUploads(ctx, log, blobs, cfg.Uploads.MaxAge)
	if sched != nil {
		go func() { _ = sched.Run(ctx) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = live.reload(ctx)
			}
		}
	}()
	stopOps, err := ops.start(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopOps()
	log.Info("berth listening", "version", info.Version, "addr", ln.Addr().String(), "data", cfg.Data, "storage", cfg.Storage.Driver, "metadata", cfg.Metadata.Driver,
		"auth", cfg.Auth.Mode, "tls", tlsConfig != nil)

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drainTimeout", cfg.Server.DrainTimeout)
	return ops.drain(srv)
}

// newGate builds authentication and access control from the auth section,
// or returns nil when the mode is none.
func newGate(cfg config.Config, log *slog.Logger, ops *operations) (*auth.Gate, error) {
	a := cfg.Auth
	if a.Mode == config.AuthNone {
		return nil, nil
	}
	rules := make([]auth.Rule, len(a.Rules))
	for i, r := range a.Rules {
		rules[i] = auth.Rule{Repositories: r.Repositories, Catalog: r.Catalog, Users: r.Users, Groups: r.Groups, Actions: r.Actions, Deny: r.Deny}
	}
	rs, err := auth.NewRules(rules, a.Groups)
	if err != nil {
		return nil, fmt.Errorf("auth rules:\n%w", err)
	}
	opts := auth.GateOptions{
		Mode:                a.Mode,
		Rules:               rs,
		Limiter:             auth.NewLimiter(a.LoginLimit.Burst, float64(a.LoginLimit.PerMinute)),
		BasicRealm:          a.Realm,
		Realm:               a.Token.Realm,
		Service:             a.Token.Service,
		TrustForwardedProto: a.TrustForwardedProto,
		Log:                 log,
		Audit:               ops.audit,
	}
	if ops.metrics != nil {
		opts.Metrics = ops.metrics
	}
	if a.Htpasswd != "" {
		if opts.Users, err = auth.NewHtpasswd(a.Htpasswd, log); err != nil {
			return nil, err
		}
		if _, err := os.Stat(a.Htpasswd); errors.Is(err, fs.ErrNotExist) {
			log.Warn("no users yet: the htpasswd file does not exist; add users with `berth user add`", "file", a.Htpasswd)
		}
	}
	switch {
	case a.Mode == config.AuthToken && a.Token.External():
		opts.Verifier, err = auth.NewExternal(auth.ExternalOptions{
			Issuer:     a.Token.Issuer,
			Audience:   a.Token.Service,
			JWKS:       a.Token.JWKS,
			RootCerts:  a.Token.RootCerts,
			Algorithms: a.Token.Algorithms,
			Leeway:     a.Token.Leeway,
			Log:        log,
		})
		if err != nil {
			return nil, err
		}
	case a.Mode == config.AuthToken:
		key, err := loadTokenKey(cfg, log)
		if err != nil {
			return nil, err
		}
		issuer, err := auth.NewIssuer(key, auth.IssuerOptions{
			Issuer:     a.Token.Issuer,
			Service:    a.Token.Service,
			TTL:        a.Token.TTL,
			RefreshTTL: a.Token.RefreshTTL,
			Leeway:     a.Token.Leeway,
		})
		if err != nil {
			return nil, fmt.Errorf("token key %s: %w", a.Token.Key, err)
		}
		opts.Issuer, opts.Verifier = issuer, issuer
		log.Info("token service", "realm", a.Token.Realm, "service", a.Token.Service, "issuer", a.Token.Issuer,
			"alg", issuer.Algorithm(), "kid", issuer.PublicJWK().Kid)
	}
	return auth.NewGate(opts)
}

// loadTokenKey reads the signing key; the default one in the data
// directory is generated on first start, a configured one must exist.
func loadTokenKey(cfg config.Config, log *slog.Logger) (crypto.Signer, error) {
	path := cfg.Auth.Token.Key
	if path != filepath.Join(cfg.Data, defaultTokenKey) {
		key, err := auth.LoadKey(path)
		if err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		return key, nil
	}
	key, created, err := auth.LoadOrCreateKey(path, cfg.Auth.Token.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	if created {
		log.Info("generated a token signing key", "file", path, "alg", cfg.Auth.Token.Algorithm)
	}
	return key, nil
}

// defaultTokenKey is the signing key's file in the data directory.
const defaultTokenKey = "token-key.pem"

// purgeUploads removes abandoned upload sessions now and every hour.
func purgeUploads(ctx context.Context, log *slog.Logger, blobs *storage.Store, maxAge time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := blobs.PurgeUploads(ctx, time.Now().Add(-maxAge))
		if err != nil {
			log.Warn("purging old uploads", "err", err)
		} else if n > 0 {
			log.Info("purged old uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
