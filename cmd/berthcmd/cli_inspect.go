package berthcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berthhq/berth/client"
)

// maxConfigSize bounds the image configuration inspect reads.
const maxConfigSize = 4 << 20

// imageSummary describes one image manifest: what inspect shows of it, alone or as an
// entry of an index.
type imageSummary struct {
	Platform  string              `json:"platform,omitempty"`
	Digest    string              `json:"digest"`
	MediaType string              `json:"mediaType"`
	Size      int64               `json:"size"`
	Config    *client.Descriptor  `json:"config,omitempty"`
	Layers    []client.Descriptor `json:"layers,omitempty"`
	// TotalSize is what the image takes in a registry: config and layers as stored.
	TotalSize int64  `json:"totalSize"`
	Created   string `json:"created,omitempty"`
}

// inspectResult is inspect's --json output.
type inspectResult struct {
	Reference string          `json:"reference"`
	Digest    string          `json:"digest"`
	MediaType string          `json:"mediaType"`
	Size      int64           `json:"size"`
	Manifest  json.RawMessage `json:"manifest"`
	// Image is the summary of an image manifest, with its configuration.
	Image       *imageSummary   `json:"image,omitempty"`
	ImageConfig json.RawMessage `json:"imageConfig,omitempty"`
	// Platforms are the images an index lists.
	Platforms []imageSummary `json:"platforms,omitempty"`
}

func (a *cliApp) inspectCmd() *cobra.Command {
	var raw, quiet bool
	var platform string
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's or index's manifest, configuration, platforms and sizes",
		Long: `Show what IMAGE is: its digest and media type; for an index, the platforms it
lists with each image's layer count and size; for an image, its platform,
creation time, configuration and layers with their sizes. --raw prints the
manifest exactly as the registry serves it; --json prints everything,
manifest and image configuration included.`,
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the manifest as served, byte for byte")
	cmd.Flags().StringVar(&platform, "platform", "", "of an index, inspect the image for this os/arch[/variant] (as containerd reads it: linux/arm64, arm64, x86_64)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the digest")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials|flagsMirrors, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		ref, err := client.ParseReference(args[0])
		if err != nil {
			return err
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		if platform != "" {
			p, err := client.ParsePlatform(platform)
			if err != nil {
				return usageError{err}
			}
			if ref, _, err = pickSource(ctx, c, "inspect", ref, []client.Platform{p}, false, true); err != nil {
				return err
			}
		}
		m, err := c.GetManifest(ctx, ref)
		if err != nil {
			return err
		}
		if raw {
			_, err := cmd.OutOrStdout().Write(m.Body)
			return err
		}
		if quiet && !a.flags.json {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), m.Descriptor.Digest)
			return err
		}
		res := inspectResult{Reference: ref.String(), Digest: m.Descriptor.Digest.String(), MediaType: m.Descriptor.MediaType,
			Size: m.Descriptor.Size, Manifest: jsonOrNil(m.Body)}
		if m.IsIndex() {
			ix, err := m.Index()
			if err != nil {
				return &client.Error{Op: "inspect", Ref: ref.String(), Err: err}
			}
			for _, d := range ix.Manifests {
				s := imageSummary{Platform: platformString(d.Platform), Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size}
				if !client.IsIndexMediaType(d.MediaType) {
					child, err := c.GetManifest(ctx, ref.Repo().WithDigest(d.Digest))
					if err != nil {
						return err
					}
					if err := summarize(&s, child); err != nil {
						return &client.Error{Op: "inspect", Ref: ref.Repo().WithDigest(d.Digest).String(), Err: err}
					}
				}
				res.Platforms = append(res.Platforms, s)
			}
		} else {
			s := imageSummary{Digest: m.Descriptor.Digest.String(), MediaType: m.Descriptor.MediaType, Size: m.Descriptor.Size}
			if err := summarize(&s, m); err != nil {
				return &client.Error{Op: "inspect", Ref: ref.String(), Err: err}
			}
			if s.Config != nil && client.IsImageConfig(s.Config.MediaType) && s.Config.Size <= maxConfigSize {
				cfg, err := readConfig(ctx, c, ref, *s.Config)
				if err != nil {
					return err
				}
				res.ImageConfig = jsonOrNil(cfg)
				var img ocispec.Image
				if json.Unmarshal(cfg, &img) == nil {
					if img.OS != "" {
						s.Platform = platformString(&img.Platform)
					}
					if img.Created != nil && !img.Created.IsZero() {
						s.Created = img.Created.UTC().Format("2006-01-02T15:04:05Z")
					}
				}
			}
			res.Image = &s
		}
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		return printInspect(cmd.OutOrStdout(), res)
	})
}

// summarize fills in an image manifest's config, layers and total size.
func summarize(s *imageSummary, m *client.Manifest) error {
	if m.IsIndex() {
		return nil
	}
	im, err := m.Image()
	if err != nil {
		return err
	}
	s.Config = &im.Config
	s.Layers = im.Layers
	s.TotalSize = im.Config.Size
	for _, l := range im.Layers {
		s.TotalSize += l.Size
	}
	return nil
}

// readConfig downloads an image configuration (verified against its digest).
func readConfig(ctx context.Context, c *client.Client, ref client.Reference, d client.Descriptor) ([]byte, error) {
	rc, err := c.GetBlobDescriptor(ctx, ref.Repo(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, &client.Error{Op: "inspect", Ref: ref.String(), Err: fmt.Errorf("config %s: %w", d.Digest, err)}
	}
	return b, nil
}

func jsonOrNil(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	return nil
}

func printInspect(w io.Writer, r inspectResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Reference:\t%s\n", r.Reference)
	fmt.Fprintf(tw, "Digest:\t%s\n", r.Digest)
	fmt.Fprintf(tw, "Media type:\t%s\n", r.MediaType)
	fmt.Fprintf(tw, "Manifest size:\t%s\n", humanSize(r.Size))
	if r.Image != nil {
		s := r.Image
		if s.Platform != "" {
			fmt.Fprintf(tw, "Platform:\t%s\n", s.Platform)
		}
		if s.Created != "" {
			fmt.Fprintf(tw, "Created:\t%s\n", s.Created)
		}
		if s.Config != nil {
			fmt.Fprintf(tw, "Config:\t%s (%s, %s)\n", s.Config.Digest, humanSize(s.Config.Size), s.Config.MediaType)
		}
		fmt.Fprintf(tw, "Layers:\t%d\n", len(s.Layers))
		fmt.Fprintf(tw, "Total size:\t%s (config and layers as stored)\n", humanSize(s.TotalSize))
		if err := tw.Flush(); err != nil {
			return err
		}
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, l := range s.Layers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.Digest, humanSize(l.Size), l.MediaType)
		}
		return tw.Flush()
	}
	fmt.Fprintf(tw, "Platforms:\t%d\n", len(r.Platforms))
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PLATFORM\tDIGEST\tLAYERS\tSIZE")
	for _, p := range r.Platforms {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", p.Platform, p.Digest, len(p.Layers), humanSize(p.TotalSize))
	}
	return tw.Flush()
}

func (a *cliApp) rmCmd() *cobra.Command {
	var force, quiet bool
	cmd := &cobra.Command{
		Use:   "rm IMAGE",
		Short: "Delete a tag or a manifest from a registry",
		Long: `Delete IMAGE: by tag (REPO:TAG) the tag alone, on registries that delete tags;
by digest (REPO@sha256:...) the manifest and every tag of it. Blobs are left
to the registry's garbage collection.

A manifest that a tagged index of the same repository lists (one platform of a
multi-platform image) is not deleted by digest unless --force: the index would
name a manifest that is gone. berth reads the repository's tags and indexes to
know (at most 1000 tags and 200 indexes; beyond that it refuses unless --force).
A registry may refuse such a deletion itself (MANIFEST_REFERENCED), --force or
not.`,
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete a manifest by digest even if a tagged index lists it")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		ref, err := client.ParseReference(args[0])
		if err != nil {
			return err
		}
		c, err := a.flags.newClient()
		if err != nil {
			return err
		}
		if ref.Digest != "" && !force {
			if err := checkUnreferenced(cmd.Context(), c, ref); err != nil {
				return err
			}
		}
		if err := c.DeleteManifest(cmd.Context(), ref); err != nil {
			var re *client.RegistryError
			if ref.Digest == "" && errors.As(err, &re) && (re.StatusCode == http.StatusMethodNotAllowed || re.HasCode("UNSUPPORTED")) {
				return fmt.Errorf("%w (the registry does not delete tags alone: `berth rm REPO@DIGEST` deletes the manifest and all its tags)", err)
			}
			return err
		}
		if a.flags.json {
			return printJSON(cmd.OutOrStdout(), map[string]string{"deleted": ref.String()})
		}
		if !quiet {
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s\n", ref)
		}
		return nil
	})
}

// checkUnreferenced refuses the deletion of ref's manifest when a tagged index of its
// repository lists it, or when that cannot be known within the scan's limits.
func checkUnreferenced(ctx context.Context, c *client.Client, ref client.Reference) error {
	refs, err := c.ReferencingIndexes(ctx, ref.Repo(), ref.Digest, client.IndexScanLimits{})
	if errors.Is(err, client.ErrScanIncomplete) {
		return &client.Error{Op: "rm", Ref: ref.String(), Err: fmt.Errorf("cannot tell whether a tagged index lists the manifest: %w (--force deletes it anyway)", err)}
	}
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	var tags []string
	for _, r := range refs {
		tags = append(tags, fmt.Sprintf("%s (%s)", r.Tag, r.Index))
	}
	return &client.Error{Op: "rm", Ref: ref.String(), Err: fmt.Errorf("%w: the index of %s lists it, and deleting it would break that image: delete or retag the index first, or use --force",
		client.ErrReferenced, strings.Join(tags, ", "))}
}
