package berthcmd

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/client"
)

func (a *cliApp) lsCmd() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "ls REGISTRY",
		Short: "List the repositories of a registry",
		Long: `List the repositories of REGISTRY (host[:port]) from its catalog, one per line,
page by page as the registry sends them. A registry with access control lists
the repositories the caller may pull.`,
	}
	cmd.Flags().IntVarP(&pageSize, "page-size", "n", 0, "entries asked for per request (default: the registry's)")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		registry := strings.TrimSuffix(args[0], "/")
		if registry == "" || strings.Contains(registry, "/") {
			return usageError{fmt.Errorf("%w: %q is not a registry (host[:port]); `berth tags REPO` lists a repository's tags", client.ErrInvalidReference, args[0])}
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		all := []string{}
		for page, err := range c.CatalogPages(cmd.Context(), registry, client.ListOptions{PageSize: pageSize}) {
			if err != nil {
				return err
			}
			if a.flags.json {
				all = append(all, page...)
				continue
			}
			for _, r := range page {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
		}
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), map[string]any{"registry": registry, "repositories": all})
		}
		return nil
	})
}

func (a *cliApp) tagsCmd() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "tags REPO",
		Short: "List the tags of a repository",
		Long:  `List the tags of REPO ("registry.example/team/app"), one per line.`,
	}
	cmd.Flags().IntVarP(&pageSize, "page-size", "n", 0, "entries asked for per request (default: the registry's)")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		repo, err := client.ParseRepository(args[0])
		if err != nil {
			return err
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		all := []string{}
		for page, err := range c.TagPages(cmd.Context(), repo, client.ListOptions{PageSize: pageSize}) {
			if err != nil {
				return err
			}
			if a.flags.json {
				all = append(all, page...)
				continue
			}
			for _, t := range page {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
		}
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), map[string]any{"repository": repo.Name(), "tags": all})
		}
		return nil
	})
}

func (a *cliApp) searchCmd() *cobra.Command {
	var limit int
	var filterArgs []string
	cmd := &cobra.Command{
		Use:   "search REGISTRY TERM",
		Short: "Search a registry's repositories",
		Long: `Search the repositories of REGISTRY for TERM through the search API docker
search uses (GET /v1/search). Registries without it fail with exit code 1.
Filters keep the results that match all of them, as docker search --filter:
stars=N (at least N stars; the highest N given counts), is-official=true|false,
is-automated=true|false.`,
		Example: `  berth search registry.example app --filter stars=3 --filter is-official=false`,
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "most results to ask for (default: the registry's)")
	cmd.Flags().StringArrayVarP(&filterArgs, "filter", "f", nil, "keep results matching KEY=VALUE: stars=N, is-official=BOOL, is-automated=BOOL; repeatable")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials, cobra.ExactArgs(2), func(cmd *cobra.Command, args []string) error {
		registry := strings.TrimSuffix(args[0], "/")
		if registry == "" || strings.Contains(registry, "/") {
			return usageError{fmt.Errorf("%w: %q is not a registry (host[:port])", client.ErrInvalidReference, args[0])}
		}
		if limit < 0 {
			return usageError{errors.New("--limit must not be negative")}
		}
		filters, err := client.ParseSearchFilters(filterArgs)
		if err != nil {
			return usageError{fmt.Errorf("--filter: %w", err)}
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		results, err := c.SearchWithOptions(cmd.Context(), registry, args[1], client.SearchOptions{Limit: limit, Filters: filters})
		if err != nil {
			return err
		}
		if a.flags.json {
			if results == nil {
				results = []client.SearchResult{}
			}
			return printJSON(cmd.OutOrStdout(), map[string]any{"registry": registry, "term": args[1], "results": results})
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tDESCRIPTION\tSTARS\tOFFICIAL")
		for _, r := range results {
			official := ""
			if r.IsOfficial {
				official = "[OK]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Name, oneLine(r.Description), r.StarCount, official)
		}
		return tw.Flush()
	})
}

// oneLine keeps text from breaking a table row.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
