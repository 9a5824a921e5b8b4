package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// Garbage collection. Every write transaction of the store holds the
// database's one write lock (BEGIN IMMEDIATE), also across processes, so a
// collection that plans and removes inside one write transaction sees a
// repository no push can change under it, and DeleteUnlinkedBlob excludes
// LinkBlob simply by being a write transaction. Such transactions block
// every writer while they run, so the caller (package gc) plans on a read
// snapshot first and takes the write lock only for repositories with
// something to remove.

// SQL of the collection statements.
const (
	// Tags come with their manifest's row id, which the manifests'
	// state maps to a digest: a join would read the manifests twice.
	sqlStateTags = `SELECT name, manifest_id, updated_at
FROM tags
WHERE repo_id = ?1
ORDER BY name`

	sqlStateManifests = `SELECT id, digest, media_type, size, subject, created_at, blob_list, manifest_list
FROM manifests
WHERE repo_id = ?1
ORDER BY digest`

	sqlStateBlobs = `SELECT rb.digest, b.size, rb.linked_at
FROM repo_blobs AS rb JOIN blobs AS b ON b.digest = rb.digest
WHERE rb.repo_id = ?1
ORDER BY rb.digest`

	sqlCollectTag = `DELETE FROM tags WHERE repo_id = ?1 AND name = ?2`

	sqlBlobLinked = `SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = ?1)`

	sqlPurgeTombstones = `DELETE FROM gc_tombstones WHERE removed_at < ?1`

	sqlLastGC    = `SELECT finished_at FROM gc_runs WHERE id = 1`
	sqlSetLastGC = `INSERT INTO gc_runs (id, finished_at) VALUES (1, ?1)
ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at`
)

// CollectRepository plans a collection of repo and, with apply, carries it
// out in the same write transaction. Without apply it reads a snapshot on a
// read connection, blocking no writer.
func (s *Store) CollectRepository(ctx context.Context, repo string, plan metadata.Planner, apply bool) (*metadata.Collection, error) {
	var c *metadata.Collection
	var err error
	if apply {
		err = s.writeAndYield(ctx, func(tx *sql.Tx) error {
			var id int64
			c, id, err = s.planRepository(ctx, tx, repo, plan)
			if err != nil || c.Empty() {
				return err
			}
			return s.applyCollection(ctx, tx, repo, id, c)
		})
	} else {
		var tx *sql.Tx
		if tx, err = s.rdb.BeginTx(ctx, nil); err == nil {
			c, _, err = s.planRepository(ctx, tx, repo, plan)
			_ = tx.Rollback() // read only
		}
	}
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: collect %s: %w", repo, err)
	}
	if apply && !c.Empty() {
		s.changes.Notify(repo)
	}
	return c, nil
}

// planRepository loads the state of repo inside tx and returns the plan for
// it and the repository's id.
func (s *Store) planRepository(ctx context.Context, tx *sql.Tx, repo string, plan metadata.Planner) (*metadata.Collection, int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, sqlRepoID, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, metadata.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	st := &metadata.RepositoryState{Name: repo}

	rows, err := tx.QueryContext(ctx, sqlStateManifests, id)
	if err != nil {
		return nil, 0, err
	}
	byID := map[int64]digest.Digest{}
	for rows.Next() {
		var (
			m                      metadata.ManifestState
			mid, created           int64
			subject                sql.NullString
			blobList, manifestList sql.NullString
		)
		if err := rows.Scan(&mid, &m.Digest, &m.MediaType, &m.Size, &subject, &created, &blobList, &manifestList); err != nil {
			rows.Close()
			return nil, 0, err
		}
		byID[mid] = m.Digest
		m.Subject = digest.Digest(subject.String)
		m.CreatedAt = time.Unix(0, created).UTC()
		if m.Blobs, err = decodeDigests(blobList); err == nil {
			m.Manifests, err = decodeDigests(manifestList)
		}
		if err != nil {
			rows.Close()
			return nil, 0, err
		}
		st.Manifests = append(st.Manifests, m)
	}
	if err := closeRows(rows); err != nil {
		return nil, 0, err
	}

	if rows, err = tx.QueryContext(ctx, sqlStateTags, id); err != nil {
		return nil, 0, err
	}
	for rows.Next() {
		var t metadata.TagState
		var mid, updated int64
		if err := rows.Scan(&t.Name, &mid, &updated); err != nil {
			rows.Close()
			return nil, 0, err
		}
		t.Manifest = byID[mid]
		t.UpdatedAt = time.Unix(0, updated).UTC()
		st.Tags = append(st.Tags, t)
	}
	if err := closeRows(rows); err != nil {
		return nil, 0, err
	}

	if rows, err = tx.QueryContext(ctx, sqlStateBlobs, id); err != nil {
		return nil, 0, err
	}
	for rows.Next() {
		var b metadata.BlobLink
		var linked int64
		if err := rows.Scan(&b.Digest, &b.Size, &linked); err != nil {
			rows.Close()
			return nil, 0, err
		}
		b.LinkedAt = time.Unix(0, linked).UTC()
		st.Blobs = append(st.Blobs, b)
	}
	if err := closeRows(rows); err != nil {
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

// closeRows closes rows and returns the error that ended the iteration.
func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// applyCollection removes what c lists from repository id (named repo),
// tombstoning removed manifests and links.
func (s *Store) applyCollection(ctx context.Context, tx *sql.Tx, repo string, id int64, c *metadata.Collection) error {
	now := time.Now().UnixNano()
	tomb := tx.StmtContext(ctx, s.tombstone)
	for _, tag := range c.Tags {
		if _, err := tx.ExecContext(ctx, sqlCollectTag, id, tag); err != nil {
			return fmt.Errorf("tag %q: %w", tag, err)
		}
	}
	del := tx.StmtContext(ctx, s.deleteManifest)
	for _, d := range c.Manifests {
		if _, err := del.ExecContext(ctx, id, string(d)); err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		if _, err := tomb.ExecContext(ctx, repo, refManifest, string(d), now); err != nil {
			return err
		}
	}
	unlink, drop := tx.StmtContext(ctx, s.unlinkBlob), tx.StmtContext(ctx, s.dropBlob)
	for _, d := range c.Blobs {
		if _, err := unlink.ExecContext(ctx, id, string(d)); err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		if _, err := tomb.ExecContext(ctx, repo, refBlob, string(d), now); err != nil {
			return err
		}
		if _, err := drop.ExecContext(ctx, string(d)); err != nil {
			return err
		}
	}
	return s.prune(ctx, tx, id)
}

// DeleteUnlinkedBlob calls remove for blob d inside a write transaction if
// no repository links d. Holding the write lock keeps every LinkBlob out
// until the bytes are gone and the transaction is over.
func (s *Store) DeleteUnlinkedBlob(ctx context.Context, d digest.Digest, remove func(context.Context) error) (bool, error) {
	deleted := false
	err := s.writeAndYield(ctx, func(tx *sql.Tx) error {
		var linked bool
		if err := tx.QueryRowContext(ctx, sqlBlobLinked, string(d)).Scan(&linked); err != nil {
			return err
		}
		if linked {
			return nil
		}
		if err := remove(ctx); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.dropBlob).ExecContext(ctx, string(d)); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("metadata/sqlite: delete unlinked blob %s: %w", d, err)
	}
	return deleted, nil
}

// PurgeTombstones removes the tombstones written before before.
func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlPurgeTombstones, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/sqlite: purge tombstones: %w", err)
	}
	return int(n), nil
}

// LockGC takes an exclusive lock on the file next to the database named
// by gcLockSuffix (see lockFile), so collections exclude each other across
// every process using the database, and the lock dies with its holder.
func (s *Store) LockGC(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release, err := lockFile(s.path + gcLockSuffix)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: gc lock: %w", err)
	}
	return release, nil
}

// gcLockSuffix names the lock file of LockGC, beside the database and its
// -wal and -shm files. The file is never removed: removing a lock file
// another process is about to lock would let two holders in.
const gcLockSuffix = "-gc.lock"

// LastGC returns the recorded end of the last complete collection.
func (s *Store) LastGC(ctx context.Context) (time.Time, error) {
	var ns int64
	err := s.rdb.QueryRowContext(ctx, sqlLastGC).Scan(&ns)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("metadata/sqlite: last gc: %w", err)
	}
	return time.Unix(0, ns).UTC(), nil
}

// SetLastGC records the end of a complete collection.
func (s *Store) SetLastGC(ctx context.Context, t time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlSetLastGC, t.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: record gc: %w", err)
	}
	return nil
}
