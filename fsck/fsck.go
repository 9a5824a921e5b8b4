// Package fsck checks that what berth stores is what it says it stores:
// every blob's bytes hash to its digest, every blob a repository links is
// in storage with its size, every manifest's content hashes to its digest
// and parses, each image's config is in its repository, and every tag
// points at a manifest of its repository.
//
// With Repair, what is wrong is taken out of service so clients get "not
// found" (and can push it again) instead of bad content: corrupt blob bytes
// are moved to /quarantine in storage and unlinked from every repository,
// links to missing bytes are removed, and manifests whose stored content is
// corrupt are copied to /quarantine and deleted (with their tags). Nothing
// is ever deleted without a copy being kept, except links, which hold no
// data.
//
// Checking runs beside a live registry (it only reads); repairing is meant
// for a registry that is stopped or quiet, since a push racing a repair may
// be unlinked with the corrupt copy it replaces.
package fsck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// Options tune a check.
type Options struct {
	// Repair takes what is wrong out of service (see the package doc).
	Repair bool
	// Log receives progress; nil for none.
	Log *slog.Logger
}

// Problem is one thing found wrong.
type Problem struct {
	// Kind is a short category: corrupt-blob, missing-blob, size-mismatch,
	// corrupt-manifest, invalid-manifest, missing-config, dangling-tag.
	Kind string
	// Repository is empty for problems of storage alone.
	Repository string
	Digest     digest.Digest
	// Detail says what is wrong, Repair what was done about it (empty
	// without Options.Repair or when nothing could be done).
	Detail string
	Repair string
}

func (p Problem) String() string {
	where := string(p.Digest)
	if p.Repository != "" {
		where = p.Repository + "@" + where
	}
	s := fmt.Sprintf("%s %s: %s", p.Kind, where, p.Detail)
	if p.Repair != "" {
		s += " (" + p.Repair + ")"
	}
	return s
}

// Report is the outcome of a check.
type Report struct {
	Blobs, BlobBytes                     int64
	Repositories, Manifests, Tags, Links int64
	Problems                             []Problem
}

// WriteSummary writes the problems, one a line, and a summary line.
func (r *Report) WriteSummary(w io.Writer) error {
	for _, p := range r.Problems {
		if _, err := fmt.Fprintln(w, p); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "checked %d blobs (%d bytes) and %d repositories (%d manifests, %d tags, %d blob links): %d problems\n",
		r.Blobs, r.BlobBytes, r.Repositories, r.Manifests, r.Tags, r.Links, len(r.Problems))
	return err
}

// checker holds one run's state.
type checker struct {
	meta  metadata.Store
	blobs *storage.Store
	opts  Options
	rep   *Report
	// bad holds the blobs whose bytes are corrupt; gone those repaired out
	// of storage.
	bad map[digest.Digest]string
}

// Run checks meta and blobs and returns what it found. An error means the
// check could not finish; problems found are in the report.
func Run(ctx context.Context, meta metadata.Store, blobs *storage.Store, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &checker{meta: meta, blobs: blobs, opts: opts, rep: &Report{}, bad: map[digest.Digest]string{}}
	if err := c.checkBlobs(ctx); err != nil {
		return c.rep, err
	}
	if err := c.checkRepositories(ctx); err != nil {
		return c.rep, err
	}
	return c.rep, nil
}

func (c *checker) add(p Problem) {
	c.opts.Log.Warn("fsck: "+p.Kind, "repo", p.Repository, "digest", p.Digest, "detail", p.Detail, "repair", p.Repair)
	c.rep.Problems = append(c.rep.Problems, p)
}

// checkBlobs re-hashes every stored blob.
func (c *checker) checkBlobs(ctx context.Context) error {
	var list []storage.BlobInfo
	if err := c.blobs.WalkBlobs(ctx, func(b storage.BlobInfo) error {
		list = append(list, b)
		return nil
	}); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, b := range list {
		got, n, err := c.blobs.Verify(ctx, b.Digest)
		if errors.Is(err, storage.ErrBlobUnknown) {
			continue // deleted since the walk
		}
		if err != nil {
			return err
		}
		c.rep.Blobs++
		c.rep.BlobBytes += n
		if got == b.Digest {
			continue
		}
		p := Problem{Kind: "corrupt-blob", Digest: b.Digest, Detail: fmt.Sprintf("the stored bytes (%d) hash to %s", n, got)}
		c.bad[b.Digest] = p.Detail
		if c.opts.Repair {
			path, err := c.blobs.QuarantineBlob(ctx, b.Digest)
			if err != nil {
				return err
			}
			p.Repair = "moved to " + path
		}
		c.add(p)
	}
	return nil
}

// checkRepositories checks every repository's links, manifests and tags.
func (c *checker) checkRepositories(ctx context.Context) error {
	last := ""
	for {
		names, err := c.meta.Repositories(ctx, last, 500)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := c.checkRepository(ctx, name); err != nil {
				return fmt.Errorf("repository %s: %w", name, err)
			}
		}
		if len(names) < 500 {
			return nil
		}
		last = names[len(names)-1]
	}
}

func (c *checker) checkRepository(ctx context.Context, name string) error {
	var state metadata.RepositoryState
	_, err := c.meta.CollectRepository(ctx, name, func(s *metadata.RepositoryState) (*metadata.Collection, error) {
		state = *s
		return &metadata.Collection{}, nil
	}, false)
	if errors.Is(err, metadata.ErrRepositoryNotFound) {
		return nil // deleted since it was listed
	}
	if err != nil {
		return err
	}
	c.rep.Repositories++
	linked := map[digest.Digest]bool{}
	for _, l := range state.Blobs {
		c.rep.Links++
		if err := c.checkLink(ctx, name, l); err != nil {
			return err
		}
		linked[l.Digest] = true
	}
	manifests := map[digest.Digest]bool{}
	for _, m := range state.Manifests {
		c.rep.Manifests++
		ok, err := c.checkManifest(ctx, name, m, linked)
		if err != nil {
			return err
		}
		manifests[m.Digest] = ok
	}
	for _, t := range state.Tags {
		c.rep.Tags++
		if _, ok := manifests[t.Manifest]; !ok {
			c.add(Problem{Kind: "dangling-tag", Repository: name, Digest: t.Manifest,
				Detail: fmt.Sprintf("tag %s points at a manifest the repository does not hold", t.Name)})
		}
	}
	return nil
}

// checkLink checks one blob link of repository name.
func (c *checker) checkLink(ctx context.Context, name string, l metadata.BlobLink) error {
	var p Problem
	if detail, corrupt := c.bad[l.Digest]; corrupt {
		p = Problem{Kind: "corrupt-blob", Repository: name, Digest: l.Digest, Detail: "linked blob: " + detail}
	} else {
		size, err := c.blobs.Stat(ctx, l.Digest)
		switch {
		case errors.Is(err, storage.ErrBlobUnknown):
			p = Problem{Kind: "missing-blob", Repository: name, Digest: l.Digest, Detail: "the repository links a blob whose bytes are not stored"}
		case err != nil:
			return err
		case size != l.Size:
			p = Problem{Kind: "size-mismatch", Repository: name, Digest: l.Digest, Detail: fmt.Sprintf("linked with %d bytes, %d stored", l.Size, size)}
		default:
			return nil
		}
	}
	if c.opts.Repair {
		if err := c.meta.DeleteBlob(ctx, name, l.Digest); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		p.Repair = "unlinked: pushing the blob again restores it"
	}
	c.add(p)
	return nil
}

// checkManifest checks one manifest of repository name and reports whether
// it is still there.
func (c *checker) checkManifest(ctx context.Context, name string, ms metadata.ManifestState, linked map[digest.Digest]bool) (bool, error) {
	m, err := c.meta.GetManifest(ctx, name, ms.Digest)
	if errors.Is(err, metadata.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := ms.Digest.Validate(); err != nil {
		return true, nil // not a digest berth could have stored; reported nowhere else
	}
	if got := ms.Digest.Algorithm().FromBytes(m.Content); got != ms.Digest {
		p := Problem{Kind: "corrupt-manifest", Repository: name, Digest: ms.Digest,
			Detail: fmt.Sprintf("the stored content (%d bytes) hashes to %s", len(m.Content), got)}
		if c.opts.Repair {
			path, err := c.blobs.QuarantineContent(ctx, name, ms.Digest, m.Content)
			if err != nil {
				return true, err
			}
			if err := c.meta.DeleteManifest(ctx, name, ms.Digest); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return true, err
			}
			p.Repair = "copied to " + path + " and deleted with its tags"
			c.add(p)
			return false, nil
		}
		c.add(p)
		return true, nil
	}
	parsed, err := registry.ParseManifest(m.MediaType, m.Content)
	if err != nil {
		c.add(Problem{Kind: "invalid-manifest", Repository: name, Digest: ms.Digest, Detail: err.Error()})
		return true, nil
	}
	if (parsed.MediaType == registry.MediaTypeOCIManifest || parsed.MediaType == registry.MediaTypeDockerManifest) && len(parsed.Blobs) > 0 && !linked[parsed.Blobs[0]] {
		c.add(Problem{Kind: "missing-config", Repository: name, Digest: ms.Digest,
			Detail: fmt.Sprintf("the image's config %s is not in the repository", parsed.Blobs[0])})
	}
	return true, nil
}
