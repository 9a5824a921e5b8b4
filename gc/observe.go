package gc

import (
	"context"

	"github.com/berthhq/berth/internal/audit"
)

// Metrics receives the outcome of every collection (not of dry runs);
// internal/metrics implements it. rep is nil when the collection could
// not start (another holds the lock, or the options are wrong).
type Metrics interface {
	Collected(rep *Report, err error)
}

// observe reports a collection to opts' metrics and audit log: one audit
// line per removal, action gc-tag, gc-manifest, gc-link or gc-blob.
func observe(ctx context.Context, opts *Options, rep *Report, err error) {
	if rep != nil && rep.DryRun {
		return
	}
	if opts.Metrics != nil {
		opts.Metrics.Collected(rep, err)
	}
	if opts.Audit == nil || rep == nil {
		return
	}
	for _, group := range rep.removed() {
		for _, it := range group.items {
			e := audit.Entry{Action: "gc-" + group.kind, Outcome: audit.OK, User: "gc", Repository: it.Repository, Digest: it.Ref}
			if group.kind == "tag" {
				e.Digest, e.Tag = "", it.Ref
			}
			opts.Audit.Record(ctx, e)
		}
	}
}
