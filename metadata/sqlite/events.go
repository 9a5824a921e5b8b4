package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/metadata"
)

var (
	_ metadata.EventQueue = (*Store)(nil)
	_ metadata.Stater     = (*Store)(nil)
)

// SQL of the notification queue (schema version 3). A claim is one
// statement in the write transaction, which holds the database's only
// write lock: two claims can never take the same row.
const (
	sqlInsertEvent = `INSERT INTO notification_queue (endpoint, payload, created_at, next_at) VALUES (?1, ?2, ?3, ?3)`

	sqlClaimEvents = `UPDATE notification_queue
SET lease_owner = ?2, lease_until = ?3, attempts = attempts + 1
WHERE id IN (
	SELECT id FROM notification_queue
	WHERE endpoint = ?1 AND next_at <= ?4 AND lease_until <= ?4
	ORDER BY id
	LIMIT ?5)
RETURNING id, payload, attempts, created_at`

	sqlPendingEvents = `SELECT endpoint, count(*) FROM notification_queue GROUP BY endpoint`

	// sqlTrimEvents deletes the endpoint's events from its (keep+1)-th
	// newest down, walking the (endpoint, id) index.
	sqlTrimEvents = `DELETE FROM notification_queue WHERE endpoint = ?1 AND id <= (
	SELECT id FROM notification_queue WHERE endpoint = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`

	sqlStats = `SELECT
	(SELECT count(*) FROM repositories),
	(SELECT count(*) FROM manifests),
	(SELECT count(*) FROM tags),
	(SELECT count(*) FROM blobs),
	(SELECT coalesce(sum(size), 0) FROM blobs)`
)

// queueEvents inserts the events ctx carries (metadata.WithEvents) in tx,
// the transaction of the change they report.
func (s *Store) queueEvents(ctx context.Context, tx *sql.Tx) error {
	return insertEvents(ctx, tx, metadata.EventsFrom(ctx))
}

func insertEvents(ctx context.Context, tx *sql.Tx, events []metadata.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	for _, e := range events {
		if _, err := tx.ExecContext(ctx, sqlInsertEvent, e.Endpoint, e.Payload, now); err != nil {
			return fmt.Errorf("queue event: %w", err)
		}
	}
	return nil
}

// EnqueueEvents queues events on their own, in one transaction.
func (s *Store) EnqueueEvents(ctx context.Context, events ...metadata.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error { return insertEvents(ctx, tx, events) })
	if err != nil {
		return fmt.Errorf("metadata/sqlite: enqueue events: %w", err)
	}
	return nil
}

// ClaimEvents leases up to n due events of endpoint to owner.
func (s *Store) ClaimEvents(ctx context.Context, endpoint, owner string, n int, lease time.Duration) ([]metadata.QueuedEvent, error) {
	var out []metadata.QueuedEvent
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		rows, err := tx.QueryContext(ctx, sqlClaimEvents, endpoint, owner, now.Add(lease).UnixNano(), now.UnixNano(), max(n, 1))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e metadata.QueuedEvent
			var created int64
			if err := rows.Scan(&e.ID, &e.Payload, &e.Attempts, &created); err != nil {
				return err
			}
			e.Endpoint = endpoint
			e.CreatedAt = time.Unix(0, created).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: claim events of %s: %w", endpoint, err)
	}
	slices.SortFunc(out, func(a, b metadata.QueuedEvent) int { return int(a.ID - b.ID) })
	return out, nil
}

// idList formats ids for an IN list: integers only, so no quoting is
// needed, and one statement serves any number of them.
func idList(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}

// CompleteEvents removes delivered events still leased to owner.
func (s *Store) CompleteEvents(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM notification_queue WHERE lease_owner = ?1 AND id IN (`+idList(ids)+`)`, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: complete events: %w", err)
	}
	return nil
}

// RetryEvents gives back owner's leases of ids, due again after the delay.
func (s *Store) RetryEvents(ctx context.Context, owner string, ids []int64, after time.Duration, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE notification_queue
SET lease_owner = NULL, lease_until = 0, next_at = ?2, last_error = ?3
WHERE lease_owner = ?1 AND id IN (`+idList(ids)+`)`, owner, time.Now().Add(after).UnixNano(), reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: retry events: %w", err)
	}
	return nil
}

// ReleaseEvents gives back every lease of owner.
func (s *Store) ReleaseEvents(ctx context.Context, owner string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE notification_queue SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?1`, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: release events: %w", err)
	}
	return nil
}

// PendingEvents counts the queued events of each endpoint.
func (s *Store) PendingEvents(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, sqlPendingEvents)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: pending events: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("metadata/sqlite: pending events: %w", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata/sqlite: pending events: %w", err)
	}
	return out, nil
}

// DropEvents removes every queued event of endpoint.
func (s *Store) DropEvents(ctx context.Context, endpoint string) (int64, error) {
	return s.deleteEvents(ctx, "drop events of "+endpoint, `DELETE FROM notification_queue WHERE endpoint = ?1`, endpoint)
}

// TrimEvents removes the oldest events of endpoint beyond the newest keep.
func (s *Store) TrimEvents(ctx context.Context, endpoint string, keep int64) (int64, error) {
	return s.deleteEvents(ctx, "trim events of "+endpoint, sqlTrimEvents, endpoint, max(keep, 0))
}

// deleteEvents runs a DELETE of queued events and returns how many went.
func (s *Store) deleteEvents(ctx context.Context, what, query string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/sqlite: %s: %w", what, err)
	}
	return n, nil
}

// Stats counts what the database holds, in one statement on a read
// connection: each count is a scan of a table's smallest index, which is
// quick enough for a scrape every few seconds of a registry with a
// million blobs, and blocks no writer.
func (s *Store) Stats(ctx context.Context) (metadata.Stats, error) {
	var st metadata.Stats
	err := s.rdb.QueryRowContext(ctx, sqlStats).Scan(&st.Repositories, &st.Manifests, &st.Tags, &st.Blobs, &st.BlobBytes)
	if err != nil {
		return st, fmt.Errorf("metadata/sqlite: stats: %w", err)
	}
	return st, nil
}
