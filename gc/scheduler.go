package gc

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

// Scheduler runs collections every interval. The interval counts from the
// last complete collection recorded in the database, by this process or
// any other, so replicas share one schedule and a restart does not reset
// it; each wait is shortened or lengthened at random by up to a tenth, so
// replicas do not all wake at once. When another collection holds the
// lock the turn is skipped, and the scheduler looks again after a tenth
// of the interval.
type Scheduler struct {
	meta     metadata.Store
	blobs    *storage.Store
	interval time.Duration
	opts     Options
	log      *slog.Logger

	// after is time.After; tests replace it.
	after func(time.Duration) <-chan time.Time
	// jitter returns a factor in [0.9, 1.1); tests replace it.
	jitter func() float64

	mu     sync.Mutex
	recent []RunSummary // newest first, at most keepRuns
}

// keepRuns is how many run summaries a Scheduler keeps.
const keepRuns = 20

// RunSummary is what one scheduled collection did, without the lists of
// what it removed (a large collection's lists are long): what pages show
// of the registry's collections.
type RunSummary struct {
	Started, Finished time.Time
	// Repositories is how many repositories were examined.
	Repositories int
	// Tags (by retention), Manifests, Links and Blobs count what was
	// removed; BytesFreed is the size of the blob bytes deleted.
	Tags, Manifests, Links, Blobs int
	BytesFreed                    int64
	// Failures counts what failed without stopping the collection; Err
	// is what stopped it, if anything did.
	Failures int
	Err      string
}

// Summarize returns the summary of a report.
func (r *Report) Summarize() RunSummary {
	return RunSummary{
		Started: r.Started, Finished: r.Finished, Repositories: r.Repositories,
		Tags: len(r.Tags), Manifests: len(r.Manifests), Links: len(r.Links), Blobs: len(r.Blobs),
		BytesFreed: r.BytesFreed(), Failures: len(r.Errors),
	}
}

// Recent returns the summaries of the last collections this scheduler
// ran (skipped turns aside), newest first. They are kept in memory: a
// restart forgets them (the database keeps the time of the last complete
// one, metadata.Collector.LastGC).
func (s *Scheduler) Recent() []RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recent)
}

func (s *Scheduler) remember(r RunSummary) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recent = slices.Insert(s.recent, 0, r)
	if len(s.recent) > keepRuns {
		s.recent = s.recent[:keepRuns]
	}
}

// NewScheduler returns a scheduler of collections with opts every interval
// (which must be positive). opts.Log, when set, also receives a line per
// collection.
func NewScheduler(meta metadata.Store, blobs *storage.Store, interval time.Duration, opts Options) *Scheduler {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Scheduler{
		meta: meta, blobs: blobs, interval: interval, opts: opts, log: log,
		after:  time.After,
		jitter: func() float64 { return 0.9 + 0.2*rand.Float64() },
	}
}

// firstDelay bounds the wait before the first collection of a database
// that never had one: there is little to collect, and waiting a whole
// interval would let restarts postpone it forever.
const firstDelay = 15 * time.Minute

// Run collects on schedule until ctx ends; it returns ctx's error.
func (s *Scheduler) Run(ctx context.Context) error {
	retry := false
	for {
		wait := s.wait(ctx, retry)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.after(wait):
		}
		retry = !s.runOnce(ctx)
	}
}

// wait returns how long to wait before the next turn: until the last
// complete collection is an interval old, or, after a skipped or failed
// turn, a tenth of the interval, jittered either way.
func (s *Scheduler) wait(ctx context.Context, retry bool) time.Duration {
	if retry {
		return time.Duration(float64(s.interval/10) * s.jitter())
	}
	last, err := s.meta.LastGC(ctx)
	if err != nil {
		s.log.Warn("gc: read the time of the last collection", "err", err)
		return time.Duration(float64(s.interval/10) * s.jitter())
	}
	if last.IsZero() {
		// Anywhere in [0, firstDelay), so replicas starting together
		// spread out.
		return time.Duration(float64(min(s.interval, firstDelay)) * (s.jitter() - 0.9) / 0.2)
	}
	next := last.Add(time.Duration(float64(s.interval) * s.jitter()))
	return max(0, next.Sub(s.opts.now()))
}

// runOnce runs one collection and logs its outcome. It reports whether
// the collection ran to completion.
func (s *Scheduler) runOnce(ctx context.Context) bool {
	rep, err := Run(ctx, s.meta, s.blobs, s.opts)
	switch {
	case errors.Is(err, ErrLocked):
		s.log.Info("gc: skipped, another collection is running")
		return false
	case ctx.Err() != nil:
		return false
	case err != nil && rep == nil:
		s.log.Error("gc: collection failed", "err", err)
		now := s.opts.now()
		s.remember(RunSummary{Started: now, Finished: now, Err: err.Error()})
		return false
	}
	sum := rep.Summarize()
	if err != nil {
		sum.Err = err.Error()
	}
	s.remember(sum)
	attrs := []any{
		"blobs", len(rep.Blobs), "bytes", rep.BytesFreed(), "manifests", len(rep.Manifests),
		"links", len(rep.Links), "tags", len(rep.Tags), "repositories", rep.Repositories,
		"duration", rep.Finished.Sub(rep.Started).Round(time.Millisecond),
	}
	if err != nil {
		s.log.Error("gc: collection finished with failures", append(attrs, "err", err)...)
		return false
	}
	s.log.Info("gc: "+rep.Summary(), attrs...)
	return true
}
