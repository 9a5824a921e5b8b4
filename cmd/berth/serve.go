package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/filesystem"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

func newServeCmd() *cobra.Command {
	var addr, data, cfgFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the registry",
		Long: `Start the registry. With no configuration it listens on 127.0.0.1:5000 and
keeps its data under ./berth-data. Settings come from the defaults, then the
config file (--config or BERTH_CONFIG), then BERTH_* environment variables,
then flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cfgFile, addr, data)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address HOST:PORT (default 127.0.0.1:5000)")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default ./berth-data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML config file")
	return cmd
}

// loadConfig layers defaults, file, environment and flags.
func loadConfig(cmd *cobra.Command, cfgFile, addr, data string) (config.Config, error) {
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

func openDriver(cfg config.Config) (driver.Driver, error) {
	switch cfg.Storage.Driver {
	case "inmemory":
		return inmemory.New(), nil
	default:
		return filesystem.New(cfg.Storage.Root)
	}
}

func openMetadata(cfg config.Config) (metadata.Store, error) {
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, err
	}
	return sqlite.Open(cfg.Metadata.Path)
}

func serve(ctx context.Context, cfg config.Config) error {
	log := newLogger(cfg)
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	drv, err := openDriver(cfg)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	meta, err := openMetadata(cfg)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	defer meta.Close()
	blobs := storage.New(drv)
	reg := registry.New(blobs, meta, registry.Options{
		MaxManifestSize: cfg.Manifests.MaxSize,
		RequireLayers:   cfg.Manifests.RequireLayers,
		Logger:          log,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           reg,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go purgeUploads(ctx, log, blobs, time.Duration(cfg.Uploads.MaxAgeHours)*time.Hour)
	log.Info("berth listening", "addr", ln.Addr().String(), "data", cfg.Data, "storage", cfg.Storage.Driver, "metadata", cfg.Metadata.Driver)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

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
