package berthcmd

import (
	"fmt"

	"github.com/spf13/cobra"
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
			// Opening a store brings its schema up to date.
			st, err := openMetadata(cfg)
			if err != nil {
				return err
			}
			if err := st.Close(); err != nil {
				return err
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
