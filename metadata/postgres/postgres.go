// Package postgres is a metadata.Store in a PostgreSQL database, for one
// berth node or several sharing the database. It uses pgx, a pure-Go
// driver, so builds stay free of cgo.
//
// # Connecting
//
// Open and Migrate take a connection string, as a URL
// (postgres://user:password@host:5432/berth?sslmode=verify-full) or as
// key=value pairs, with libpq's names and PG* environment variables as
// defaults. Besides the server's own parameters (search_path=berth, for
// a schema of its own) it accepts pgx's pool settings (pool_max_conns,
// default: the greater of 4 and the number of CPUs) and
// default_query_exec_mode (set it to exec or simple_protocol behind a
// pooler that cannot hold prepared statements across transactions).
// application_name defaults to "berth".
//
// # Schema
//
// Open brings the schema up to date before it returns (see Migrate), so a
// new version of berth migrates the database on its first start. The
// tables are described with the migrations in schema.go.
//
// # Concurrency
//
// Every write is one transaction, at READ COMMITTED (whatever the
// server's default) when it reads before it writes, and is retried a few
// times if PostgreSQL reports a serialization failure or a deadlock. Uniqueness is
// kept by constraints, and inserts that may race use ON CONFLICT, so two
// nodes pushing the same blob, manifest or tag at once both succeed.
//
// A repository row exists while the repository holds at least one blob or
// manifest; the transaction that deletes the last of them deletes the row.
// That read-modify-write is guarded by row locks on the repository row:
// writers that add content take FOR KEY SHARE (they share it with each
// other), writers that delete content take FOR UPDATE, so a delete waits
// for pushes into the repository in progress and checks emptiness after
// they committed, and a push that waited for a delete that removed the
// repository creates the row again. Removing a blobs row no repository
// links any more is guarded the same way by a lock on the blob's row.
// Locks are always taken repository first, then blob, then manifest, then
// tags in name order, so these transactions do not deadlock one another.
//
// # Ordering
//
// Repository and tag names use the "C" collation: byte order, the same as
// Go's string comparison, whatever the database's locale. Listings page
// with "name > last ORDER BY name LIMIT n", a range scan of an index, so a
// page costs the same at the end of a 100,000-repository catalog as at its
// start. pgx prepares each statement once per connection and reuses it.
//
// # Search
//
// SearchRepositories folds ASCII case only (lower() under the "C"
// collation); repository names are lowercase ASCII by the distribution
// spec, so this is exact for valid names. It scans the names index in
// order and stops after n matches.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// maxAttempts is how many times a statement or transaction runs before a
// transient failure (see transient) is returned to the caller.
const maxAttempts = 5

// Store is a metadata.Store backed by a PostgreSQL database. It is safe for
// concurrent use, also by several processes sharing the database; see the
// package documentation for how.
type Store struct {
	pool *pgxpool.Pool
	// retries counts the statements and transactions run again after a
	// transient failure; the lock ordering above should keep it at zero.
	retries atomic.Int64

	// changes tells subscribers of the notifications of every replica's
	// committed changes (Changes).
	changes    metadata.Broadcast
	listenOnce sync.Once
	listening  chan struct{}   // closed once the first LISTEN was tried
	ctx        context.Context // cancelled by Close
	cancel     context.CancelFunc

	closeOnce sync.Once
}

var (
	_ metadata.Store    = (*Store)(nil)
	_ metadata.Notifier = (*Store)(nil)
)

// changesChannel is the LISTEN/NOTIFY channel of changes to tags and
// manifests; the payload is the repository's name.
const changesChannel = "berth_changes"

// manifestColumns are the columns scanManifest reads, in order. The
// reference lists are read from the manifest row's own copies rather than
// gathered from manifest_refs: ResolveTag is the hot path of every pull by
// tag.
const manifestColumns = `m.digest, m.media_type, m.artifact_type, m.size,
	m.subject, m.annotations, m.created_at, m.blob_list, m.manifest_list, m.content`

// SQL of every statement the store runs.
const (
	sqlResolveTag = `SELECT ` + manifestColumns + `
FROM repositories AS r
JOIN tags AS t ON t.repo_id = r.id
JOIN manifests AS m ON m.id = t.manifest_id
WHERE r.name = $1 AND t.name = $2`

	sqlGetManifest = `SELECT ` + manifestColumns + `
FROM repositories AS r
JOIN manifests AS m ON m.repo_id = r.id
WHERE r.name = $1 AND m.digest = $2`

	sqlBlobSize = `SELECT b.size
FROM repositories AS r
JOIN repo_blobs AS rb ON rb.repo_id = r.id
JOIN blobs AS b ON b.digest = rb.digest
WHERE r.name = $1 AND rb.digest = $2`

	sqlAnyBlobSize = `SELECT size FROM blobs WHERE digest = $1`

	// One row, holding the page, if the repository exists; none if not:
	// "unknown repository" and "no tags after last" come from the same
	// statement and snapshot. The array keeps the subquery's order, which
	// is the primary key's. A NULL limit is no limit.
	//
	// It runs after sqlTagsPlan, in one transaction: when it is planned,
	// the repository is not known yet, so PostgreSQL estimates an average
	// repository's tags, and for a few rows a bitmap scan and a sort cost
	// about as much as walking the index in order. For a repository with
	// far more tags than the average that choice reads and sorts all of
	// them for every page; without bitmap scans, the ordered index scan
	// that stops after n rows is the only cheap plan left.
	sqlTagsPlan = `SET LOCAL enable_bitmapscan = off`
	sqlTags     = `SELECT ARRAY(
	SELECT t.name FROM tags AS t
	WHERE t.repo_id = r.id AND t.name > $2
	ORDER BY t.name
	LIMIT $3)
FROM repositories AS r
WHERE r.name = $1`

	// A LEFT JOIN from the repository row tells "unknown repository" (no
	// row) from "no referrers" (one row of NULLs). "subject = $2" implies
	// the partial index's "subject IS NOT NULL".
	// sqlNotify tells every replica's listener (Changes) of a change to a
	// repository's tags or manifests, when the transaction commits.
	sqlNotify = `SELECT pg_notify($1, $2)`

	sqlReferrers = `SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations
FROM repositories AS r
LEFT JOIN manifests AS m ON m.repo_id = r.id AND m.subject = $2
	AND ($3 = '' OR m.artifact_type = $3) AND m.digest > $4
WHERE r.name = $1
ORDER BY m.digest
LIMIT $5`

	sqlIndexesOf = `SELECT m.digest
FROM repositories AS r
JOIN manifest_refs AS mr ON mr.repo_id = r.id AND mr.child = $2 AND mr.kind = 1
JOIN manifests AS m ON m.id = mr.manifest_id
WHERE r.name = $1
LIMIT $3`

	sqlBlobRepositories = `SELECT r.name
FROM repo_blobs AS rb
JOIN repositories AS r ON r.id = rb.repo_id
WHERE rb.digest = $1`

	sqlRepositories = `SELECT name FROM repositories
WHERE name > $1
ORDER BY name
LIMIT $2`

	// strpos, unlike LIKE, gives '%' and '_' in the query no meaning.
	sqlSearchRepositories = `SELECT name FROM repositories
WHERE strpos(lower(name), $1) > 0
ORDER BY name
LIMIT $2`

	// Writers that add content share the repository row; writers that
	// delete content lock it exclusively (see the package documentation).
	sqlShareRepo  = `SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE`
	sqlLockRepo   = `SELECT id FROM repositories WHERE name = $1 FOR UPDATE`
	sqlInsertRepo = `INSERT INTO repositories (name) VALUES ($1)
ON CONFLICT (name) DO NOTHING
RETURNING id`

	// A digest names its content, so its size cannot differ between
	// pushes; the update only repairs a row recorded wrongly. Either way
	// the row is locked until commit, so a concurrent DeleteBlob cannot
	// remove it before the link below is committed.
	//
	// It returns a row only when it wrote one: true for a new row (xmax
	// is zero in a version no transaction has locked or updated), false
	// for a repaired one; no row means the row was there as it should be.
	sqlPutBlob = `INSERT INTO blobs (digest, size) VALUES ($1, $2)
ON CONFLICT (digest) DO UPDATE SET size = excluded.size
WHERE blobs.size <> excluded.size
RETURNING xmax = 0`

	// A repeated link renews its time: the client is about to push a
	// manifest that needs it.
	sqlLinkBlob = `INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES ($1, $2, statement_timestamp())
ON CONFLICT (repo_id, digest) DO UPDATE SET linked_at = excluded.linked_at`

	sqlClearTombstone = `DELETE FROM gc_tombstones WHERE repo = $1 AND kind = $2 AND digest = $3`

	// The first tombstone of content that a manifest about to be stored
	// references ($2: its blobs, $4: its child manifests) and that is
	// still absent from the repository ($1 name, $3 id).
	sqlCollectedRefs = `SELECT t.digest FROM gc_tombstones AS t
WHERE t.repo = $1 AND (
	(t.kind = 0 AND t.digest = ANY($2::text[])
		AND NOT EXISTS (SELECT 1 FROM repo_blobs AS rb WHERE rb.repo_id = $3 AND rb.digest = t.digest))
	OR (t.kind = 1 AND t.digest = ANY($4::text[])
		AND NOT EXISTS (SELECT 1 FROM manifests AS m WHERE m.repo_id = $3 AND m.digest = t.digest)))
LIMIT 1`

	sqlLockBlob = `SELECT 1 FROM blobs WHERE digest = $1 FOR UPDATE`

	sqlUnlinkBlob = `DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2`

	sqlDropBlob = `DELETE FROM blobs
WHERE digest = $1 AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1)`

	// created_at is not in the update list: a re-push keeps the time of
	// the first one. The database's clock, not the node's, stamps a push
	// without a time, so nodes with skewed clocks agree.
	sqlUpsertManifest = `INSERT INTO manifests
	(repo_id, digest, media_type, artifact_type, size, subject, annotations, created_at,
	 blob_list, manifest_list, content)
VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, statement_timestamp()), $9, $10, coalesce($11, ''::bytea))
ON CONFLICT (repo_id, digest) DO UPDATE SET
	media_type = excluded.media_type,
	artifact_type = excluded.artifact_type,
	size = excluded.size,
	subject = excluded.subject,
	annotations = excluded.annotations,
	blob_list = excluded.blob_list,
	manifest_list = excluded.manifest_list,
	content = excluded.content
RETURNING id`

	sqlDeleteRefs = `DELETE FROM manifest_refs WHERE manifest_id = $1`

	// Positions count from 0, as in the manifest.
	sqlInsertRefs = `INSERT INTO manifest_refs (manifest_id, kind, position, repo_id, child)
SELECT $1, $2, u.ord - 1, $3, u.child
FROM unnest($4::text[]) WITH ORDINALITY AS u (child, ord)`

	// The names come sorted and without duplicates: ON CONFLICT cannot
	// touch a row twice in one statement, and rows locked in one order
	// by every writer cannot deadlock. Every push of a tag renews its
	// time, also one that leaves it where it was: retention counts tags
	// by when they were last pushed.
	sqlUpsertTags = `INSERT INTO tags (repo_id, name, manifest_id, updated_at)
SELECT $1, t.name, $3, statement_timestamp() FROM unnest($2::text[]) AS t (name)
ON CONFLICT (repo_id, name) DO UPDATE SET
	manifest_id = excluded.manifest_id,
	updated_at = excluded.updated_at`

	// Tags and manifest_refs rows go with the manifest (ON DELETE CASCADE).
	sqlDeleteManifest = `DELETE FROM manifests WHERE repo_id = $1 AND digest = $2`

	sqlDeleteTag = `DELETE FROM tags
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2`

	sqlPruneRepo = `DELETE FROM repositories
WHERE id = $1
	AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE repo_id = $1)
	AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1)`
)

// Open connects to the database at dsn (see the package documentation for
// its form), brings its schema up to date and returns the store. ctx
// bounds the connection and the migration, not the store's life.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := parseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: %w", err)
	}
	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		return migrate(ctx, c.Conn())
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("metadata/postgres: open: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	return &Store{pool: pool, ctx: lctx, cancel: cancel, listening: make(chan struct{})}, nil
}

// Changes implements metadata.Notifier: every replica's committed changes
// (this one's included) arrive through LISTEN on a connection of its own.
// When that connection is lost, subscribers are told "" (anything may have
// changed) once it is back.
// Changes waits (a few seconds at most) for the first LISTEN, so that
// what commits after it returns is told.
func (s *Store) Changes(fn func(repo string)) func() {
	stop := s.changes.Subscribe(fn)
	s.listenOnce.Do(func() { go s.listen() })
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.listening:
	case <-t.C:
	}
	return stop
}

// listen holds the LISTEN connection until Close, reconnecting with a
// growing pause when it fails.
func (s *Store) listen() {
	pause := 100 * time.Millisecond
	var once sync.Once
	ready := func() { once.Do(func() { close(s.listening) }) }
	defer ready()
	for s.ctx.Err() == nil {
		if s.relay(ready) {
			pause = 100 * time.Millisecond
		}
		if s.ctx.Err() != nil {
			return
		}
		t := time.NewTimer(pause)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// relay connects, listens and relays notifications until the connection
// fails; it reports whether it was listening, and calls ready once it is
// (or has failed to). Once listening it tells ""
// at once: what changed before (while it was down, or while the first
// connection was being made) is unknown.
func (s *Store) relay(ready func()) bool {
	defer ready()
	conn, err := pgx.ConnectConfig(s.ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(s.ctx, "LISTEN "+changesChannel); err != nil {
		return false
	}
	s.changes.Notify("")
	ready()
	for {
		n, err := conn.WaitForNotification(s.ctx)
		if err != nil {
			return true
		}
		s.changes.Notify(n.Payload)
	}
}

// parseConfig parses dsn into a pool configuration with berth's defaults.
// pgx redacts the password from its parse errors.
func parseConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: %w", err)
	}
	// Other session settings are left alone: a pooler such as PgBouncer
	// refuses connections with startup parameters it does not know.
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "berth"
	}
	return cfg, nil
}

// Close closes the connection pool, waiting for the connections in use to
// be returned. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.pool.Close()
	})
	return nil
}

// retry runs fn until it succeeds, fails for a reason a new attempt cannot
// fix, or has run maxAttempts times. Between attempts it waits a few
// milliseconds, at random so that the transactions that collided do not
// collide again.
func (s *Store) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxAttempts || !transient(err) || ctx.Err() != nil {
			return err
		}
		s.retries.Add(1)
		wait := time.NewTimer(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
		select {
		case <-ctx.Done():
			wait.Stop()
			return err
		case <-wait.C:
		}
	}
}

// transient reports whether running the transaction again may succeed: it
// lost a serialization conflict or a deadlock, or it failed before sending
// anything (a pooled connection that had gone away).
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err)
}

// write runs fn in a READ COMMITTED transaction and commits it, or rolls it
// back if fn or the commit fails; transient failures run it again.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := s.retry(ctx, func() error {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			// If this fails, the pool discards the connection, which
			// the server then rolls back.
			_ = tx.Rollback(ctx)
			return err
		}
		return tx.Commit(ctx)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53100" { // disk_full
		return fmt.Errorf("%w: %w", metadata.ErrNoSpace, err)
	}
	return err
}

// lockRepo returns the id of repo, locked against writers until the
// transaction ends, or metadata.ErrNotFound: every caller is deleting
// something from the repository, and the interface reports a missing one
// that way.
func lockRepo(ctx context.Context, tx pgx.Tx, repo string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, sqlLockRepo, repo).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, metadata.ErrNotFound
	}
	return id, err
}

// ensureRepo returns the id of repo, creating the row if needed, and holds
// a lock that keeps the row from being deleted until the transaction ends.
func ensureRepo(ctx context.Context, tx pgx.Tx, repo string) (int64, error) {
	// The row can appear between the lookup and the insert (another push
	// created it: the insert waits for that one to commit and returns
	// nothing), and disappear again before the next lookup (a delete
	// emptied it); each round makes progress, so a few suffice.
	for range 3 {
		var id int64
		err := tx.QueryRow(ctx, sqlShareRepo, repo).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return id, err
		}
		err = tx.QueryRow(ctx, sqlInsertRepo, repo).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return id, err
		}
	}
	return 0, fmt.Errorf("repository row of %s keeps changing", repo)
}

// prune deletes the row of repository id if it holds nothing any more. The
// caller holds the row's FOR UPDATE lock, so no push into it is in flight
// and this statement's snapshot sees every committed one.
func prune(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, sqlPruneRepo, id)
	return err
}

// PutBlob records that repo may serve blob d of the given size.
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.LinkBlob(ctx, repo, d, size, nil)
}

// LinkBlob records that repo may serve blob d, checking with present first
// when no repository links d. Inserting the blob's row locks it until
// commit (and waits for a DeleteUnlinkedBlob holding it), so present runs
// while the bytes cannot be deleted, and a DeleteUnlinkedBlob that got the
// row first has finished deleting them by the time present looks.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, present func(context.Context) error) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		id, err := ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if present == nil {
			var b pgx.Batch
			b.Queue(sqlPutBlob, string(d), size)
			b.Queue(sqlLinkBlob, id, string(d))
			b.Queue(sqlClearTombstone, repo, refBlob, string(d))
			queueEvents(ctx, &b)
			return tx.SendBatch(ctx, &b).Close()
		}
		var inserted bool
		err = tx.QueryRow(ctx, sqlPutBlob, string(d), size).Scan(&inserted)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if inserted {
			if err := present(ctx); err != nil {
				return err
			}
		}
		var b pgx.Batch
		b.Queue(sqlLinkBlob, id, string(d))
		b.Queue(sqlClearTombstone, repo, refBlob, string(d))
		queueEvents(ctx, &b)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: put blob %s@%s: %w", repo, d, err)
	}
	return nil
}

// BlobSize returns the size of blob d if repo may serve it.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, sqlBlobSize, repo, string(d)).Scan(&size)
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/postgres: blob %s@%s: %w", repo, d, notFound(err))
	}
	return size, nil
}

// AnyBlobSize returns the size of blob d if any repository holds it.
func (s *Store) AnyBlobSize(ctx context.Context, d digest.Digest) (int64, error) {
	var size int64
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, sqlAnyBlobSize, string(d)).Scan(&size)
	})
	if err != nil {
		return 0, fmt.Errorf("metadata/postgres: blob %s: %w", d, notFound(err))
	}
	return size, nil
}

// DeleteBlob removes blob d from repo, and from the blobs table once no
// repository links it.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		id, err := lockRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		// Waits for pushes of d into other repositories in flight, so the
		// drop below sees their links.
		if _, err := tx.Exec(ctx, sqlLockBlob, string(d)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sqlUnlinkBlob, id, string(d))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return metadata.ErrNotFound
		}
		if _, err := tx.Exec(ctx, sqlDropBlob, string(d)); err != nil {
			return err
		}
		if err := execEvents(ctx, tx); err != nil {
			return err
		}
		return prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: delete blob %s@%s: %w", repo, d, err)
	}
	return nil
}

// PutManifest stores m in repo and points tags at it, in one transaction.
// A zero m.CreatedAt is taken as the database's current time; m itself is
// not modified.
func (s *Store) PutManifest(ctx context.Context, repo string, m *metadata.Manifest, tags ...string) error {
	if m == nil || m.Digest == "" {
		return fmt.Errorf("metadata/postgres: put manifest in %s: no manifest digest", repo)
	}
	var (
		subject, created, annotations any // NULL unless set
		blobList                      = digestStrings(m.Blobs)
		manifestList                  = digestStrings(m.Manifests)
	)
	if m.Subject != "" {
		subject = string(m.Subject)
	}
	if !m.CreatedAt.IsZero() {
		created = m.CreatedAt
	}
	if len(m.Annotations) > 0 {
		// Encoded here, not by pgx: with the simple protocol pgx does
		// not know the column's type and cannot encode a map.
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return fmt.Errorf("metadata/postgres: put manifest %s@%s: annotations: %w", repo, m.Digest, err)
		}
		annotations = string(b)
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))

	err := s.write(ctx, func(tx pgx.Tx) error {
		repoID, err := ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		// Holding the repository row (shared), this runs after any
		// collection of the repository committed, and none starts
		// before this transaction ends.
		if blobList != nil || manifestList != nil {
			var gone string
			err := tx.QueryRow(ctx, sqlCollectedRefs, repo, blobList, repoID, manifestList).Scan(&gone)
			if err == nil {
				return fmt.Errorf("%w: %s was removed from the repository; push it again", metadata.ErrCollected, gone)
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var id int64
		if err := tx.QueryRow(ctx, sqlUpsertManifest,
			repoID, string(m.Digest), m.MediaType, m.ArtifactType, m.Size,
			subject, annotations, created, blobList, manifestList, m.Content,
		).Scan(&id); err != nil {
			return err
		}
		var b pgx.Batch
		b.Queue(sqlClearTombstone, repo, refManifest, string(m.Digest))
		b.Queue(sqlDeleteRefs, id)
		if blobList != nil {
			b.Queue(sqlInsertRefs, id, refBlob, repoID, blobList)
		}
		if manifestList != nil {
			b.Queue(sqlInsertRefs, id, refManifest, repoID, manifestList)
		}
		if len(tags) > 0 {
			b.Queue(sqlUpsertTags, repoID, tags, id)
		}
		b.Queue(sqlNotify, changesChannel, repo)
		queueEvents(ctx, &b)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: put manifest %s@%s: %w", repo, m.Digest, err)
	}
	return nil
}

// digestStrings converts ds for a text[] column: nil (NULL) when empty, so
// an empty list costs nothing in the row.
func digestStrings(ds []digest.Digest) []string {
	if len(ds) == 0 {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d)
	}
	return out
}

// GetManifest returns the manifest of digest d in repo.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (*metadata.Manifest, error) {
	m, err := s.queryManifest(ctx, sqlGetManifest, repo, string(d))
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: manifest %s@%s: %w", repo, d, notFound(err))
	}
	return m, nil
}

// ResolveTag returns the manifest that tag points at in repo, with one
// statement that walks three unique indexes.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (*metadata.Manifest, error) {
	m, err := s.queryManifest(ctx, sqlResolveTag, repo, tag)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: tag %s:%s: %w", repo, tag, notFound(err))
	}
	return m, nil
}

// queryManifest runs a statement returning one row of manifestColumns.
func (s *Store) queryManifest(ctx context.Context, query string, args ...any) (*metadata.Manifest, error) {
	var m *metadata.Manifest
	err := s.retry(ctx, func() error {
		var err error
		m, err = scanManifest(s.pool.QueryRow(ctx, query, args...))
		return err
	})
	return m, err
}

// scanManifest reads a row of manifestColumns. pgx copies every value out
// of its read buffer, so the manifest shares nothing with the connection.
func scanManifest(row pgx.Row) (*metadata.Manifest, error) {
	var (
		m                      metadata.Manifest
		dgst                   string
		subject                pgtype.Text
		blobList, manifestList []string
	)
	if err := row.Scan(&dgst, &m.MediaType, &m.ArtifactType, &m.Size,
		&subject, &m.Annotations, &m.CreatedAt, &blobList, &manifestList, &m.Content); err != nil {
		return nil, err
	}
	m.Digest = digest.Digest(dgst)
	m.Subject = digest.Digest(subject.String)
	m.CreatedAt = m.CreatedAt.UTC()
	m.Blobs = digests(blobList)
	m.Manifests = digests(manifestList)
	return &m, nil
}

// digests converts a text[] column back; NULL is nil.
func digests(ss []string) []digest.Digest {
	if len(ss) == 0 {
		return nil
	}
	out := make([]digest.Digest, len(ss))
	for i, s := range ss {
		out[i] = digest.Digest(s)
	}
	return out
}

// DeleteManifest removes manifest d, its tags and its references from repo.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		id, err := lockRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sqlDeleteManifest, id, string(d))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return metadata.ErrNotFound
		}
		if _, err := tx.Exec(ctx, sqlNotify, changesChannel, repo); err != nil {
			return err
		}
		if err := execEvents(ctx, tx); err != nil {
			return err
		}
		return prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: delete manifest %s@%s: %w", repo, d, err)
	}
	return nil
}

// DeleteTag removes only the tag; the manifest stays, so the repository
// does too, and no repository lock is needed. The events ctx carries are
// queued in the same transaction.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		res, err := tx.Exec(ctx, sqlDeleteTag, repo, tag)
		if err == nil && res.RowsAffected() == 0 {
			err = metadata.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, sqlNotify, changesChannel, repo); err != nil {
			return err
		}
		return execEvents(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("metadata/postgres: delete tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

// Tags lists up to n tags of repo after last, in byte order.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	var names []string
	err := s.retry(ctx, func() error {
		// One round trip: a batch is sent at once.
		var b pgx.Batch
		b.Queue("BEGIN READ ONLY")
		b.Queue(sqlTagsPlan)
		b.Queue(sqlTags, repo, last, limit(n)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&names)
		})
		b.Queue("COMMIT")
		return s.pool.SendBatch(ctx, &b).Close()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = metadata.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: tags of %s: %w", repo, err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// Referrers lists the manifests in repo whose subject is d, optionally only
// those of artifactType, ordered by digest.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	var descs []metadata.Descriptor
	var more bool
	err := s.retry(ctx, func() error {
		var err error
		descs, more, err = s.referrersOf(ctx, repo, d, q)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("metadata/postgres: referrers of %s@%s: %w", repo, d, err)
	}
	return descs, more, nil
}

// referrersOf does Referrers' work, leaving the error unwrapped. Rows are
// read one at a time and reading stops at the page's bounds.
func (s *Store) referrersOf(ctx context.Context, repo string, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	rows, err := s.pool.Query(ctx, sqlReferrers, repo, string(d), q.ArtifactType, string(q.After), max(q.Limit, 1)+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	descs := []metadata.Descriptor{}
	found, more, used := false, false, 0
	for rows.Next() {
		found = true
		var (
			mediaType, dgst, artType pgtype.Text
			size                     pgtype.Int8
			raw                      []byte
		)
		if err := rows.Scan(&mediaType, &dgst, &size, &artType, &raw); err != nil {
			return nil, false, err
		}
		if !dgst.Valid {
			continue // the repository exists but nothing refers to d
		}
		n := metadata.RawDescriptorSize(mediaType.String, dgst.String, artType.String, len(raw))
		if !q.Fits(len(descs), used, n) {
			more = true
			break
		}
		var annotations map[string]string
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &annotations); err != nil {
				return nil, false, fmt.Errorf("decode annotations: %w", err)
			}
		}
		descs = append(descs, metadata.Descriptor{
			MediaType:    mediaType.String,
			Digest:       digest.Digest(dgst.String),
			Size:         size.Int64,
			ArtifactType: artType.String,
			Annotations:  annotations,
		})
		used += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, metadata.ErrRepositoryNotFound
	}
	return descs, more, nil
}

// IndexesOf lists the manifests of repo that list d as a child.
func (s *Store) IndexesOf(ctx context.Context, repo string, d digest.Digest, n int) ([]digest.Digest, error) {
	names, err := s.names(ctx, sqlIndexesOf, repo, max(n, 1), string(d))
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: indexes of %s@%s: %w", repo, d, err)
	}
	out := make([]digest.Digest, 0, len(names))
	for _, v := range names {
		if !slices.Contains(out, digest.Digest(v)) {
			out = append(out, digest.Digest(v))
		}
	}
	return out, nil
}

// BlobRepositories yields the repositories linking blob d. It is not
// retried: yield may have seen names already.
func (s *Store) BlobRepositories(ctx context.Context, d digest.Digest, yield func(string) bool) error {
	rows, err := s.pool.Query(ctx, sqlBlobRepositories, string(d))
	if err != nil {
		return fmt.Errorf("metadata/postgres: repositories of blob %s: %w", d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("metadata/postgres: repositories of blob %s: %w", d, err)
		}
		if !yield(name) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("metadata/postgres: repositories of blob %s: %w", d, err)
	}
	return nil
}

// Repositories lists up to n repository names after last, in byte order.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	names, err := s.names(ctx, sqlRepositories, last, n)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: repositories: %w", err)
	}
	return names, nil
}

// SearchRepositories lists up to n repository names containing query,
// ignoring ASCII case, in byte order. An empty query matches every name.
func (s *Store) SearchRepositories(ctx context.Context, query string, n int) ([]string, error) {
	names, err := s.names(ctx, sqlSearchRepositories, strings.ToLower(query), n)
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: search repositories for %q: %w", query, err)
	}
	return names, nil
}

// names runs a statement listing strings, taking (arg, arg2..., limit).
func (s *Store) names(ctx context.Context, query, arg string, n int, arg2 ...string) ([]string, error) {
	if n == 0 {
		return []string{}, nil
	}
	args := []any{arg}
	for _, a := range arg2 {
		args = append(args, a)
	}
	args = append(args, limit(n))
	var names []string
	err := s.retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		names, err = pgx.AppendRows(make([]string, 0, capacity(n)), rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// limit turns the interface's page size into a LIMIT argument, where NULL
// means no limit.
func limit(n int) *int64 {
	if n < 0 {
		return nil
	}
	l := int64(n)
	return &l
}

// capacity is the initial capacity of a page of n names: n, but not more
// than a typical page, so a huge n does not allocate a huge slice.
func capacity(n int) int {
	if n < 0 {
		return 64
	}
	return min(n, 1000)
}

// notFound maps "no row" to metadata.ErrNotFound, so pgx.ErrNoRows (which
// is also sql.ErrNoRows) never reaches callers.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return metadata.ErrNotFound
	}
	return err
}
