package gc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// ErrLocked is returned by Run when another collection holds the lock: in
// this process, another process on the same SQLite database, or another
// replica on the same PostgreSQL database.
var ErrLocked = metadata.ErrGCLocked

// Options tune a collection.
type Options struct {
	// Grace is how long blob links and stored blobs that nothing
	// references are kept (see the package documentation). Zero keeps
	// nothing for its age: only for tests and registries nobody pushes to.
	Grace time.Duration
	// TombstoneTTL is how long a manifest referencing collected content
	// is refused, so the longest a client may take between checking a
	// blob and pushing the manifest; zero means Grace.
	TombstoneTTL time.Duration
	// Policy holds the retention rules; nil keeps every tag and untagged
	// manifest.
	Policy *Policy
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log receives what is removed (debug) and failures (warn); nil
	// discards.
	Log *slog.Logger
	// Metrics, when set, hears of every collection that is not a dry run.
	Metrics Metrics
	// Audit, when set, records every removal.
	Audit *audit.Logger
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) log() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Item is one thing a collection removed (or, in a dry run, would remove).
type Item struct {
	// Repository is empty for blob bytes, which belong to no repository.
	Repository string
	// Ref is the tag or digest.
	Ref string
	// Size in bytes; zero for tags.
	Size int64
}

// Report is what a collection removed, or would remove in a dry run.
type Report struct {
	DryRun            bool
	Started, Finished time.Time
	// Repositories is how many repositories were examined.
	Repositories int
	Tags         []Item // removed by retention
	Manifests    []Item
	Links        []Item // blob links removed from repositories
	Blobs        []Item // blob bytes deleted from storage
	// Errors are the failures that did not stop the collection (one
	// repository, one blob); the collection is then not recorded as
	// complete.
	Errors []error
}

// BytesFreed is the size of the blob bytes deleted from storage.
func (r *Report) BytesFreed() int64 {
	var n int64
	for _, b := range r.Blobs {
		n += b.Size
	}
	return n
}

// Run collects garbage once: it takes the collection lock (ErrLocked if
// another collection holds it), removes what the package documentation
// says may go, and records the collection as complete unless it is a dry
// run or something failed. The report lists what was removed; a non-nil
// error with a report means the collection stopped or failed in part.
func Run(ctx context.Context, meta metadata.Store, blobs *storage.Store, opts Options) (*Report, error) {
	if opts.Grace < 0 || opts.TombstoneTTL < 0 {
		return nil, fmt.Errorf("gc: negative grace or tombstone period")
	}
	release, err := meta.LockGC(ctx)
	if err != nil {
		err = fmt.Errorf("gc: %w", err)
		if !opts.DryRun {
			observe(ctx, &opts, nil, err)
		}
		return nil, err
	}
	defer release()
	rep, err := collect(ctx, meta, blobs, opts)
	observe(ctx, &opts, rep, err)
	return rep, err
}

// collect is Run without the lock.
func collect(ctx context.Context, meta metadata.Store, blobs *storage.Store, opts Options) (*Report, error) {
	log := opts.log()
	now := opts.now()
	rep := &Report{DryRun: opts.DryRun, Started: now}

	// Phase 1: repositories. linked collects the blobs some repository
	// still links after its collection, so phase 2 asks the database
	// only about the others.
	linked := map[digest.Digest]bool{}
	last := ""
	for {
		names, err := meta.Repositories(ctx, last, 1000)
		if err != nil {
			return rep, fmt.Errorf("gc: list repositories: %w", err)
		}
		for _, name := range names {
			if err := collectRepository(ctx, meta, name, planner{now: now, grace: opts.Grace, rule: opts.Policy.rule(name)}, opts.DryRun, rep, linked); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				log.Warn("gc: repository", "repo", name, "err", err)
				rep.Errors = append(rep.Errors, err)
			}
		}
		if len(names) < 1000 {
			break
		}
		last = names[len(names)-1]
	}

	// Phase 2: blob bytes. The walk only gathers candidates: deleting
	// while a driver walks its tree is not something every driver
	// supports.
	cutoff := now.Add(-opts.Grace)
	var candidates []storage.BlobInfo
	err := blobs.WalkBlobs(ctx, func(b storage.BlobInfo) error {
		if !linked[b.Digest] && b.ModTime.Before(cutoff) {
			candidates = append(candidates, b)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: walk blobs: %w", err)
	}
	for _, b := range candidates {
		item := Item{Ref: b.Digest.String(), Size: b.Size}
		if opts.DryRun {
			rep.Blobs = append(rep.Blobs, item)
			continue
		}
		deleted, err := meta.DeleteUnlinkedBlob(ctx, b.Digest, func(ctx context.Context) error {
			err := blobs.Delete(ctx, b.Digest)
			if errors.Is(err, storage.ErrBlobUnknown) {
				return nil // deleted already (a retried transaction)
			}
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			log.Warn("gc: delete blob", "digest", b.Digest, "err", err)
			rep.Errors = append(rep.Errors, err)
			continue
		}
		if deleted {
			log.Debug("gc: deleted blob", "digest", b.Digest, "bytes", b.Size)
			rep.Blobs = append(rep.Blobs, item)
		}
	}

	// Phase 3: tombstones.
	if !opts.DryRun {
		ttl := opts.TombstoneTTL
		if ttl == 0 {
			ttl = opts.Grace
		}
		if _, err := meta.PurgeTombstones(ctx, now.Add(-ttl)); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
	}

	rep.Finished = opts.now()
	if !opts.DryRun && len(rep.Errors) == 0 {
		if err := meta.SetLastGC(ctx, rep.Finished); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
	}
	if len(rep.Errors) > 0 {
		return rep, fmt.Errorf("gc: %d failures, the first: %w", len(rep.Errors), rep.Errors[0])
	}
	return rep, nil
}

// collectRepository plans repository name on a snapshot and, unless it is
// a dry run or the plan is empty, plans again and removes in one
// transaction. It adds what was removed to rep and the blobs the
// repository still links to linked.
func collectRepository(ctx context.Context, meta metadata.Store, name string, p planner, dryRun bool, rep *Report, linked map[digest.Digest]bool) error {
	var seen *metadata.RepositoryState
	plan := func(st *metadata.RepositoryState) (*metadata.Collection, error) {
		seen = st
		return p.plan(st), nil
	}
	c, err := meta.CollectRepository(ctx, name, plan, false)
	if err == nil && !dryRun && !c.Empty() {
		c, err = meta.CollectRepository(ctx, name, plan, true)
	}
	if errors.Is(err, metadata.ErrRepositoryNotFound) {
		return nil // deleted since it was listed
	}
	if err != nil {
		return err
	}
	rep.Repositories++

	sizes := map[digest.Digest]int64{}
	for _, m := range seen.Manifests {
		sizes[m.Digest] = m.Size
	}
	for _, t := range c.Tags {
		rep.Tags = append(rep.Tags, Item{Repository: name, Ref: t})
	}
	for _, d := range c.Manifests {
		rep.Manifests = append(rep.Manifests, Item{Repository: name, Ref: d.String(), Size: sizes[d]})
	}
	removed := make(map[digest.Digest]bool, len(c.Blobs))
	for _, d := range c.Blobs {
		removed[d] = true
	}
	for _, b := range seen.Blobs {
		if removed[b.Digest] {
			rep.Links = append(rep.Links, Item{Repository: name, Ref: b.Digest.String(), Size: b.Size})
		} else {
			linked[b.Digest] = true
		}
	}
	return nil
}
