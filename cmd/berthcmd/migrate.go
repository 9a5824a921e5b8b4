package berthcmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/metadata/postgres"
	"github.com/berthhq/berth/metadata/sqlite"
)

func newMigrateCmd() *cobra.Command {
	var addr, data, cfgFile string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the metadata database's schema up to date",
		Long: `Bring the metadata database's schema up to date and exit. berth serve does
the same on start; this lets a deployment migrate once before starting
replicas. It reads the same configuration as serve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cfgFile, addr, data)
			if err != nil {
				return usageError{err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), metadataConnectTimeout)
			defer cancel()
			switch cfg.Metadata.Driver {
			case "postgres":
				if err := postgres.Migrate(ctx, cfg.Metadata.DSN); err != nil {
					return err
				}
			default:
				st, err := sqlite.Open(cfg.Metadata.Path)
				if err != nil {
					return err
				}
				if err := st.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "metadata (%s) is up to date\n", cfg.Metadata.Driver)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "unused; accepted so serve's flags can be reused")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default ./berth-data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML config file")
	_ = cmd.Flags().MarkHidden("addr")
	return cmd
}
