package berthcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/storage"
)

func newGCCmd() *cobra.Command {
	var data, cfgFile string
	var dryRun, verbose bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove unreachable blobs and manifests (garbage collection)",
		Long: `Remove what nothing keeps: manifests no tag reaches (when a retention rule
sets untaggedAfter), tags retention rules drop, blob links no manifest
needs, and blob bytes no repository links, older than gc.grace. It runs
while berth serves; one collection runs at a time per database (a second one
stops with an error). It reads the same configuration as serve (--config,
BERTH_CONFIG, BERTH_*, --data) and prints what it freed; with --dry-run it
only prints what it would free, and -v lists every item.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cfgFile, "", data)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runGC(ctx, cmd.OutOrStdout(), cfg, dryRun, verbose)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be freed, remove nothing")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every tag, manifest, blob link and blob")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default ./berth-data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML config file")
	return cmd
}

// runGC collects once with cfg's storage, metadata and gc settings and
// writes the report to w.
func runGC(ctx context.Context, w io.Writer, cfg config.Config, dryRun, verbose bool) error {
	if cfg.Storage.Driver == "inmemory" {
		return usageError{errors.New("storage.driver inmemory: its blobs live inside the serving process, which collects them on its schedule")}
	}
	gcCfg, retention := gcSettings(cfg)
	opts, err := gcCfg.Options(retention)
	if err != nil {
		return usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	opts.DryRun = dryRun
	opts.Log = newLogger(cfg)
	drv, err := openDriver(cfg)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	meta, err := openMetadata(cfg)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	defer meta.Close()
	rep, err := gc.Run(ctx, meta, storage.New(drv), opts)
	if errors.Is(err, gc.ErrLocked) {
		return errors.New("another garbage collection is running on this database (berth serve's schedule or another berth gc); try again later")
	}
	if rep != nil {
		if verbose {
			if werr := rep.WriteList(w); werr != nil {
				return werr
			}
		}
		fmt.Fprintln(w, rep.Summary())
	}
	return err
}

// gcSettings returns the gc and retention sections of cfg.
func gcSettings(cfg config.Config) (gc.Config, gc.Retention) {
	return cfg.GC, cfg.Retention
}
