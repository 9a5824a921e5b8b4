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
	"github.com/berthhq/berth/fsck"
	"github.com/berthhq/berth/storage"
)

// exitProblems is the exit code of berth fsck when it found something
// wrong.
const exitProblems = 5

// problemsFound is the error of a check that found problems.
type problemsFound struct{ n int }

func (e problemsFound) Error() string {
	return fmt.Sprintf("fsck found %d problems", e.n)
}

func newFsckCmd() *cobra.Command {
	var data, cfgFile string
	var repair bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check that stored blobs, manifests and tags are intact",
		Long: `Check everything berth stores: re-hash every blob against its digest, check
that every blob a repository links is stored with its size, that every
manifest's content hashes to its digest and parses, that every image's config
is in its repository, and that every tag points at a manifest. Each problem is
printed on a line, then a summary. It reads the same configuration as serve
(--config, BERTH_CONFIG, BERTH_*, --data) and may run beside a live registry.

With --repair, what is wrong is taken out of service so that clients get "not
found" (and can push it again) instead of bad content: corrupt blob bytes are
moved to /quarantine in storage and unlinked, links to missing bytes are
removed, and corrupt manifests are copied to /quarantine and deleted with
their tags. Repair a registry that is stopped or quiet.

Exit code 5 means problems were found (repaired or not); 0 that none were.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cfgFile, "", data)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFsck(ctx, cmd.OutOrStdout(), cfg, repair)
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "quarantine corrupt content and remove what refers to missing content")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default ./berth-data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML config file")
	return cmd
}

// runFsck checks cfg's storage and metadata and writes the report to w.
func runFsck(ctx context.Context, w io.Writer, cfg config.Config, repair bool) error {
	if cfg.Storage.Driver == "inmemory" {
		return usageError{errors.New("storage.driver inmemory: its blobs live inside the serving process")}
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
	rep, err := fsck.Run(ctx, meta, storage.New(drv), fsck.Options{Repair: repair, Log: newLogger(cfg)})
	if rep != nil {
		if werr := rep.WriteSummary(w); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return problemsFound{len(rep.Problems)}
	}
	return nil
}
