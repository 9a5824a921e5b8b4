package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/berthhq/berth/metadata"
)

var (
	_ metadata.EventQueue = (*Store)(nil)
	_ metadata.Stater     = (*Store)(nil)
)

// SQL of the notification queue (schema version 3).
const (
	sqlInsertEvent = `INSERT INTO notification_queue (endpoint, payload) VALUES ($1, $2)`

	// Rows another replica is claiming at this moment are skipped, not
	// waited for: each claim takes rows no other claim holds, and a claim
	// never blocks on one.
	sqlClaimEvents = `WITH due AS (
	SELECT id FROM notification_queue
	WHERE endpoint = $1 AND next_at <= statement_timestamp()
		AND (lease_until IS NULL OR lease_until <= statement_timestamp())
	ORDER BY id
	LIMIT $3
	FOR UPDATE SKIP LOCKED)
UPDATE notification_queue AS q
SET lease_owner = $2, lease_until = statement_timestamp() + $4::float8 * interval '1 millisecond', attempts = q.attempts + 1
FROM due
WHERE q.id = due.id
RETURNING q.id, q.payload, q.attempts, q.created_at`

	sqlCompleteEvents = `DELETE FROM notification_queue WHERE lease_owner = $1 AND id = ANY($2::bigint[])`

	sqlRetryEvents = `UPDATE notification_queue
SET lease_owner = NULL, lease_until = NULL,
	next_at = statement_timestamp() + $3::float8 * interval '1 millisecond', last_error = $4
WHERE lease_owner = $1 AND id = ANY($2::bigint[])`

	sqlReleaseEvents = `UPDATE notification_queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1`

	sqlPendingEvents = `SELECT endpoint, count(*) FROM notification_queue GROUP BY endpoint`

	sqlDropEvents = `DELETE FROM notification_queue WHERE endpoint = $1`

	// sqlTrimEvents deletes the endpoint's events from its (keep+1)-th
	// newest down, walking the (endpoint, id) index.
	sqlTrimEvents = `DELETE FROM notification_queue WHERE endpoint = $1 AND id <= (
	SELECT id FROM notification_queue WHERE endpoint = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`

	sqlStats = `SELECT
	(SELECT count(*) FROM repositories),
	(SELECT count(*) FROM manifests),
	(SELECT count(*) FROM tags),
	(SELECT count(*) FROM blobs),
	(SELECT coalesce(sum(size), 0)::bigint FROM blobs)`
)

// queueEvents adds the inserts of the events ctx carries
// (metadata.WithEvents) to b, a batch of the transaction of the change
// they report.
func queueEvents(ctx context.Context, b *pgx.Batch) {
	for _, e := range metadata.EventsFrom(ctx) {
		b.Queue(sqlInsertEvent, e.Endpoint, e.Payload)
	}
}

// execEvents inserts the events ctx carries in tx.
func execEvents(ctx context.Context, tx pgx.Tx) error {
	events := metadata.EventsFrom(ctx)
	if len(events) == 0 {
		return nil
	}
	var b pgx.Batch
	queueEvents(ctx, &b)
	return tx.SendBatch(ctx, &b).Close()
}

// EnqueueEvents queues events on their own, in one transaction.
func (s *Store) EnqueueEvents(ctx context.Context, events ...metadata.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		return execEvents(metadata.WithEvents(ctx, events...), tx)
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: enqueue events: %w", err)
	}
	return nil
}

// ClaimEvents leases up to n due events of endpoint to owner.
func (s *Store) ClaimEvents(ctx context.Context, endpoint, owner string, n int, lease time.Duration) ([]metadata.QueuedEvent, error) {
	var out []metadata.QueuedEvent
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sqlClaimEvents, endpoint, owner, max(n, 1), lease.Milliseconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e metadata.QueuedEvent
			var attempts int32
			if err := rows.Scan(&e.ID, &e.Payload, &attempts, &e.CreatedAt); err != nil {
				return err
			}
			e.Endpoint = endpoint
			e.Attempts = int(attempts)
			e.CreatedAt = e.CreatedAt.UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: claim events of %s: %w", endpoint, err)
	}
	slices.SortFunc(out, func(a, b metadata.QueuedEvent) int { return int(a.ID - b.ID) })
	return out, nil
}

// exec runs one statement, retried on transient failures.
func (s *Store) exec(ctx context.Context, what, query string, args ...any) (int64, error) {
	var n int64
	err := s.retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, query, args...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/postgres: %s: %w", what, err)
	}
	return n, nil
}

// CompleteEvents removes delivered events still leased to owner.
func (s *Store) CompleteEvents(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.exec(ctx, "complete events", sqlCompleteEvents, owner, ids)
	return err
}

// RetryEvents gives back owner's leases of ids, due again after the delay.
func (s *Store) RetryEvents(ctx context.Context, owner string, ids []int64, after time.Duration, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.exec(ctx, "retry events", sqlRetryEvents, owner, ids, after.Milliseconds(), reason)
	return err
}

// ReleaseEvents gives back every lease of owner.
func (s *Store) ReleaseEvents(ctx context.Context, owner string) error {
	_, err := s.exec(ctx, "release events", sqlReleaseEvents, owner)
	return err
}

// PendingEvents counts the queued events of each endpoint.
func (s *Store) PendingEvents(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.retry(ctx, func() error {
		clear(out)
		rows, err := s.pool.Query(ctx, sqlPendingEvents)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return err
			}
			out[name] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: pending events: %w", err)
	}
	return out, nil
}

// DropEvents removes every queued event of endpoint.
func (s *Store) DropEvents(ctx context.Context, endpoint string) (int64, error) {
	return s.exec(ctx, "drop events of "+endpoint, sqlDropEvents, endpoint)
}

// TrimEvents removes the oldest events of endpoint beyond the newest keep.
func (s *Store) TrimEvents(ctx context.Context, endpoint string, keep int64) (int64, error) {
	return s.exec(ctx, "trim events of "+endpoint, sqlTrimEvents, endpoint, max(keep, 0))
}

// Stats counts what the database holds in one statement. The counts scan
// each table (PostgreSQL keeps no exact row count), which a scrape every
// few seconds of a registry with a million blobs affords; the metrics
// package keeps the answer for a while.
func (s *Store) Stats(ctx context.Context) (metadata.Stats, error) {
	var st metadata.Stats
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, sqlStats).Scan(&st.Repositories, &st.Manifests, &st.Tags, &st.Blobs, &st.BlobBytes)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("no row: %w", err)
	}
	if err != nil {
		return st, fmt.Errorf("metadata/postgres: stats: %w", err)
	}
	return st, nil
}
