// Package audit writes berth's audit log: one structured line per
// authentication decision and per change to stored content (push, tag,
// delete, mount, garbage collection removal), saying who did what to which
// repository and digest, from where, and with what outcome.
//
// Audit lines go to berth's log (stderr, text or JSON as log.format says)
// with the message "audit" and the attribute audit=true, at info level, so
// a log pipeline can route them apart from the access log:
//
//	level=INFO msg=audit audit=true action=push outcome=ok user=alice remote=10.0.0.7:51234 repository=team/app digest=sha256:… tag=v1 request=3f…
//
// The attributes are, in this order, those that apply: action, outcome
// (ok, failed, denied), user, remote, repository, digest, tag, from (the
// source of a mount), method (of a login: basic, token, refresh,
// certificate), request (the request id), reason (why it failed). Secrets
// (passwords, tokens) are never part of a line.
package audit

import (
	"context"
	"log/slog"
)

// Outcomes of an audited action.
const (
	OK     = "ok"
	Failed = "failed"
	Denied = "denied"
)

// Entry is one audited decision or change.
type Entry struct {
	Action     string
	Outcome    string
	User       string
	Remote     string
	Repository string
	Digest     string
	Tag        string
	From       string
	Method     string
	Request    string
	Reason     string
}

// Logger writes audit lines. A nil *Logger writes nothing, so packages
// can hold one unconditionally.
type Logger struct {
	log *slog.Logger
}

// New returns a Logger writing to log, or nil when log is nil.
func New(log *slog.Logger) *Logger {
	if log == nil {
		return nil
	}
	return &Logger{log: log}
}

// Record writes e.
func (l *Logger) Record(ctx context.Context, e Entry) {
	if l == nil || !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.Bool("audit", true), slog.String("action", e.Action), slog.String("outcome", e.Outcome))
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("user", e.User)
	add("remote", e.Remote)
	add("repository", e.Repository)
	add("digest", e.Digest)
	add("tag", e.Tag)
	add("from", e.From)
	add("method", e.Method)
	add("request", e.Request)
	add("reason", e.Reason)
	l.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}
