// Package sqlite is a metadata.Store kept in one SQLite database file, for a
// single berth node. It uses modernc.org/sqlite, so builds stay free of cgo.
//
// # Concurrency
//
// SQLite admits one writer at a time per database. The store therefore
// holds two handles on the file:
//
//   - a write handle with a single connection, whose transactions begin
//     IMMEDIATE: the write lock is taken when the transaction starts, not
//     when its first write upgrades a read lock. An upgrade that finds
//     another writer fails with SQLITE_BUSY at once (busy_timeout cannot
//     retry it without risking deadlock), and the single connection queues
//     this process's writers in database/sql instead of in SQLite's lock.
//     Against writers of other processes (berth gc), beginWrite retries
//     every few milliseconds, and the collector's transactions leave the
//     lock free between them (writeAndYield).
//   - a pool of query_only read connections. In WAL mode readers block
//     neither the writer nor each other, so manifest and tag lookups go on
//     while a push commits.
//
// synchronous=FULL makes every commit durable before it returns (the WAL
// is fsynced at each commit): what the registry acknowledged survives a
// power loss, not only a crash of the process. Reads are unaffected.
//
// # Repositories
//
// A repository row exists while the repository holds at least one blob or
// manifest (a tag always points at a manifest). The transaction that
// deletes the last of them deletes the row, so an emptied repository leaves
// Repositories and search, and Tags and Referrers report
// metadata.ErrRepositoryNotFound, exactly as if nothing had been pushed.
//
// # Ordering
//
// Repository and tag names compare with BINARY collation: byte order, the
// same as Go's string comparison. Listings page with "name > last ORDER BY
// name LIMIT n", a range scan of an index, so a page costs the same at the
// end of a 100,000-repository catalog as at its start.
//
// # Search
//
// SearchRepositories folds ASCII case only; repository names are lowercase
// ASCII by the distribution spec, so this is exact for valid names.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/berthhq/berth/metadata"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection or process before failing with SQLITE_BUSY (a write in
// beginWrite, a read in SQLite's busy handler). Writers in this process
// queue on the single write connection, so this only matters for other
// processes (berth gc, backups, a second berth by mistake) and for WAL
// checkpoints.
const busyTimeout = 10 * time.Second

// Store is a metadata.Store backed by a SQLite database file. It is safe for
// concurrent use; see the package documentation for how.
type Store struct {
	wdb  *sql.DB // one connection: all writes
	rdb  *sql.DB // pool of query_only connections: all reads
	path string  // absolute path of the database file

	// Read statements, prepared on rdb (database/sql prepares each on a
	// pooled connection the first time that connection runs it).
	resolveTag, getManifest *sql.Stmt
	blobSize, anyBlobSize   *sql.Stmt
	repoExists, tags        *sql.Stmt
	referrers, indexesOf    *sql.Stmt
	blobRepositories        *sql.Stmt
	repositories            *sql.Stmt
	searchRepositories      *sql.Stmt
	readStmts               []*sql.Stmt

	// Write statements, prepared on wdb's one connection and bound to a
	// transaction with Tx.StmtContext, which reuses that preparation.
	repoID, insertRepo         *sql.Stmt
	putBlob, linkBlob          *sql.Stmt
	unlinkBlob, dropBlob       *sql.Stmt
	upsertManifest, deleteRefs *sql.Stmt
	insertRef, upsertTag       *sql.Stmt
	deleteManifest, deleteTag  *sql.Stmt
	pruneRepo, blobRow         *sql.Stmt
	collectedRefs, clearTomb   *sql.Stmt
	tombstone                  *sql.Stmt
	writeStmts                 []*sql.Stmt

	// changes tells subscribers of committed changes to tags and
	// manifests; watch notices those of other processes.
	changes   metadata.Broadcast
	watchOnce sync.Once
	done      chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var (
	_ metadata.Store    = (*Store)(nil)
	_ metadata.Notifier = (*Store)(nil)
)

// externalPoll is how often the store asks SQLite whether another process
// changed the database (PRAGMA data_version), for Changes.
const externalPoll = time.Second

// Changes implements metadata.Notifier: this store's own commits are told
// as they happen; another process's (berth gc run beside berth serve) are
// told as "" within externalPoll of the commit, counting from the call.
func (s *Store) Changes(fn func(repo string)) func() {
	stop := s.changes.Subscribe(fn)
	s.watchOnce.Do(func() {
		last := s.dataVersion()
		go s.watch(last)
	})
	return stop
}

// dataVersion reads the write connection's data_version, which moves only
// when another connection (another process: this one writes through that
// connection alone) commits; -1 when it cannot be read.
func (s *Store) dataVersion() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), externalPoll)
	defer cancel()
	var v int64
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return -1
	}
	return v
}

// watch polls dataVersion until Close and tells "" when it moved.
func (s *Store) watch(last int64) {
	t := time.NewTicker(externalPoll)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		v := s.dataVersion()
		if v < 0 {
			continue
		}
		if last >= 0 && v != last {
			s.changes.Notify("")
		}
		last = v
	}
}

// manifestColumns are the columns scanManifest reads, in order. The
// reference lists are read from the manifest row's own JSON copies rather
// than gathered from manifest_refs: ResolveTag is the hot path of every
// pull by tag, and the subqueries would add a third to its cost.
const manifestColumns = `m.digest, m.media_type, m.artifact_type, m.size,
	m.subject, m.annotations, m.created_at, m.blob_list, m.manifest_list, m.content`

// SQL of every statement the store runs, named as the Store fields that hold
// them. Parameters are numbered so a statement can use one twice.
const (
	sqlResolveTag = `SELECT ` + manifestColumns + `
FROM repositories AS r
JOIN tags AS t ON t.repo_id = r.id
JOIN manifests AS m ON m.id = t.manifest_id
WHERE r.name = ?1 AND t.name = ?2`

	sqlGetManifest = `SELECT ` + manifestColumns + `
FROM repositories AS r
JOIN manifests AS m ON m.repo_id = r.id
WHERE r.name = ?1 AND m.digest = ?2`

	sqlBlobSize = `SELECT b.size
FROM repositories AS r
JOIN repo_blobs AS rb ON rb.repo_id = r.id
JOIN blobs AS b ON b.digest = rb.digest
WHERE r.name = ?1 AND rb.digest = ?2`

	sqlAnyBlobSize = `SELECT size FROM blobs WHERE digest = ?1`

	sqlRepoExists = `SELECT 1 FROM repositories WHERE name = ?1`

	// A LEFT JOIN from the repository row tells "unknown repository" (no
	// row) from "no tags after last" (one row with a NULL name) in the
	// same statement and snapshot. A LIMIT of -1 means no limit.
	sqlTags = `SELECT t.name
FROM repositories AS r
LEFT JOIN tags AS t ON t.repo_id = r.id AND t.name > ?2
WHERE r.name = ?1
ORDER BY t.name
LIMIT ?3`

	// "subject = ?2" lets SQLite use the partial index (its WHERE is
	// "subject IS NOT NULL", implied by an equality).
	sqlReferrers = `SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations
FROM repositories AS r
LEFT JOIN manifests AS m ON m.repo_id = r.id AND m.subject = ?2
	AND (?3 = '' OR m.artifact_type = ?3) AND m.digest > ?4
WHERE r.name = ?1
ORDER BY m.digest
LIMIT ?5`

	sqlIndexesOf = `SELECT m.digest
FROM repositories AS r
JOIN manifest_refs AS mr ON mr.repo_id = r.id AND mr.child = ?2 AND mr.kind = 1
JOIN manifests AS m ON m.id = mr.manifest_id
WHERE r.name = ?1
LIMIT ?3`

	sqlBlobRepositories = `SELECT r.name
FROM repo_blobs AS rb
JOIN repositories AS r ON r.id = rb.repo_id
WHERE rb.digest = ?1`

	sqlRepositories = `SELECT name FROM repositories
WHERE name > ?1
ORDER BY name
LIMIT ?2`

	// instr, unlike LIKE, gives '%' and '_' in the query no meaning.
	sqlSearchRepositories = `SELECT name FROM repositories
WHERE instr(lower(name), ?1) > 0
ORDER BY name
LIMIT ?2`

	sqlRepoID     = `SELECT id FROM repositories WHERE name = ?1`
	sqlInsertRepo = `INSERT INTO repositories (name) VALUES (?1) RETURNING id`

	// A digest names its content, so its size cannot differ between
	// pushes; the update only repairs a row recorded wrongly.
	sqlPutBlob = `INSERT INTO blobs (digest, size) VALUES (?1, ?2)
ON CONFLICT (digest) DO UPDATE SET size = excluded.size WHERE size <> excluded.size`

	// A repeated link renews its time: the client is about to push a
	// manifest that needs it.
	sqlLinkBlob = `INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES (?1, ?2, ?3)
ON CONFLICT (repo_id, digest) DO UPDATE SET linked_at = excluded.linked_at`

	sqlBlobRow = `SELECT 1 FROM blobs WHERE digest = ?1`

	sqlUnlinkBlob = `DELETE FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2`

	sqlDropBlob = `DELETE FROM blobs
WHERE digest = ?1 AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = ?1)`

	// created_at is not in the update list: a re-push keeps the time of
	// the first one.
	sqlUpsertManifest = `INSERT INTO manifests
	(repo_id, digest, media_type, artifact_type, size, subject, annotations, created_at,
	 blob_list, manifest_list, content)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, coalesce(?11, x''))
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

	sqlDeleteRefs = `DELETE FROM manifest_refs WHERE manifest_id = ?1`

	sqlInsertRef = `INSERT INTO manifest_refs (manifest_id, kind, position, repo_id, child)
VALUES (?1, ?2, ?3, ?4, ?5)`

	// Every push of a tag renews its time, also one that leaves it where
	// it was: retention counts tags by when they were last pushed.
	sqlUpsertTag = `INSERT INTO tags (repo_id, name, manifest_id, updated_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (repo_id, name) DO UPDATE SET
	manifest_id = excluded.manifest_id,
	updated_at = excluded.updated_at`

	// The first tombstone of content that a manifest about to be stored
	// references (?2: its blobs, ?4: its child manifests, as JSON lists)
	// and that is still absent from the repository (?1 name, ?3 id).
	sqlCollectedRefs = `SELECT t.digest FROM gc_tombstones AS t
WHERE t.repo = ?1 AND (
	(t.kind = 0 AND t.digest IN (SELECT value FROM json_each(?2))
		AND NOT EXISTS (SELECT 1 FROM repo_blobs AS rb WHERE rb.repo_id = ?3 AND rb.digest = t.digest))
	OR (t.kind = 1 AND t.digest IN (SELECT value FROM json_each(?4))
		AND NOT EXISTS (SELECT 1 FROM manifests AS m WHERE m.repo_id = ?3 AND m.digest = t.digest)))
LIMIT 1`

	sqlClearTombstone = `DELETE FROM gc_tombstones WHERE repo = ?1 AND kind = ?2 AND digest = ?3`

	sqlTombstone = `INSERT INTO gc_tombstones (repo, kind, digest, removed_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (repo, kind, digest) DO UPDATE SET removed_at = excluded.removed_at`

	// Tags and manifest_refs rows go with the manifest (ON DELETE CASCADE).
	sqlDeleteManifest = `DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2`

	sqlDeleteTag = `DELETE FROM tags
WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2`

	sqlPruneRepo = `DELETE FROM repositories
WHERE id = ?1
	AND NOT EXISTS (SELECT 1 FROM repo_blobs WHERE repo_id = ?1)
	AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1)`
)

// Open opens the metadata database at path, creating the file (and its
// directory) and bringing its schema up to date. SQLite puts path-wal and
// path-shm next to it. The database must not be shared with a process on
// another host: SQLite's WAL locking needs shared memory.
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("metadata/sqlite: %w", err)
	}
	s, err := open(abs)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// open does Open's work on an absolute path; on error it releases whatever
// it had opened.
func open(abs string) (s *Store, err error) {
	ctx := context.Background()
	s = &Store{path: abs, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close() //nolint:errcheck // the first error is the one to report
		}
	}()

	// journal_mode=WAL is persistent in the file, so only the write handle
	// sets it; it also creates the file and runs migrations before any
	// reader connects.
	s.wdb, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			// beginWrite waits for the lock itself, polling more often
			// than SQLite's busy handler would.
			pragma("busy_timeout", 0),
			"foreign_keys(1)",
			"journal_mode(WAL)",
			"synchronous(FULL)",
		},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return s, err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)

	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return s, err
	}
	if !strings.EqualFold(mode, "wal") {
		return s, fmt.Errorf("journal_mode is %q, want wal (is the file on a network filesystem?)", mode)
	}
	if err := migrate(ctx, s.wdb); err != nil {
		return s, err
	}

	s.rdb, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			pragma("busy_timeout", busyTimeout.Milliseconds()),
			"query_only(1)",
		},
	}))
	if err != nil {
		return s, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)

	prepare := func(db *sql.DB, list *[]*sql.Stmt, dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		var st *sql.Stmt
		if st, err = db.PrepareContext(ctx, query); err != nil {
			err = fmt.Errorf("prepare %q: %w", firstLine(query), err)
			return
		}
		*dst = st
		*list = append(*list, st)
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.resolveTag, sqlResolveTag},
		{&s.getManifest, sqlGetManifest},
		{&s.blobSize, sqlBlobSize},
		{&s.anyBlobSize, sqlAnyBlobSize},
		{&s.repoExists, sqlRepoExists},
		{&s.tags, sqlTags},
		{&s.referrers, sqlReferrers},
		{&s.indexesOf, sqlIndexesOf},
		{&s.blobRepositories, sqlBlobRepositories},
		{&s.repositories, sqlRepositories},
		{&s.searchRepositories, sqlSearchRepositories},
	} {
		prepare(s.rdb, &s.readStmts, p.dst, p.query)
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.repoID, sqlRepoID},
		{&s.insertRepo, sqlInsertRepo},
		{&s.putBlob, sqlPutBlob},
		{&s.linkBlob, sqlLinkBlob},
		{&s.unlinkBlob, sqlUnlinkBlob},
		{&s.dropBlob, sqlDropBlob},
		{&s.upsertManifest, sqlUpsertManifest},
		{&s.deleteRefs, sqlDeleteRefs},
		{&s.insertRef, sqlInsertRef},
		{&s.upsertTag, sqlUpsertTag},
		{&s.deleteManifest, sqlDeleteManifest},
		{&s.deleteTag, sqlDeleteTag},
		{&s.pruneRepo, sqlPruneRepo},
		{&s.blobRow, sqlBlobRow},
		{&s.collectedRefs, sqlCollectedRefs},
		{&s.clearTomb, sqlClearTombstone},
		{&s.tombstone, sqlTombstone},
	} {
		prepare(s.wdb, &s.writeStmts, p.dst, p.query)
	}
	return s, err
}

// dsn is the modernc.org/sqlite data source name for the file at abs. The
// file: URI form, with the path escaped, keeps a '?' or '#' in a directory
// name from being read as the start of the parameters.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// pragma formats a _pragma DSN value with an integer argument.
func pragma(name string, v int64) string {
	return fmt.Sprintf("%s(%d)", name, v)
}

// firstLine shortens a statement for an error message.
func firstLine(q string) string {
	line, _, _ := strings.Cut(q, "\n")
	return line
}

// Close closes the statements and both database handles. Calling it again
// returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		var errs []error
		for _, st := range append(s.readStmts, s.writeStmts...) {
			errs = append(errs, st.Close())
		}
		if s.rdb != nil {
			errs = append(errs, s.rdb.Close())
		}
		if s.wdb != nil {
			// Let SQLite refresh the planner statistics it finds stale;
			// cheap, and only ever runs on close. Its failure does not
			// matter to the caller.
			_, _ = s.wdb.Exec("PRAGMA optimize")
			errs = append(errs, s.wdb.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("metadata/sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// write runs fn in an IMMEDIATE transaction on the write connection and
// commits it, or rolls it back if fn or the commit fails.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := beginWrite(ctx, s.wdb)
	if err != nil {
		return noSpace(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return noSpace(err)
	}
	return noSpace(tx.Commit())
}

// writeAndYield is write for a job made of many transactions (the garbage
// collector's): after each commit it leaves the lock free for a while
// (yieldWrite), so that writers of other processes get their turn.
func (s *Store) writeAndYield(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var start time.Time
	err := s.write(ctx, func(tx *sql.Tx) error {
		start = time.Now()
		return fn(tx)
	})
	if !start.IsZero() {
		yieldWrite(ctx, time.Since(start))
	}
	return err
}

// Waits for the write lock while another process holds it. SQLite's own
// busy handler sleeps longer each time it finds the lock taken (up to
// 100 ms), so a writer of this process facing a stream of short
// transactions from another (berth gc on the same file) kept missing the
// moments the lock was free; beginWrite retries every few milliseconds
// instead, which finds the gaps the other process leaves between
// transactions (see yieldWrite).
const (
	writePollMin = time.Millisecond
	writePollMax = 4 * time.Millisecond
)

// beginWrite begins an IMMEDIATE transaction on db (the write handle, whose
// busy_timeout is 0 so a lock held elsewhere answers SQLITE_BUSY at once),
// retrying while the database is busy, for up to busyTimeout or until ctx is
// done.
func beginWrite(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err == nil || !isBusy(err) {
		return tx, err // the common case: no clock, no timer
	}
	deadline := time.Now().Add(busyTimeout)
	for wait := writePollMin; time.Now().Add(wait).Before(deadline); wait = min(2*wait, writePollMax) {
		if onBusy != nil {
			onBusy()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if tx, err = db.BeginTx(ctx, nil); err == nil || !isBusy(err) {
			return tx, err
		}
	}
	return nil, err
}

// onBusy, when set (by tests, before any store is used), is called each
// time beginWrite finds the lock held.
var onBusy func()

// isBusy reports whether err is SQLITE_BUSY (another connection holds the
// lock).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// yieldWrite lets writers of other processes in after a long-running job
// (the garbage collector) committed a write transaction that held the lock
// for held: it waits as long again (at most 50 ms), so the job holds the
// write lock at most about half the time and a push in a server on the
// same file waits for one of its transactions, not for many.
func yieldWrite(ctx context.Context, held time.Duration) {
	t := time.NewTimer(min(held, 50*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// noSpace marks a full disk (SQLITE_FULL) as metadata.ErrNoSpace.
func noSpace(err error) error {
	var se *sqlite.Error
	if err != nil && (errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL || errors.Is(err, syscall.ENOSPC)) {
		return fmt.Errorf("%w: %w", metadata.ErrNoSpace, err)
	}
	return err
}

// lookupRepo returns the id of repo inside tx, or metadata.ErrNotFound:
// every caller is looking for something in the repository, and the
// interface reports a missing one that way.
func (s *Store) lookupRepo(ctx context.Context, tx *sql.Tx, repo string) (int64, error) {
	var id int64
	err := tx.StmtContext(ctx, s.repoID).QueryRowContext(ctx, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, metadata.ErrNotFound
	}
	return id, err
}

// ensureRepo returns the id of repo inside tx, creating the row if needed.
func (s *Store) ensureRepo(ctx context.Context, tx *sql.Tx, repo string) (int64, error) {
	var id int64
	err := tx.StmtContext(ctx, s.repoID).QueryRowContext(ctx, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.StmtContext(ctx, s.insertRepo).QueryRowContext(ctx, repo).Scan(&id)
	}
	return id, err
}

// prune deletes the row of repository id if it holds nothing any more.
func (s *Store) prune(ctx context.Context, tx *sql.Tx, id int64) error {
	_, err := tx.StmtContext(ctx, s.pruneRepo).ExecContext(ctx, id)
	return err
}

// PutBlob records that repo may serve blob d of the given size.
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.LinkBlob(ctx, repo, d, size, nil)
}

// LinkBlob records that repo may serve blob d, checking with present first
// when no repository links d. The transaction holds the database's write
// lock, which DeleteUnlinkedBlob needs too, so the check and the link are
// atomic with respect to it.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, present func(context.Context) error) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		id, err := s.ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if present != nil {
			var one int
			err := tx.StmtContext(ctx, s.blobRow).QueryRowContext(ctx, string(d)).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				err = present(ctx)
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.StmtContext(ctx, s.putBlob).ExecContext(ctx, string(d), size); err != nil {
			return err
		}
		if _, err = tx.StmtContext(ctx, s.linkBlob).ExecContext(ctx, id, string(d), time.Now().UnixNano()); err != nil {
			return err
		}
		if _, err = tx.StmtContext(ctx, s.clearTomb).ExecContext(ctx, repo, refBlob, string(d)); err != nil {
			return err
		}
		return s.queueEvents(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: put blob %s@%s: %w", repo, d, err)
	}
	return nil
}

// BlobSize returns the size of blob d if repo may serve it.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	if err := s.blobSize.QueryRowContext(ctx, repo, string(d)).Scan(&size); err != nil {
		return 0, fmt.Errorf("metadata/sqlite: blob %s@%s: %w", repo, d, notFound(err))
	}
	return size, nil
}

// AnyBlobSize returns the size of blob d if any repository holds it.
func (s *Store) AnyBlobSize(ctx context.Context, d digest.Digest) (int64, error) {
	var size int64
	if err := s.anyBlobSize.QueryRowContext(ctx, string(d)).Scan(&size); err != nil {
		return 0, fmt.Errorf("metadata/sqlite: blob %s: %w", d, notFound(err))
	}
	return size, nil
}

// DeleteBlob removes blob d from repo, and from the blobs table once no
// repository links it.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		id, err := s.lookupRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, s.unlinkBlob).ExecContext(ctx, id, string(d))
		if err != nil {
			return err
		}
		if err := affected(res); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.dropBlob).ExecContext(ctx, string(d)); err != nil {
			return err
		}
		if err := s.queueEvents(ctx, tx); err != nil {
			return err
		}
		return s.prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: delete blob %s@%s: %w", repo, d, err)
	}
	return nil
}

// PutManifest stores m in repo and points tags at it, in one transaction.
// A zero m.CreatedAt is taken as now; m itself is not modified.
func (s *Store) PutManifest(ctx context.Context, repo string, m *metadata.Manifest, tags ...string) error {
	if m == nil || m.Digest == "" {
		return fmt.Errorf("metadata/sqlite: put manifest in %s: no manifest digest", repo)
	}
	annotations, err := encodeJSON(len(m.Annotations), m.Annotations)
	if err != nil {
		return fmt.Errorf("metadata/sqlite: put manifest %s@%s: annotations: %w", repo, m.Digest, err)
	}
	blobList, err := encodeJSON(len(m.Blobs), m.Blobs)
	if err != nil {
		return fmt.Errorf("metadata/sqlite: put manifest %s@%s: blobs: %w", repo, m.Digest, err)
	}
	manifestList, err := encodeJSON(len(m.Manifests), m.Manifests)
	if err != nil {
		return fmt.Errorf("metadata/sqlite: put manifest %s@%s: manifests: %w", repo, m.Digest, err)
	}
	var subject any // NULL, so the row stays out of the partial subject index
	if m.Subject != "" {
		subject = string(m.Subject)
	}
	now := time.Now()
	created := m.CreatedAt
	if created.IsZero() {
		created = now
	}

	err = s.write(ctx, func(tx *sql.Tx) error {
		repoID, err := s.ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if blobList != nil || manifestList != nil {
			var gone string
			err := tx.StmtContext(ctx, s.collectedRefs).QueryRowContext(ctx, repo, blobList, repoID, manifestList).Scan(&gone)
			if err == nil {
				return fmt.Errorf("%w: %s was removed from the repository; push it again", metadata.ErrCollected, gone)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if _, err := tx.StmtContext(ctx, s.clearTomb).ExecContext(ctx, repo, refManifest, string(m.Digest)); err != nil {
			return err
		}
		var id int64
		if err := tx.StmtContext(ctx, s.upsertManifest).QueryRowContext(ctx,
			repoID, string(m.Digest), m.MediaType, m.ArtifactType, m.Size,
			subject, annotations, created.UnixNano(), blobList, manifestList, m.Content,
		).Scan(&id); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.deleteRefs).ExecContext(ctx, id); err != nil {
			return err
		}
		if len(m.Blobs)+len(m.Manifests) > 0 {
			ins := tx.StmtContext(ctx, s.insertRef)
			for kind, list := range [...][]digest.Digest{refBlob: m.Blobs, refManifest: m.Manifests} {
				for pos, child := range list {
					if _, err := ins.ExecContext(ctx, id, kind, pos, repoID, string(child)); err != nil {
						return err
					}
				}
			}
		}
		if len(tags) > 0 {
			up := tx.StmtContext(ctx, s.upsertTag)
			for _, tag := range tags {
				if _, err := up.ExecContext(ctx, repoID, tag, id, now.UnixNano()); err != nil {
					return fmt.Errorf("tag %q: %w", tag, err)
				}
			}
		}
		return s.queueEvents(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: put manifest %s@%s: %w", repo, m.Digest, err)
	}
	s.changes.Notify(repo)
	return nil
}

// GetManifest returns the manifest of digest d in repo.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (*metadata.Manifest, error) {
	m, err := scanManifest(s.getManifest.QueryRowContext(ctx, repo, string(d)))
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: manifest %s@%s: %w", repo, d, notFound(err))
	}
	return m, nil
}

// ResolveTag returns the manifest that tag points at in repo, with one
// statement that walks three unique indexes.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (*metadata.Manifest, error) {
	m, err := scanManifest(s.resolveTag.QueryRowContext(ctx, repo, tag))
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: tag %s:%s: %w", repo, tag, notFound(err))
	}
	return m, nil
}

// scanManifest reads a row of manifestColumns.
func scanManifest(row *sql.Row) (*metadata.Manifest, error) {
	var (
		m                      metadata.Manifest
		subject, annots        sql.NullString
		created                int64
		blobList, manifestList sql.NullString
	)
	if err := row.Scan(&m.Digest, &m.MediaType, &m.ArtifactType, &m.Size,
		&subject, &annots, &created, &blobList, &manifestList, &m.Content); err != nil {
		return nil, err
	}
	m.Subject = digest.Digest(subject.String)
	m.CreatedAt = time.Unix(0, created).UTC()
	var err error
	if m.Annotations, err = decodeAnnotations(annots); err != nil {
		return nil, err
	}
	if m.Blobs, err = decodeDigests(blobList); err != nil {
		return nil, err
	}
	if m.Manifests, err = decodeDigests(manifestList); err != nil {
		return nil, err
	}
	return &m, nil
}

// encodeJSON encodes v, which holds n entries, for a nullable JSON column:
// NULL when there are none, so an empty list costs nothing in the row.
func encodeJSON(n int, v any) (any, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// decodeDigests decodes a JSON list of digests; NULL is nil.
func decodeDigests(s sql.NullString) ([]digest.Digest, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var ds []digest.Digest
	if err := json.Unmarshal([]byte(s.String), &ds); err != nil {
		return nil, fmt.Errorf("decode manifest references: %w", err)
	}
	return ds, nil
}

// decodeAnnotations decodes the annotations column; NULL is nil.
func decodeAnnotations(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var a map[string]string
	if err := json.Unmarshal([]byte(s.String), &a); err != nil {
		return nil, fmt.Errorf("decode annotations: %w", err)
	}
	return a, nil
}

// DeleteManifest removes manifest d, its tags and its references from repo.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		id, err := s.lookupRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, s.deleteManifest).ExecContext(ctx, id, string(d))
		if err != nil {
			return err
		}
		if err := affected(res); err != nil {
			return err
		}
		if err := s.queueEvents(ctx, tx); err != nil {
			return err
		}
		return s.prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: delete manifest %s@%s: %w", repo, d, err)
	}
	s.changes.Notify(repo)
	return nil
}

// DeleteTag removes only the tag; the manifest stays, so the repository
// does too.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.deleteTag).ExecContext(ctx, repo, tag)
		if err != nil {
			return err
		}
		if err := affected(res); err != nil {
			return err
		}
		return s.queueEvents(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("metadata/sqlite: delete tag %s:%s: %w", repo, tag, err)
	}
	s.changes.Notify(repo)
	return nil
}

// Tags lists up to n tags of repo after last, in byte order.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	if n == 0 {
		if err := s.exists(ctx, repo); err != nil {
			return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
		}
		return []string{}, nil
	}
	rows, err := s.tags.QueryContext(ctx, repo, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
	}
	names, found, err := collectNullable(rows, n)
	if err == nil && !found {
		err = metadata.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
	}
	return names, nil
}

// exists returns nil if repo exists, or metadata.ErrRepositoryNotFound.
func (s *Store) exists(ctx context.Context, repo string) error {
	var one int
	err := s.repoExists.QueryRowContext(ctx, repo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return metadata.ErrRepositoryNotFound
	}
	return err
}

// collectNullable reads the single-column rows of a LEFT JOIN from a
// repository row: found reports whether there was any row (the repository
// exists), and NULL names (no match) are skipped.
func collectNullable(rows *sql.Rows, n int) (names []string, found bool, err error) {
	defer rows.Close()
	names = make([]string, 0, capacity(n))
	for rows.Next() {
		found = true
		var name sql.NullString
		if err := rows.Scan(&name); err != nil {
			return nil, false, err
		}
		if name.Valid {
			names = append(names, name.String)
		}
	}
	return names, found, rows.Err()
}

// Referrers lists the manifests in repo whose subject is d, optionally only
// those of artifactType, ordered by digest.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	descs, more, err := s.referrersOf(ctx, repo, d, q)
	if err != nil {
		return nil, false, fmt.Errorf("metadata/sqlite: referrers of %s@%s: %w", repo, d, err)
	}
	return descs, more, nil
}

// referrersOf does Referrers' work, leaving the error unwrapped. Rows are
// read one at a time and reading stops at the page's bounds.
func (s *Store) referrersOf(ctx context.Context, repo string, d digest.Digest, q metadata.ReferrersQuery) ([]metadata.Descriptor, bool, error) {
	rows, err := s.referrers.QueryContext(ctx, repo, string(d), q.ArtifactType, string(q.After), max(q.Limit, 1)+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	descs := []metadata.Descriptor{}
	found, more, used := false, false, 0
	for rows.Next() {
		found = true
		var (
			mediaType, dgst, artType, annots sql.NullString
			size                             sql.NullInt64
		)
		if err := rows.Scan(&mediaType, &dgst, &size, &artType, &annots); err != nil {
			return nil, false, err
		}
		if !dgst.Valid {
			continue // the repository exists but nothing refers to d
		}
		n := metadata.RawDescriptorSize(mediaType.String, dgst.String, artType.String, len(annots.String))
		if !q.Fits(len(descs), used, n) {
			more = true
			break
		}
		a, err := decodeAnnotations(annots)
		if err != nil {
			return nil, false, err
		}
		descs = append(descs, metadata.Descriptor{
			MediaType:    mediaType.String,
			Digest:       digest.Digest(dgst.String),
			Size:         size.Int64,
			ArtifactType: artType.String,
			Annotations:  a,
		})
		used += n
	}
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
	names, err := s.names(ctx, s.indexesOf, repo, max(n, 1), string(d))
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: indexes of %s@%s: %w", repo, d, err)
	}
	return uniqueDigests(names), nil
}

// uniqueDigests turns names into digests, each once (an index may list a
// child twice).
func uniqueDigests(names []string) []digest.Digest {
	out := make([]digest.Digest, 0, len(names))
	for _, v := range names {
		if !slices.Contains(out, digest.Digest(v)) {
			out = append(out, digest.Digest(v))
		}
	}
	return out
}

// BlobRepositories yields the repositories linking blob d.
func (s *Store) BlobRepositories(ctx context.Context, d digest.Digest, yield func(string) bool) error {
	rows, err := s.blobRepositories.QueryContext(ctx, string(d))
	if err != nil {
		return fmt.Errorf("metadata/sqlite: repositories of blob %s: %w", d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("metadata/sqlite: repositories of blob %s: %w", d, err)
		}
		if !yield(name) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("metadata/sqlite: repositories of blob %s: %w", d, err)
	}
	return nil
}

// Repositories lists up to n repository names after last, in byte order.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	names, err := s.names(ctx, s.repositories, last, n)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: repositories: %w", err)
	}
	return names, nil
}

// SearchRepositories lists up to n repository names containing query,
// ignoring ASCII case, in byte order. An empty query matches every name.
func (s *Store) SearchRepositories(ctx context.Context, query string, n int) ([]string, error) {
	names, err := s.names(ctx, s.searchRepositories, strings.ToLower(query), n)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: search repositories for %q: %w", query, err)
	}
	return names, nil
}

// names runs a statement listing strings, taking (arg, arg2..., limit).
func (s *Store) names(ctx context.Context, st *sql.Stmt, arg string, n int, arg2 ...string) ([]string, error) {
	if n == 0 {
		return []string{}, nil
	}
	args := []any{arg}
	for _, a := range arg2 {
		args = append(args, a)
	}
	args = append(args, limit(n))
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := make([]string, 0, capacity(n))
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return names, nil
}

// limit turns the interface's page size into a SQLite LIMIT, where a
// negative value means no limit.
func limit(n int) int64 {
	if n < 0 {
		return -1
	}
	return int64(n)
}

// capacity is the initial capacity of a page of n names: n, but not more
// than a typical page, so a huge n does not allocate a huge slice.
func capacity(n int) int {
	if n < 0 {
		return 64
	}
	return min(n, 1000)
}

// notFound maps "no row" to metadata.ErrNotFound so sql.ErrNoRows never
// reaches callers.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return metadata.ErrNotFound
	}
	return err
}

// affected returns metadata.ErrNotFound if res changed no row.
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return metadata.ErrNotFound
	}
	return nil
}
