package berthcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client"
)

// Output formats of pull.
const (
	formatOCI           = "oci"
	formatDockerArchive = "docker-archive"
)

// transferFlags are the flags of pull, push and copy.
type transferFlags struct {
	platforms   []string
	all         bool
	concurrency int
	chunkSize   int64
	quiet       bool
}

// register adds the flags; chunkSize is the default of --chunk-size, which uploads only
// have (-1: none).
func (t *transferFlags) register(fs *pflag.FlagSet, platforms bool, chunkSize int64) {
	if platforms {
		fs.StringArrayVar(&t.platforms, "platform", nil, "of an index, copy the image for this os/arch[/variant], as containerd reads it (linux/arm64 is linux/arm64/v8, x86_64 is amd64; repeatable; several give an index of those; default: this machine's, linux/"+runtime.GOARCH+")")
		fs.BoolVar(&t.all, "all-platforms", false, "copy an index with every image it lists, unchanged")
	}
	fs.IntVar(&t.concurrency, "concurrency", 4, "blobs moved at once")
	if chunkSize >= 0 {
		fs.Int64Var(&t.chunkSize, "chunk-size", chunkSize, "upload blobs larger than this many bytes in chunks of it, each resumed after a broken connection; 0: every blob in one request")
	}
	fs.BoolVarP(&t.quiet, "quiet", "q", false, "no progress; print only the digest of the result")
}

func (t *transferFlags) parsePlatforms() ([]client.Platform, error) {
	if t.all && len(t.platforms) > 0 {
		return nil, usageError{errors.New("--all-platforms and --platform exclude each other")}
	}
	if t.chunkSize < 0 {
		return nil, usageError{fmt.Errorf("--chunk-size %d: must not be negative", t.chunkSize)}
	}
	if t.concurrency < 1 {
		return nil, usageError{fmt.Errorf("--concurrency %d: must be at least 1", t.concurrency)}
	}
	var out []client.Platform
	for _, s := range t.platforms {
		p, err := client.ParsePlatform(s)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, p)
	}
	return out, nil
}

// progressFor returns the progress display of a transfer.
func (a *cliApp) progressFor(cmd *cobra.Command, t *transferFlags) progress {
	w := cmd.ErrOrStderr()
	return newProgress(w, a.flags.json || t.quiet, isTerminal(w))
}

// defaultPlatform is the platform of an index copied without --platform or --all-platforms.
func defaultPlatform() client.Platform {
	return client.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func platformString(p *client.Platform) string {
	if p == nil {
		return "unknown"
	}
	return client.PlatformString(*p)
}

// printResult prints the outcome of a transfer: JSON, the digest alone with -q, or a line.
func (a *cliApp) printResult(w io.Writer, t *transferFlags, res transferResult, line string) error {
	switch {
	case a.flags.json:
		return printJSON(w, res)
	case t.quiet:
		_, err := fmt.Fprintln(w, res.Digest)
		return err
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// checkOutputPath fails early, before anything is downloaded, when the output's directory
// is missing.
func checkOutputPath(out string) error {
	parent := filepath.Dir(filepath.Clean(out))
	info, err := os.Stat(parent)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("output %s: directory %s does not exist", out, parent)
	case err != nil:
		return fmt.Errorf("output %s: %w", out, err)
	case !info.IsDir():
		return fmt.Errorf("output %s: %s is not a directory", out, parent)
	}
	return nil
}

// pickSource decides what of ref a transfer moves: with all, ref as it is; an image
// manifest, as it is (pinned to its digest); of an index, the image of the one platform
// wanted (this machine's by default), or with several platforms the index pinned to its
// digest and filtered to them. single demands one image (a docker archive).
func pickSource(ctx context.Context, c *client.Client, op string, ref client.Reference, want []client.Platform, all, single bool) (client.Reference, []client.Platform, error) {
	if all {
		return ref, nil, nil
	}
	m, err := c.GetManifest(ctx, ref)
	if err != nil {
		return ref, nil, err
	}
	if !m.IsIndex() {
		return ref.WithDigest(m.Descriptor.Digest), nil, nil
	}
	ix, err := m.Index()
	if err != nil {
		return ref, nil, &client.Error{Op: op, Ref: ref.String(), Err: err}
	}
	if len(want) == 0 {
		want = []client.Platform{defaultPlatform()}
	}
	if len(want) > 1 {
		if single {
			return ref, nil, usageError{errors.New("a docker archive holds one image: give one --platform")}
		}
		return ref.WithDigest(m.Descriptor.Digest), want, nil
	}
	var have []string
	for _, d := range ix.Manifests {
		if client.PlatformMatches(want[0], d.Platform) {
			return ref.WithDigest(d.Digest), nil, nil
		}
		have = append(have, platformString(d.Platform))
	}
	return ref, nil, &client.Error{Op: op, Ref: ref.String(), Err: fmt.Errorf("%w: the index has no image for %s (it has %s; see --platform, --all-platforms)",
		client.ErrNotFound, platformString(&want[0]), strings.Join(have, ", "))}
}

// transferResult is the --json output of pull, push and copy.
type transferResult struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Format      string `json:"format,omitempty"`
	Digest      string `json:"digest"`
	MediaType   string `json:"mediaType"`
	Size        int64  `json:"size"`
}

func (a *cliApp) pullCmd() *cobra.Command {
	var t transferFlags
	var output, format, name string
	cmd := &cobra.Command{
		Use:   "pull IMAGE --output DIR|FILE.tar",
		Short: "Download an image into an OCI image layout or a docker archive",
		Long: `Download an image into an OCI image layout (a directory; skopeo reads it as
oci:DIR:NAME) or a docker archive (FILE.tar, which docker load -i reads; "-o -"
writes it to standard output). Nothing is left at the output path when the pull
fails: the result is written beside it and moved into place at the end. An
existing layout gets the image added (its blobs are verified before they are
stored, and index.json names the image only once it is complete).`,
		Example: `  berth pull registry.example/app:v1 --output app.tar
  berth pull registry.example/app:v1 -o - | docker load
  berth pull registry.example/app:v1 --output ./layout --all-platforms`,
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "DIR for an OCI layout, FILE.tar for a docker archive, - for a docker archive on standard output")
	cmd.Flags().StringVar(&format, "format", "", "oci or docker-archive (default: docker-archive for *.tar, else oci)")
	cmd.Flags().StringVar(&name, "name", "", "the image's name in the OCI layout's index.json (default: its tag)")
	t.register(cmd.Flags(), true, -1)
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials|flagsMirrors, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		ref, err := client.ParseReference(args[0])
		if err != nil {
			return err
		}
		toStdout := output == "-"
		switch {
		case output == "":
			return usageError{errors.New("--output DIR, --output FILE.tar or --output - is required")}
		case toStdout && format == formatOCI:
			return usageError{errors.New("an OCI layout is a directory: -o - writes a docker archive")}
		case toStdout && a.flags.json:
			return usageError{errors.New("-o - writes the archive to standard output, where --json would write too")}
		case toStdout && isTerminal(cmd.OutOrStdout()):
			return usageError{errors.New("-o - would write a tar archive to the terminal: redirect standard output")}
		}
		switch format {
		case "":
			format = formatOCI
			if toStdout || strings.HasSuffix(strings.ToLower(output), ".tar") {
				format = formatDockerArchive
			}
		case formatOCI, formatDockerArchive:
		default:
			return usageError{fmt.Errorf("--format %q: want oci or docker-archive", format)}
		}
		if format == formatDockerArchive && t.all {
			return usageError{errors.New("a docker archive holds one image: --all-platforms needs --format oci")}
		}
		want, err := t.parsePlatforms()
		if err != nil {
			return err
		}
		if !toStdout {
			if err := checkOutputPath(output); err != nil {
				return err
			}
		}
		c, err := a.flags.newClient(client.WithConcurrency(t.concurrency), client.WithChunkSize(t.chunkSize))
		if err != nil {
			return err
		}
		src, plats, err := pickSource(ctx, c, "pull", ref, want, t.all, format == formatDockerArchive)
		if err != nil {
			return err
		}
		prog := a.progressFor(cmd, &t)
		opts := client.CopyOptions{Platforms: plats, Progress: prog.event}
		var d client.Descriptor
		if format == formatDockerArchive {
			var tags []string
			if ref.Tag != "" {
				tags = []string{ref.WithTag(ref.Tag).Familiar()}
			}
			if toStdout {
				d, err = pullArchiveTo(ctx, c, src, cmd.OutOrStdout(), tags, opts)
			} else {
				d, err = pullArchive(ctx, c, src, output, tags, opts)
			}
		} else {
			if name == "" {
				name = ref.Tag
				if name == "" {
					name = ref.Digest.String()
				}
			}
			d, err = pullLayout(ctx, c, src, output, name, opts)
		}
		prog.finish(err != nil)
		if err != nil {
			return err
		}
		res := transferResult{Source: ref.String(), Destination: output, Format: format,
			Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size}
		line := fmt.Sprintf("Pulled %s (%s) to %s", ref, d.Digest, output)
		if toStdout {
			// Standard output holds the archive: the report goes to standard error.
			if !t.quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "Pulled %s (%s)\n", ref, d.Digest)
			}
			return nil
		}
		return a.printResult(cmd.OutOrStdout(), &t, res, line)
	})
}

// pullLayout pulls src into the OCI layout dir. A new layout is built beside dir and
// renamed into place only when complete; an existing layout gets the image added.
func pullLayout(ctx context.Context, c *client.Client, src client.Reference, dir, name string, opts client.CopyOptions) (client.Descriptor, error) {
	info, err := os.Stat(dir)
	fresh, existsEmpty := false, false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fresh = true
	case err != nil:
		return client.Descriptor{}, err
	case !info.IsDir():
		return client.Descriptor{}, fmt.Errorf("output %s exists and is not a directory", dir)
	default:
		entries, err := os.ReadDir(dir)
		if err != nil {
			return client.Descriptor{}, err
		}
		if len(entries) == 0 {
			fresh, existsEmpty = true, true
		} else if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
			return client.Descriptor{}, fmt.Errorf("output %s is a directory that is neither empty nor an OCI image layout", dir)
		}
	}
	if !fresh {
		l, err := client.OpenLayout(dir)
		if err != nil {
			return client.Descriptor{}, err
		}
		return c.PullAs(ctx, src, l, name, opts)
	}
	clean := filepath.Clean(dir)
	tmp, err := os.MkdirTemp(filepath.Dir(clean), "."+filepath.Base(clean)+".tmp-")
	if err != nil {
		return client.Descriptor{}, err
	}
	defer os.RemoveAll(tmp) // nothing left after the rename
	l, err := client.OpenLayout(tmp)
	if err != nil {
		return client.Descriptor{}, err
	}
	d, err := c.PullAs(ctx, src, l, name, opts)
	if err != nil {
		return client.Descriptor{}, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return client.Descriptor{}, err
	}
	if existsEmpty {
		if err := os.Remove(clean); err != nil {
			return client.Descriptor{}, err
		}
	}
	return d, os.Rename(tmp, clean)
}

// pullArchiveTo pulls src (one image) into a temporary layout, then writes it to w as a
// docker archive.
func pullArchiveTo(ctx context.Context, c *client.Client, src client.Reference, w io.Writer, repoTags []string, opts client.CopyOptions) (client.Descriptor, error) {
	tmpDir, err := os.MkdirTemp("", "berth-pull-")
	if err != nil {
		return client.Descriptor{}, err
	}
	defer os.RemoveAll(tmpDir)
	l, err := client.OpenLayout(tmpDir)
	if err != nil {
		return client.Descriptor{}, err
	}
	d, err := c.PullAs(ctx, src, l, "image", opts)
	if err != nil {
		return client.Descriptor{}, err
	}
	if client.IsIndexMediaType(d.MediaType) {
		return client.Descriptor{}, fmt.Errorf("pull %s: an index cannot be saved as a docker archive", src)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	err = client.WriteDockerArchive(bw, l, client.ArchiveImage{Descriptor: d, RepoTags: repoTags})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return client.Descriptor{}, fmt.Errorf("writing the docker archive of %s to standard output: %w", src, err)
	}
	return d, nil
}

// pullArchive pulls src (one image) into a docker archive at out: into a layout beside
// it, then a tar beside it, renamed to out when whole.
func pullArchive(ctx context.Context, c *client.Client, src client.Reference, out string, repoTags []string, opts client.CopyOptions) (client.Descriptor, error) {
	if info, err := os.Stat(out); err == nil && info.IsDir() {
		return client.Descriptor{}, fmt.Errorf("output %s is a directory; a docker archive is a file", out)
	}
	parent, base := filepath.Dir(out), filepath.Base(out)
	tmpDir, err := os.MkdirTemp(parent, "."+base+".layout-")
	if err != nil {
		return client.Descriptor{}, err
	}
	defer os.RemoveAll(tmpDir)
	l, err := client.OpenLayout(tmpDir)
	if err != nil {
		return client.Descriptor{}, err
	}
	d, err := c.PullAs(ctx, src, l, "image", opts)
	if err != nil {
		return client.Descriptor{}, err
	}
	if client.IsIndexMediaType(d.MediaType) {
		return client.Descriptor{}, fmt.Errorf("pull %s: an index cannot be saved as a docker archive", src)
	}
	f, err := os.CreateTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return client.Descriptor{}, err
	}
	defer os.Remove(f.Name()) // nothing left after the rename
	bw := bufio.NewWriterSize(f, 1<<20)
	err = client.WriteDockerArchive(bw, l, client.ArchiveImage{Descriptor: d, RepoTags: repoTags})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return client.Descriptor{}, fmt.Errorf("writing the docker archive of %s: %w", src, err)
	}
	return d, os.Rename(f.Name(), out)
}

func (a *cliApp) pushCmd() *cobra.Command {
	var t transferFlags
	var name string
	cmd := &cobra.Command{
		Use:   "push SRC IMAGE",
		Short: "Upload an image from an OCI image layout or a docker archive",
		Long: `Upload an image from SRC, an OCI image layout (a directory) or a docker
archive (a file written by docker save or berth pull), to IMAGE. An index in a
layout is pushed with every image it lists.`,
		Example: `  berth push ./layout registry.example/app:v1
  berth push app.tar registry.example/app:v1`,
	}
	cmd.Flags().StringVar(&name, "name", "", "which image of SRC: its name in the layout's index.json, or a RepoTag of the archive (default: the only one)")
	t.register(cmd.Flags(), false, client.DefaultChunkSize)
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials|flagsForeign, cobra.ExactArgs(2), func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		srcPath := args[0]
		ref, err := client.ParseReference(args[1])
		if err != nil {
			return err
		}
		if _, err := t.parsePlatforms(); err != nil {
			return err
		}
		l, layoutName, format, cleanup, err := openPushSource(srcPath, name)
		if err != nil {
			return err
		}
		defer cleanup()
		c, err := a.flags.newClient(client.WithConcurrency(t.concurrency), client.WithChunkSize(t.chunkSize))
		if err != nil {
			return err
		}
		prog := a.progressFor(cmd, &t)
		d, err := c.Push(ctx, l, layoutName, ref, client.CopyOptions{Progress: prog.event})
		prog.finish(err != nil)
		if err != nil {
			return err
		}
		return a.printResult(cmd.OutOrStdout(), &t, transferResult{Source: srcPath, Destination: ref.String(), Format: format,
			Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size}, fmt.Sprintf("Pushed %s (%s)", ref, d.Digest))
	})
}

// openPushSource opens SRC of a push: a layout as it is, or a docker archive imported into
// a temporary layout (removed by cleanup). It returns the name of the image to push.
func openPushSource(src, name string) (l *client.Layout, layoutName, format string, cleanup func(), err error) {
	cleanup = func() {}
	info, err := os.Stat(src)
	if err != nil {
		return nil, "", "", cleanup, err
	}
	if info.IsDir() {
		if _, err := os.Stat(filepath.Join(src, ocispec.ImageLayoutFile)); err != nil {
			return nil, "", "", cleanup, fmt.Errorf("%s is not an OCI image layout (no %s)", src, ocispec.ImageLayoutFile)
		}
		l, err := client.OpenLayout(src)
		return l, name, formatOCI, cleanup, err
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, "", "", cleanup, err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "berth-push-")
	if err != nil {
		return nil, "", "", cleanup, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	l, err = client.OpenLayout(tmp)
	if err == nil {
		var images []client.ArchiveImage
		images, err = client.ImportDockerArchive(bufio.NewReaderSize(f, 1<<20), l)
		if err == nil {
			layoutName, err = chooseArchiveImage(images, name)
		}
	}
	if err != nil {
		cleanup()
		return nil, "", "", func() {}, fmt.Errorf("%s: %w", src, err)
	}
	return l, layoutName, formatDockerArchive, cleanup, nil
}

// chooseArchiveImage returns the layout name (see client.ImportDockerArchive) of the image
// name picks among an archive's images: the only one when name is "".
func chooseArchiveImage(images []client.ArchiveImage, name string) (string, error) {
	layoutName := func(img client.ArchiveImage) string {
		if len(img.RepoTags) > 0 {
			return img.RepoTags[0]
		}
		return img.Descriptor.Digest.String()
	}
	var all []string
	for _, img := range images {
		all = append(all, img.RepoTags...)
	}
	if name == "" {
		if len(images) == 1 {
			return layoutName(images[0]), nil
		}
		return "", usageError{fmt.Errorf("the archive holds %d images (%s): choose one with --name", len(images), strings.Join(all, ", "))}
	}
	want, err := client.ParseReference(name)
	for _, img := range images {
		if img.Descriptor.Digest.String() == name {
			return layoutName(img), nil
		}
		for _, t := range img.RepoTags {
			if t == name {
				return layoutName(img), nil
			}
			if got, gerr := client.ParseReference(t); err == nil && gerr == nil && got.String() == want.String() {
				return layoutName(img), nil
			}
		}
	}
	return "", fmt.Errorf("%w: no image %q in the archive (it has %s)", client.ErrNotFound, name, strings.Join(all, ", "))
}

func (a *cliApp) copyCmd() *cobra.Command {
	var t transferFlags
	cmd := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy an image or index from one registry or repository to another",
		Long: `Copy an image or an index from SRC to DST without a local copy: blobs stream
from one registry to the other, are verified on the way, are mounted instead
within one registry, and are skipped when DST has them. Of an index, only this
machine's platform is copied unless --platform or --all-platforms says
otherwise; --all-platforms copies the index unchanged (same digest).`,
		Example: `  berth copy docker.io/library/alpine:3 registry.example/mirror/alpine:3 --all-platforms`,
	}
	// Blobs stream from one registry to the other in one request each: chunks would stop
	// the download while each is sent.
	t.register(cmd.Flags(), true, 0)
	return a.clientCommand(cmd, flagsRegistry|flagsCredentials|flagsMirrors|flagsForeign, cobra.ExactArgs(2), func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		src, err := client.ParseReference(args[0])
		if err != nil {
			return err
		}
		dst, err := client.ParseReference(args[1])
		if err != nil {
			return err
		}
		want, err := t.parsePlatforms()
		if err != nil {
			return err
		}
		c, err := a.flags.newClient(client.WithConcurrency(t.concurrency), client.WithChunkSize(t.chunkSize))
		if err != nil {
			return err
		}
		from, plats, err := pickSource(ctx, c, "copy", src, want, t.all, false)
		if err != nil {
			return err
		}
		prog := a.progressFor(cmd, &t)
		d, err := c.Copy(ctx, from, dst, client.CopyOptions{Platforms: plats, Progress: prog.event})
		prog.finish(err != nil)
		if err != nil {
			return err
		}
		return a.printResult(cmd.OutOrStdout(), &t, transferResult{Source: src.String(), Destination: dst.String(),
			Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size}, fmt.Sprintf("Copied %s to %s (%s)", src, dst, d.Digest))
	})
}
