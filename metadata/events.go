package metadata

import (
	"context"
	"time"
)

// Event is a notification waiting to be delivered to one endpoint. The
// store keeps its payload as it is; what it says is the business of the
// package that builds it (notifications).
type Event struct {
	// Endpoint names the endpoint the event goes to.
	Endpoint string
	// Payload is the encoded event.
	Payload []byte
}

// QueuedEvent is an Event claimed for delivery.
type QueuedEvent struct {
	Event
	// ID orders events: a later event has a greater ID.
	ID int64
	// Attempts counts the claims of the event, this one included.
	Attempts int
	// CreatedAt is when the event was queued.
	CreatedAt time.Time
}

type eventsKey struct{}

// WithEvents returns ctx carrying events. A write of the store given that
// ctx (PutManifest, DeleteManifest, DeleteTag, LinkBlob, DeleteBlob) queues
// them in the transaction of its change, so that an event is queued if and
// only if the change it reports is committed: a crash can lose neither
// half. Events are added to those ctx already carries.
func WithEvents(ctx context.Context, events ...Event) context.Context {
	if len(events) == 0 {
		return ctx
	}
	if prev := EventsFrom(ctx); len(prev) > 0 {
		events = append(append([]Event(nil), prev...), events...)
	}
	return context.WithValue(ctx, eventsKey{}, events)
}

// EventsFrom returns the events ctx carries (see WithEvents).
func EventsFrom(ctx context.Context) []Event {
	evs, _ := ctx.Value(eventsKey{}).([]Event)
	return evs
}

// EventQueue is the optional capability of a Store to keep notifications
// for delivery: a store that has it queues the events a write's context
// carries (WithEvents) in the write's transaction, and hands them out to
// the processes that deliver them. Claims are leases: an event claimed by
// one process (of any replica sharing the database) is not handed to
// another until the lease ends, so each event is sent by one process at a
// time, and an event whose process died is claimed again once its lease
// ran out.
//
// The suite in metadata/metadatatest checks the stores that have it.
type EventQueue interface {
	// EnqueueEvents queues events on their own, for what changes nothing
	// stored (pulls).
	EnqueueEvents(ctx context.Context, events ...Event) error
	// ClaimEvents leases up to n events of endpoint to owner for lease:
	// the oldest that are due (their retry time has come) and not leased
	// to anyone, in ID order.
	ClaimEvents(ctx context.Context, endpoint, owner string, n int, lease time.Duration) ([]QueuedEvent, error)
	// CompleteEvents removes delivered events, those of ids still leased
	// to owner.
	CompleteEvents(ctx context.Context, owner string, ids []int64) error
	// RetryEvents gives back the lease of owner's events ids and makes
	// them due again after the given delay, recording why they failed.
	RetryEvents(ctx context.Context, owner string, ids []int64, after time.Duration, reason string) error
	// ReleaseEvents gives back every lease held by owner, due at once: a
	// process stopping hands its events to the others.
	ReleaseEvents(ctx context.Context, owner string) error
	// PendingEvents counts the queued events of each endpoint.
	PendingEvents(ctx context.Context) (map[string]int64, error)
	// DropEvents removes every queued event of endpoint and returns how
	// many there were.
	DropEvents(ctx context.Context, endpoint string) (int64, error)
	// TrimEvents removes the oldest queued events of endpoint beyond its
	// newest keep, and returns how many it removed: the bound on the queue
	// of an endpoint that keeps failing.
	TrimEvents(ctx context.Context, endpoint string, keep int64) (int64, error)
}

// Stats is what the store holds, for monitoring.
type Stats struct {
	Repositories int64
	// Manifests counts manifests per repository: one pushed to two
	// repositories counts twice.
	Manifests int64
	Tags      int64
	// Blobs counts the distinct blobs some repository links, and
	// BlobBytes their sizes: each blob once, as storage keeps it once.
	Blobs     int64
	BlobBytes int64
}

// Stater is the optional capability of a Store to count what it holds in
// one query, without walking storage.
type Stater interface {
	Stats(ctx context.Context) (Stats, error)
}
