package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// Garbage collection. A collection of a repository locks the repository
// row FOR UPDATE, as DeleteManifest does: it waits for the pushes into the
// repository in flight (they hold the row FOR KEY SHARE) and keeps new
// ones waiting until it commits, so the state it plans on is the state it
// changes, and READ COMMITTED statements after the lock see every push
// that committed before. The blob rows whose last link it may drop are
// then locked FOR UPDATE in digest order, as DeleteBlob does, so the drop
// sees links committed into other repositories meanwhile.
//
// DeleteUnlinkedBlob holds the blob's row (creating a placeholder if there
// is none) FOR UPDATE while it deletes the bytes; LinkBlob inserting or
// updating that row waits for it, and then finds the row gone and checks
// the bytes.
//
// The collection lock is a session advisory lock held on one pooled
// connection for the collection's duration; the server releases it if the
// connection drops. Behind a pooler in transaction mode (PgBouncer)
// session locks do not work: give berth a direct connection.

// gcLock is the advisory lock key of LockGC (the bytes of "berth-gc").
const gcLock int64 = 0x62657274682d6763

// SQL of the collection statements.
const (
	sqlCollectLockRepo = `SELECT id FROM repositories WHERE name = $1 FOR UPDATE`
	sqlCollectRepoID   = `SELECT id FROM repositories WHERE name = $1`

	// Tags come with their manifest's row id, which the manifests'
	// state maps to a digest: a join would read the manifests twice.
	sqlStateTags = `SELECT name, manifest_id, updated_at
FROM tags
WHERE repo_id = $1
ORDER BY name`

	sqlStateManifests = `SELECT id, digest, media_type, size, subject, created_at, blob_list, manifest_list
FROM manifests
WHERE repo_id = $1
ORDER BY digest`

	sqlStateBlobs = `SELECT rb.digest, b.size, rb.linked_at
FROM repo_blobs AS rb JOIN blobs AS b ON b.digest = rb.digest
WHERE rb.repo_id = $1
ORDER BY rb.digest`

	sqlCollectTags      = `DELETE FROM tags WHERE repo_id = $1 AND name = ANY($2::text[])`
	sqlCollectManifests = `DELETE FROM manifests WHERE repo_id = $1 AND digest = ANY($2::text[])`
	sqlLockBlobs        = `SELECT digest FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE`
	sqlCollectLinks     = `DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = ANY($2::text[])`
	sqlDropBlobs        = `DELETE FROM blobs AS b
WHERE b.digest = ANY($1::text[])
	AND NOT EXISTS (SELECT 1 FROM repo_blobs AS rb WHERE rb.digest = b.digest)`
	sqlTombstones = `INSERT INTO gc_tombstones (repo, kind, digest, removed_at)
SELECT $1, $2, u.digest, statement_timestamp() FROM unnest($3::text[]) AS u (digest)
ON CONFLICT (repo, kind, digest) DO UPDATE SET removed_at = excluded.removed_at`

	sqlPlaceholderBlob = `INSERT INTO blobs (digest, size) VALUES ($1, 0) ON CONFLICT DO NOTHING`
	sqlBlobLinked      = `SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1)`
	sqlDeleteBlobRow   = `DELETE FROM blobs WHERE digest = $1`

	sqlPurgeTombstones = `DELETE FROM gc_tombstones WHERE removed_at < $1`

	sqlLastGC    = `SELECT finished_at FROM gc_runs WHERE id = 1`
	sqlSetLastGC = `INSERT INTO gc_runs (id, finished_at) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at`
)

// errRollback ends a write transaction that found nothing to do but must
// not commit what it wrote to find that out.
var errRollback = errors.New("rollback")

// CollectRepository plans a collection of repo and, with apply, carries it
// out in the same transaction, holding the repository row. Without apply
// it reads one REPEATABLE READ snapshot and locks nothing.
func (s *Store) CollectRepository(ctx context.Context, repo string, plan metadata.Planner, apply bool) (*metadata.Collection, error) {
	var c *metadata.Collection
	var err error
	if apply {
		err = s.write(ctx, func(tx pgx.Tx) error {
			var id int64
			var err error
			c, id, err = planRepository(ctx, tx, sqlCollectLockRepo, repo, plan)
			if err != nil || c.Empty() {
				return err
			}
			if _, err := tx.Exec(ctx, sqlNotify, changesChannel, repo); err != nil {
				return err
			}
			return applyCollection(ctx, tx, repo, id, c)
		})
	} else {
		err = s.retry(ctx, func() error {
			return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				var err error
				c, _, err = planRepository(ctx, tx, sqlCollectRepoID, repo, plan)
				return err
			})
		})
	}
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: collect %s: %w", repo, err)
	}
	return c, nil
}

// planRepository finds repo with idQuery (which may lock its row), loads
// its state and returns the plan for it and the repository's id.
func planRepository(ctx context.Context, tx pgx.Tx, idQuery, repo string, plan metadata.Planner) (*metadata.Collection, int64, error) {
	var id int64
	err := tx.QueryRow(ctx, idQuery, repo).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, metadata.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	st := &metadata.RepositoryState{Name: repo}

	byID := map[int64]digest.Digest{}
	rows, _ := tx.Query(ctx, sqlStateManifests, id)
	st.Manifests, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (metadata.ManifestState, error) {
		var (
			m                      metadata.ManifestState
			mid                    int64
			d                      string
			subject                pgtype.Text
			blobList, manifestList []string
		)
		err := row.Scan(&mid, &d, &m.MediaType, &m.Size, &subject, &m.CreatedAt, &blobList, &manifestList)
		m.Digest, m.Subject = digest.Digest(d), digest.Digest(subject.String)
		m.CreatedAt = m.CreatedAt.UTC()
		m.Blobs, m.Manifests = digests(blobList), digests(manifestList)
		byID[mid] = m.Digest
		return m, err
	})
	if err != nil {
		return nil, 0, err
	}

	rows, _ = tx.Query(ctx, sqlStateTags, id)
	st.Tags, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (metadata.TagState, error) {
		var t metadata.TagState
		var mid int64
		err := row.Scan(&t.Name, &mid, &t.UpdatedAt)
		t.Manifest, t.UpdatedAt = byID[mid], t.UpdatedAt.UTC()
		return t, err
	})
	if err != nil {
		return nil, 0, err
	}

	rows, _ = tx.Query(ctx, sqlStateBlobs, id)
	st.Blobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (metadata.BlobLink, error) {
		var b metadata.BlobLink
		var d string
		err := row.Scan(&d, &b.Size, &b.LinkedAt)
		b.Digest, b.LinkedAt = digest.Digest(d), b.LinkedAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, 0, err
	}

	c, err := plan(st)
	if err != nil {
		return nil, 0, err
	}
	if c == nil {
		c = &metadata.Collection{}
	}
	return c, id, nil
}

// applyCollection removes what c lists from repository id (named repo),
// tombstoning removed manifests and links. The caller holds the
// repository row FOR UPDATE.
func applyCollection(ctx context.Context, tx pgx.Tx, repo string, id int64, c *metadata.Collection) error {
	var b pgx.Batch
	if len(c.Tags) > 0 {
		b.Queue(sqlCollectTags, id, c.Tags)
	}
	if len(c.Manifests) > 0 {
		ds := digestStrings(c.Manifests)
		b.Queue(sqlCollectManifests, id, ds)
		b.Queue(sqlTombstones, repo, refManifest, ds)
	}
	if len(c.Blobs) > 0 {
		ds := digestStrings(c.Blobs)
		slices.Sort(ds)
		b.Queue(sqlLockBlobs, ds)
		b.Queue(sqlCollectLinks, id, ds)
		b.Queue(sqlTombstones, repo, refBlob, ds)
		b.Queue(sqlDropBlobs, ds)
	}
	b.Queue(sqlPruneRepo, id)
	return tx.SendBatch(ctx, &b).Close()
}

// DeleteUnlinkedBlob calls remove for blob d while holding its row FOR
// UPDATE, if no repository links d.
func (s *Store) DeleteUnlinkedBlob(ctx context.Context, d digest.Digest, remove func(context.Context) error) (bool, error) {
	deleted := false
	err := s.write(ctx, func(tx pgx.Tx) error {
		deleted = false
		// The placeholder gives the lock something to hold when no row
		// exists; it never commits (deleted below, or rolled back).
		if _, err := tx.Exec(ctx, sqlPlaceholderBlob, string(d)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlLockBlob, string(d)); err != nil {
			return err
		}
		var linked bool
		if err := tx.QueryRow(ctx, sqlBlobLinked, string(d)).Scan(&linked); err != nil {
			return err
		}
		if linked {
			return errRollback
		}
		// The row goes first: a link that slipped past the check above
		// makes this fail on the foreign key before any byte is removed.
		if _, err := tx.Exec(ctx, sqlDeleteBlobRow, string(d)); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
				return errRollback
			}
			return err
		}
		if err := remove(ctx); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if errors.Is(err, errRollback) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("metadata/postgres: delete unlinked blob %s: %w", d, err)
	}
	return deleted, nil
}

// PurgeTombstones removes the tombstones written before before.
func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, sqlPurgeTombstones, before)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/postgres: purge tombstones: %w", err)
	}
	return int(n), nil
}

// LockGC takes the session advisory lock gcLock on a connection it keeps
// out of the pool until release.
func (s *Store) LockGC(ctx context.Context) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: gc lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", gcLock).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("metadata/postgres: gc lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("metadata/postgres: gc lock: %w", metadata.ErrGCLocked)
	}
	return func() { unlock(conn) }, nil
}

// unlock releases gcLock and returns conn to the pool; a connection that
// cannot unlock is closed, which releases the lock too.
func unlock(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", gcLock); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}

// LastGC returns the recorded end of the last complete collection.
func (s *Store) LastGC(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, sqlLastGC).Scan(&t)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("metadata/postgres: last gc: %w", err)
	}
	return t.UTC(), nil
}

// SetLastGC records the end of a complete collection.
func (s *Store) SetLastGC(ctx context.Context, t time.Time) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, sqlSetLastGC, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: record gc: %w", err)
	}
	return nil
}
