package registry

import (
	"context"
	"errors"
	"net/http"

	"github.com/berthhq/berth/internal/audit"
)

// prepare returns the context of the write that does acts: with the
// events the notifier queues in the write's transaction.
func (reg *Registry) prepare(r *http.Request, acts ...Action) context.Context {
	ctx := r.Context()
	if reg.opts.Notifier == nil {
		return ctx
	}
	for _, a := range acts {
		ctx = reg.opts.Notifier.Prepare(ctx, r, a)
	}
	return ctx
}

// pulled reports content a GET served.
func (reg *Registry) pulled(r *http.Request, a Action) {
	if reg.opts.Notifier != nil && r.Method == http.MethodGet {
		a.Kind = ActionPull
		reg.opts.Notifier.Pulled(r, a)
	}
}

// audit records a write in the audit log with its outcome.
func (reg *Registry) audit(r *http.Request, a Action, err error) {
	if reg.opts.Audit == nil {
		return
	}
	e := audit.Entry{
		Action:     a.Kind,
		Outcome:    audit.OK,
		User:       User(r.Context()),
		Remote:     r.RemoteAddr,
		Repository: a.Repository,
		Digest:     a.Digest.String(),
		Tag:        a.Tag,
		From:       a.From,
		Request:    RequestID(r.Context()),
	}
	if err != nil {
		e.Outcome = audit.Failed
		var we *Error
		if errors.As(err, &we) {
			e.Reason = we.Code.Name
		} else {
			e.Reason = "internal error"
		}
	}
	reg.opts.Audit.Record(r.Context(), e)
}
